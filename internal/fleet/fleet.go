package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/internal/servertest"
)

// Config is one simulation.
type Config struct {
	Bin      string   // the nixpush binary
	Store    string   // --store ROOT of the machines (one store: the machines differ in state dirs)
	SecKey   string   // signing key file
	PubKey   string   // its public key, NAME:BASE64
	Env      []string // added to each process's environment: the server's AWS keys
	Dir      string   // scratch: state dirs, logs
	Server   *servertest.Versitygw
	Closures Closures
	// Throttling is what the proxy in front of the server refuses (zero:
	// nothing).
	Throttling servertest.Throttling
	// GCEvery runs gc --delete (--keep-days 1 --grace 30s) that often
	// while the machines push, and VerifyEvery verify; 0: never.
	GCEvery, VerifyEvery time.Duration
	// Deadline bounds each machine's push.
	Deadline time.Duration
}

// Result is what a simulation saw.
type Result struct {
	Makespan time.Duration // from the start of the machines to the end of the last
	Failed   []string      // machines whose push did not exit 0, and why
	// Pushed, Present and Requests add up every machine's push --json.
	Pushed, Present int64
	Requests        map[string]int64
	Throttled       int64
	NarInfos, NARs  int // in the bucket at the end
	// Attempts is how many queue rows of every machine spent an attempt:
	// a throttled answer must spend none.
	Attempts int
	GCRuns   int
	GCFailed []string // gc runs that failed, and why
	Deleted  int      // paths and NARs the gc runs deleted
	Verifies int
	Problems []string         // inconsistencies verify reported during the run
	Refused  map[string]int64 // throttled answers the proxy gave, by status
	Wire     map[string]int64 // requests that reached the server, by operation
}

// BusyS3 is a busy bucket, as the fault suite and the bench simulate it:
// 5 % of requests answered 503 SlowDown, and every request answered 429
// with Retry-After: 1 for 300 ms in every 5 s.
var BusyS3 = servertest.Throttling{SlowDown: 0.05, BurstEvery: 5 * time.Second, BurstFor: 300 * time.Millisecond, RetryAfter: 1, Seed: 24}

// URL is the bucket's cache URL through addr.
func URL(s *servertest.Versitygw, addr string) string {
	return fmt.Sprintf("s3://%s?endpoint=%s&scheme=http&region=us-east-1", s.Bucket, addr)
}

// process runs nixpush with a home of its own under dir and its output
// in dir/name.log; it returns the output and the exit code.
func (c Config) process(ctx context.Context, name string, args ...string) (string, int, error) {
	home := filepath.Join(c.Dir, "home-"+name)
	var env []string
	for _, kv := range nixtest.EnvIn(home) {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd := exec.CommandContext(ctx, c.Bin, args...)
	cmd.Env = append(env, c.Env...)
	out, err := cmd.Output()
	logged := out
	if ee, ok := err.(*exec.ExitError); ok {
		logged = append(logged, ee.Stderr...)
		err = nil
	}
	_ = os.WriteFile(filepath.Join(c.Dir, name+".log"), logged, 0o644)
	if err != nil {
		return string(out), -1, err
	}
	return string(out), cmd.ProcessState.ExitCode(), nil
}

// pushSummary is the part of push --json the simulation reads.
type pushSummary struct {
	Pushed   int64           `json:"pushed"`
	Present  int64           `json:"present"`
	Requests *cache.Requests `json:"requests"`
}

// Run runs the machines at once through a throttling proxy, gc and verify
// beside them, and reports.
func Run(ctx context.Context, c Config) (Result, error) {
	res := Result{Requests: map[string]int64{}}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return res, err
	}
	px, err := servertest.StartS3Proxy(c.Server.Addr)
	if err != nil {
		return res, err
	}
	defer px.Close()
	px.SetThrottling(c.Throttling)
	url := URL(c.Server, px.Addr)
	n := len(c.Closures.Leaves)

	done := make(chan struct{})
	var side sync.WaitGroup
	var mu sync.Mutex
	every := func(d time.Duration, f func(int)) {
		if d <= 0 {
			return
		}
		side.Go(func() {
			for i := 0; ; i++ {
				f(i) // at once, and every d while the machines push
				select {
				case <-done:
					return
				case <-time.After(d):
				}
			}
		})
	}
	every(c.GCEvery, func(i int) {
		out, code, err := c.process(ctx, fmt.Sprintf("gc-%d", i), "gc", "--to", url, "--keep-days", "1", "--grace", "30s",
			"--delete", "--json", "--state-dir", filepath.Join(c.Dir, "gc-state"))
		var r struct{ Paths, NARs []string }
		_ = json.Unmarshal([]byte(out), &r)
		mu.Lock()
		defer mu.Unlock()
		res.GCRuns++
		res.Deleted += len(r.Paths) + len(r.NARs)
		if err != nil || code != 0 {
			res.GCFailed = append(res.GCFailed, fmt.Sprintf("gc-%d: exit %d %v", i, code, err))
		}
	})
	every(c.VerifyEvery, func(i int) {
		problems, err := c.verify(ctx, fmt.Sprintf("verify-%d", i), url, false)
		mu.Lock()
		defer mu.Unlock()
		res.Verifies++
		if err != nil {
			problems = append(problems, err.Error())
		}
		res.Problems = append(res.Problems, problems...)
	})

	began := time.Now()
	var pushers sync.WaitGroup
	summaries := make([]pushSummary, n)
	for i := range n {
		pushers.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, c.Deadline)
			defer cancel()
			args := append([]string{"push", "--json", "--to", url, "--store", c.Store, "--signing-key", c.SecKey,
				"--state-dir", filepath.Join(c.Dir, fmt.Sprintf("state-%d", i)), "--log-format", "json"}, c.Closures.Roots(i)...)
			out, code, err := c.process(pctx, fmt.Sprintf("push-%d", i), args...)
			var s []pushSummary
			jerr := json.Unmarshal([]byte(out), &s)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil || code != 0:
				res.Failed = append(res.Failed, fmt.Sprintf("push-%d: exit %d %v (see push-%d.log)", i, code, err, i))
			case jerr != nil || len(s) != 1:
				res.Failed = append(res.Failed, fmt.Sprintf("push-%d: push --json printed %q", i, out))
			default:
				summaries[i] = s[0]
			}
		})
	}
	pushers.Wait()
	res.Makespan = time.Since(began)
	close(done)
	side.Wait()

	for _, s := range summaries {
		res.Pushed += s.Pushed
		res.Present += s.Present
		if s.Requests != nil {
			for k, v := range s.Requests.ByKind {
				res.Requests[k] += v
			}
			res.Throttled += s.Requests.Throttled
		}
	}
	res.Refused, res.Wire = px.Refused(), px.Counts()
	res.NarInfos, res.NARs = countObjects(c.Server.BucketDir())
	for i := range n {
		a, err := attempts(ctx, filepath.Join(c.Dir, fmt.Sprintf("state-%d", i)))
		if err != nil {
			return res, err
		}
		res.Attempts += a
	}
	return res, nil
}

// verify runs nixpush verify (--full at the end) and returns the
// inconsistencies it reports; garbage (orphan NARs) is none.
func (c Config) verify(ctx context.Context, name, url string, full bool) ([]string, error) {
	args := []string{"verify", "--to", url, "--trusted-key", c.PubKey, "--json", "--log-format", "json", "--state-dir", filepath.Join(c.Dir, "verify-state")}
	if full {
		args = append(args, "--full")
	}
	out, code, err := c.process(ctx, name, args...)
	if err != nil {
		return nil, err
	}
	var r struct {
		Problems []struct{ Kind, Key, Detail string }
	}
	if jerr := json.Unmarshal([]byte(out), &r); jerr != nil {
		return nil, fmt.Errorf("%s: exit %d, no report: %s", name, code, out)
	}
	var problems []string
	for _, p := range r.Problems {
		if p.Kind != "orphan-nar" {
			problems = append(problems, fmt.Sprintf("%s: %s %s %s", name, p.Kind, p.Key, p.Detail))
		}
	}
	return problems, nil
}

// VerifyFull is verify --full of the bucket, straight to the server.
func VerifyFull(ctx context.Context, c Config) ([]string, error) {
	return c.verify(ctx, "verify-full", URL(c.Server, c.Server.Addr), true)
}

// countObjects counts narinfos and NAR objects in a bucket's directory.
func countObjects(dir string) (narinfos, nars int) {
	infos, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	_ = filepath.WalkDir(filepath.Join(dir, "nar"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			nars++
		}
		return nil
	})
	return len(infos), nars
}

// attempts is how many rows of the queues in a state dir spent an
// attempt (read with sqlite3, as an operator would).
func attempts(ctx context.Context, stateDir string) (int, error) {
	files, _ := filepath.Glob(filepath.Join(stateDir, "*.queue.db"))
	total := 0
	for _, f := range files {
		out, err := run(ctx, nil, "sqlite3", "-readonly", f, "SELECT count(*) FROM items WHERE attempts > 0")
		if err != nil {
			return 0, err
		}
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(out), &n); err != nil {
			return 0, fmt.Errorf("read %s: %q", f, out)
		}
		total += n
	}
	return total, nil
}

// Seed pushes an old generation to the bucket, straight to the server,
// and ages every object in it by age: what the scheduled gc of a
// simulation finds to delete (closures older than --keep-days, orphan
// NARs older than the grace period) while the machines push.
func Seed(ctx context.Context, c Config, roots []string, age time.Duration) error {
	_, code, err := c.process(ctx, "seed", append([]string{"push", "--to", URL(c.Server, c.Server.Addr), "--store", c.Store,
		"--signing-key", c.SecKey, "--state-dir", filepath.Join(c.Dir, "seed-state"), "--log-format", "json"}, roots...)...)
	if err != nil || code != 0 {
		return fmt.Errorf("seed push: exit %d %v (see seed.log)", code, err)
	}
	for i := range 3 {
		orphan := filepath.Join(c.Server.BucketDir(), "nar", fmt.Sprintf("%052d.nar.zst", i))
		if err := os.WriteFile(orphan, []byte("an orphan NAR left by a crash"), 0o644); err != nil {
			return err
		}
	}
	old := time.Now().Add(-age)
	return filepath.WalkDir(c.Server.BucketDir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".sgwtmp" || d.Name() == "nixpush") {
			return fs.SkipDir
		}
		if d.Type().IsRegular() && d.Name() != "nix-cache-info" {
			return os.Chtimes(p, old, old)
		}
		return nil
	})
}
