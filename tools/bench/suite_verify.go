package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"nixpush/internal/servertest"
	"nixpush/uploader"
)

// verifyPaths is the size of the cache issue 11's target names.
const verifyPaths = 10_000

// verifyTargetWall and verifyTargetRSS are issue 11's acceptance: verify
// of a 10,000-path cache on S3 behind 50 ms in under a minute, in
// ≤ 150 MiB.
const (
	verifyTargetWall = time.Minute
	verifyTargetRSS  = 150 << 20
)

// verifyRun is one run of nixpush verify: its sample, exit code, and
// what it printed.
type verifyRun struct {
	sample Sample
	exit   int
	stdout string
	// serverCPU is versitygw's user+sys during the run: with verify on
	// the same cores, it is what the wall time was shared with.
	serverCPU time.Duration
}

// verifyRow is every run of one case: the whole cache at one round trip,
// or the cache with one NAR deleted.
type verifyRow struct {
	label string
	runs  []verifyRun
}

func (r *verifyRow) samples() []Sample {
	out := make([]Sample, len(r.runs))
	for i, run := range r.runs {
		out[i] = run.sample
	}
	return out
}

// verifySetup is the server side of the suite: versitygw serving the
// synthetic cache, its proxy, and the key that signed the cache.
type verifySetup struct {
	b      *bench
	vgw    *servertest.Versitygw
	proxy  *servertest.Proxy
	pub    string
	cache  *syntheticCache
	bucket string // the bucket's directory on the server's disk
}

// url is the cache URL verify is given, at endpoint (the proxy, or the
// server itself).
func (s *verifySetup) url(endpoint string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&region=us-east-1", s.vgw.Bucket, endpoint)
}

// verify runs nixpush verify --json once, timed, against endpoint.
func (s *verifySetup) verify(ctx context.Context, endpoint string) (verifyRun, error) {
	home, err := s.b.work.newScratch("verify-home")
	if err != nil {
		return verifyRun{}, err
	}
	defer removeAll(home)
	return s.timed(ctx, []string{"verify", "--to", s.url(endpoint), "--trusted-key", s.pub, "--json"}, home)
}

// timed runs nixpush with args and a home, measuring the server's CPU
// around it.
func (s *verifySetup) timed(ctx context.Context, args []string, home string) (verifyRun, error) {
	cpu0, err := groupCPU(s.vgw.Server)
	if err != nil {
		return verifyRun{}, err
	}
	run, err := measureExit(ctx, s.b.bin, args, s3Env(s.vgw)(home))
	if err != nil {
		return verifyRun{}, err
	}
	cpu1, err := groupCPU(s.vgw.Server)
	run.serverCPU = cpu1 - cpu0
	return run, err
}

// measureExit is measure for a command whose exit code is a result: it
// returns the sample and code of a run that exits non-zero, and fails
// only when the command cannot run or is killed.
func measureExit(ctx context.Context, name string, args []string, env []string) (verifyRun, error) {
	sample, stdout, code, err := measureRun(ctx, name, args, env, true)
	return verifyRun{exit: code, stdout: stdout, sample: sample}, err
}

// verifyJSON is the part of verify --json's report the suite checks.
type verifyJSON struct {
	NarInfos int `json:"narinfos"`
	NARs     int `json:"nars"`
	Problems []struct {
		Kind, Key, Path string
	} `json:"problems"`
}

// checkWhole fails unless a run found the whole cache whole: exit 0 and
// every narinfo and NAR counted (a verify that read less would look fast).
func (s *verifySetup) checkWhole(run verifyRun) error {
	var got verifyJSON
	if err := json.Unmarshal([]byte(run.stdout), &got); err != nil {
		return fmt.Errorf("read verify --json: %w\n%s", err, tail(run.stdout, 500))
	}
	n := len(s.cache.Paths)
	if run.exit != 0 || got.NarInfos != n || got.NARs != n || len(got.Problems) != 0 {
		return fmt.Errorf("verify of the whole cache: exit %d, %d narinfos, %d NARs, %d problems (want 0, %d, %d, 0)\n%s",
			run.exit, got.NarInfos, got.NARs, len(got.Problems), n, n, tail(run.stdout, 500))
	}
	return nil
}

// runVerifySuite writes a 10,000-path cache into versitygw's bucket,
// checks verify reads it whole on loopback, then times verify through
// toxiproxy at each -rtt, and last deletes one NAR and runs it again.
func runVerifySuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("verify-server")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	vgw, err := startKeepAliveVersitygw(filepath.Join(scratch, "versitygw"), "nixpush-verify")
	if err != nil {
		return nil, err
	}
	defer vgw.Stop()
	s := &verifySetup{b: b, vgw: vgw, bucket: vgw.BucketDir()}
	pubKey, err := uploader.WriteKeyPair("verify-bench-1", filepath.Join(scratch, "key.sec"), filepath.Join(scratch, "key.pub"))
	if err != nil {
		return nil, err
	}
	sec, err := uploader.LoadSigningKey(filepath.Join(scratch, "key.sec"))
	if err != nil {
		return nil, err
	}
	s.pub = pubKey.String()
	logf("verify: writing %s paths into %s", thousands(verifyPaths), s.bucket)
	started := time.Now()
	if s.cache, err = writeSyntheticCache(s.bucket, verifyPaths, sec); err != nil {
		return nil, err
	}
	written := time.Since(started)

	// versitygw's posix backend serves files it did not write itself
	// (no xattrs: it derives what it lacks): this run proves it, and is
	// the figure without any latency.
	loopback := &verifyRow{label: "whole, no proxy (loopback)"}
	run, err := s.verify(ctx, vgw.Addr)
	if err != nil {
		return nil, err
	}
	if err := s.checkWhole(run); err != nil {
		return nil, fmt.Errorf("versitygw does not serve the cache written to its disk: %w", err)
	}
	loopback.runs = append(loopback.runs, run)
	logf("verify: loopback %s wall, %s RSS", seconds(run.sample.Wall.Seconds()), mib(float64(run.sample.MaxRSS)))

	toxi := servertest.NewToxiproxy(filepath.Join(scratch, "toxiproxy"))
	if err := toxi.Start(); err != nil {
		return nil, err
	}
	defer toxi.Stop()
	if s.proxy, err = toxi.Proxy(vgw.Addr); err != nil {
		return nil, err
	}
	rows := map[time.Duration]*verifyRow{}
	for _, rtt := range b.rtts {
		if err := s.proxy.Latency(rtt); err != nil {
			return nil, err
		}
		row := &verifyRow{label: "whole"}
		rows[rtt] = row
		for i := range b.runs {
			run, err := s.verify(ctx, s.proxy.Addr)
			if err != nil {
				return nil, err
			}
			if err := s.checkWhole(run); err != nil {
				return nil, fmt.Errorf("at %v: %w", rtt, err)
			}
			row.runs = append(row.runs, run)
			logf("verify %v run %d/%d: %s wall, %s CPU, %s RSS", rtt, i+1, b.runs, seconds(run.sample.Wall.Seconds()),
				seconds(run.sample.CPU.Seconds()), mib(float64(run.sample.MaxRSS)))
		}
	}
	broken, err := s.runBroken(ctx, b.rtts[len(b.rtts)-1])
	if err != nil {
		return nil, err
	}
	return verifyReport(b, s, written, loopback, rows, broken), nil
}

// startKeepAliveVersitygw is startVersitygw with HTTP keep-alive on.
// versitygw answers every request with "Connection: close" unless told
// otherwise (--keep-alive, default false), so each of verify's 10,000
// GETs would open a new connection; S3 keeps connections open, and this
// suite measures verify, not versitygw's default.
func startKeepAliveVersitygw(dir, bucket string) (*servertest.Versitygw, error) {
	v, err := startVersitygw(dir, bucket, "VGW_KEEP_ALIVE=true")
	if err != nil {
		return nil, err
	}
	resp, err := http.Get("http://" + v.Addr + "/health")
	if err != nil {
		v.Stop()
		return nil, fmt.Errorf("ask versitygw: %w", err)
	}
	resp.Body.Close()
	if resp.Close {
		v.Stop()
		return nil, errors.New("versitygw still closes every connection with VGW_KEEP_ALIVE=true")
	}
	return v, nil
}

// brokenRun is the run on the cache with one NAR deleted.
type brokenRun struct {
	rtt     time.Duration
	row     *verifyRow
	path    string // the store path whose NAR was deleted
	narKey  string
	printed string // the line of verify's text output naming it
	summary string // its last line: the counts
}

// runBroken deletes the NAR of a path in the middle of the DAG (others
// refer to it, it refers to others) and runs verify once, without --json:
// it must exit 1 and name the path. The cache is left broken: the suite
// ends here.
func (s *verifySetup) runBroken(ctx context.Context, rtt time.Duration) (*brokenRun, error) {
	i := len(s.cache.Paths) / 2
	br := &brokenRun{rtt: rtt, row: &verifyRow{label: "one NAR deleted"}, path: s.cache.Paths[i], narKey: s.cache.NARKeys[i]}
	if err := os.Remove(filepath.Join(s.bucket, br.narKey)); err != nil {
		return nil, fmt.Errorf("delete a NAR: %w", err)
	}
	if err := s.proxy.Latency(rtt); err != nil {
		return nil, err
	}
	home, err := s.b.work.newScratch("verify-home")
	if err != nil {
		return nil, err
	}
	defer removeAll(home)
	run, err := s.timed(ctx, []string{"verify", "--to", s.url(s.proxy.Addr), "--trusted-key", s.pub}, home)
	if err != nil {
		return nil, err
	}
	br.row.runs = append(br.row.runs, run)
	want := fmt.Sprintf("missing-nar %s: ", br.path)
	for line := range strings.Lines(run.stdout) {
		if strings.HasPrefix(line, want) {
			br.printed = strings.TrimSpace(line)
		}
		br.summary = strings.TrimSpace(line)
	}
	if run.exit != 1 || br.printed == "" {
		return nil, fmt.Errorf("verify with the NAR of %s deleted: exit %d (want 1), no line %q in:\n%s",
			br.path, run.exit, want, tail(run.stdout, 1000))
	}
	logf("verify, one NAR deleted: exit %d, %q", run.exit, br.printed)
	return br, nil
}
