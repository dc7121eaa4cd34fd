package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"nixpush/cache"
	"nixpush/internal/fleet"
)

// The fleet suite times the fleet simulation (internal/fleet) with and
// without a throttling proxy: throttling must cost time, not failures,
// and not much time.

const fleetIntro = "20 machines (nixpush push processes, each with a state dir of its own, from one private store) " +
	"start at once against one versitygw bucket behind a proxy (`servertest.S3Proxy`) and push closures that " +
	"share a 40-path chain and a 6 MiB path, with 8 leaves and a 2 MiB path of their own each (221 paths); " +
	"`nixpush gc --keep-days 1 --grace 30s --delete` runs every 10 s and `nixpush verify` every 5 s beside them " +
	"(an old generation of 10 paths and 3 orphan NARs, aged 3 days, is there for gc to collect). " +
	"Throttled runs: the proxy answers 5 % of requests 503 SlowDown and every request 429 with Retry-After: 1 " +
	"for 300 ms in every 5 s. Runs alternate, each on a fresh server. Makespan: from the start of the machines " +
	"to the end of the last. Requests per path: every machine's push --json, over the 50 paths each pushes " +
	"(new or present)."

func runFleetSuite(ctx context.Context, b *bench) (*report, error) {
	w := b.work
	dir, err := w.newScratch("fleet")
	if err != nil {
		return nil, err
	}
	defer removeAll(dir)
	env := cleanEnv(filepath.Join(dir, "home"))
	prefix := fmt.Sprintf("fleet-%d", time.Now().UnixNano())
	logf("fleet: building the closures of 20 machines")
	closures, err := fleet.Build(ctx, env, w.Root, dir, prefix, 20, 40, 8)
	if err != nil {
		return nil, err
	}
	oldSrc := filepath.Join(dir, "old")
	if err := os.MkdirAll(oldSrc, 0o755); err != nil {
		return nil, err
	}
	var oldSrcs []string
	for i := range 10 {
		p := filepath.Join(oldSrc, fmt.Sprintf("old-%s-%d", prefix, i))
		if err := os.WriteFile(p, []byte(strings.Repeat(p, 50)), 0o644); err != nil {
			return nil, err
		}
		oldSrcs = append(oldSrcs, p)
	}
	old, err := w.addToStore(ctx, oldSrcs...)
	if err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(filepath.Join(w.Dir, "key.pub"))
	if err != nil {
		return nil, err
	}
	type run struct {
		throttle bool
		res      fleet.Result
		problems []string
	}
	var runs []run
	for i := range 2 * b.runs {
		th := i%2 == 1
		rd := filepath.Join(dir, fmt.Sprintf("run-%d", i))
		v, err := startVersitygw(filepath.Join(rd, "versitygw"), "fleet")
		if err != nil {
			return nil, err
		}
		cfg := fleet.Config{Bin: b.bin, Store: w.Root, SecKey: w.SecKey, PubKey: strings.TrimSpace(string(pub)),
			Env: append(v.AWSEnv(rd), "AWS_REGION=us-east-1"), Dir: filepath.Join(rd, "fleet"), Server: v, Closures: closures,
			GCEvery: 10 * time.Second, VerifyEvery: 5 * time.Second, Deadline: 5 * time.Minute}
		if th {
			cfg.Throttling = fleet.BusyS3
		}
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			v.Stop()
			return nil, err
		}
		if err := fleet.Seed(ctx, cfg, old, 72*time.Hour); err != nil {
			v.Stop()
			return nil, err
		}
		logf("fleet: run %d (throttled %v)", i+1, th)
		res, err := fleet.Run(ctx, cfg)
		if err == nil {
			var full []string
			full, err = fleet.VerifyFull(ctx, cfg)
			res.Problems = append(res.Problems, full...)
		}
		v.Stop()
		if err != nil {
			return nil, err
		}
		runs = append(runs, run{throttle: th, res: res})
	}

	t := &table{Header: []string{"run", "makespan", "failed pushes", "NAR objects ÷ narinfos", "throttled answers", "attempts spent", "requests a path", "gc runs (objects deleted)", "inconsistencies"}}
	var plain, slow []float64
	allOK, ratioOK, attemptsOK := true, true, true
	for i, r := range runs {
		label := fmt.Sprintf("%d, no throttling", i/2+1)
		if r.throttle {
			label = fmt.Sprintf("%d, throttled", i/2+1)
			slow = append(slow, r.res.Makespan.Seconds())
		} else {
			plain = append(plain, r.res.Makespan.Seconds())
		}
		objects := float64(r.res.NARs) / float64(r.res.NarInfos)
		reqs := cache.Requests{ByKind: r.res.Requests}.Total()
		perPath := float64(reqs) / float64(r.res.Pushed+r.res.Present)
		ratioOK = ratioOK && objects <= 1.1
		attemptsOK = attemptsOK && r.res.Attempts == 0
		allOK = allOK && len(r.res.Failed) == 0 && len(r.res.Problems) == 0
		t.add(label, fmt.Sprintf("%.1f s", r.res.Makespan.Seconds()), fmt.Sprint(len(r.res.Failed)),
			fmt.Sprintf("%d ÷ %d = %.2f", r.res.NARs, r.res.NarInfos, objects),
			fmt.Sprintf("%d (503: %d, 429: %d)", r.res.Refused["503"]+r.res.Refused["429"], r.res.Refused["503"], r.res.Refused["429"]),
			fmt.Sprint(r.res.Attempts), fmt.Sprintf("%.2f", perPath), fmt.Sprintf("%d (%d)", r.res.GCRuns, r.res.Deleted),
			fmt.Sprint(len(r.res.Problems)))
	}
	slices.Sort(plain)
	slices.Sort(slow)
	ratio := slow[len(slow)/2] / plain[len(plain)/2]
	rep := &report{Title: "Fleet: 20 machines on one bucket, with and without throttling", Method: fmt.Sprintf("%d runs each, alternating; median makespans", b.runs),
		Intro: fleetIntro, Sections: []section{{Title: "20 machines, 221 paths", Table: t}}}
	rep.Targets = []targetResult{
		{Name: "makespan with throttling ≤ 1.3 × without", Met: ratio <= 1.3, Detail: fmt.Sprintf("median %.1f s ÷ %.1f s = %.2f", slow[len(slow)/2], plain[len(plain)/2], ratio)},
		{Name: "0 failed pushes, 0 inconsistencies (verify during the runs and --full after)", Met: allOK, Detail: "see the table"},
		{Name: "at most 1.1 NAR objects per narinfo", Met: ratioOK, Detail: "see the table"},
		{Name: "no attempt spent on a throttled answer", Met: attemptsOK, Detail: "queue rows with attempts > 0, every machine"},
	}
	return rep, nil
}
