package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

const daemonIntro = "How soon the daemon notices a new store path. " +
	"`nixpush watch-store --store ROOT --to file:///CACHE?compression=zstd --signing-key SEC --state-dir FRESH --log-format json` " +
	"runs on a private store; once it has logged \"watching\", the bench registers new small files one at a time with " +
	"`nix-store --store ROOT --add FILE` (the next add starts when the previous returns). " +
	"T0 is the moment that `nix-store --add` returned. Its DB commit happened before that, so T0 is late by the tail " +
	"of the command, and a row is often in the queue before T0 (a negative delay). A second origin is therefore shown: " +
	"when the path's `.lock` file in the store dir was deleted, which `nix-store --add` does right after the commit " +
	"(seen by the bench with inotify, as the daemon sees it). Row in the queue is the row's `enqueued_at` (the daemon's " +
	"`time.Now()`, the same clock); upload recorded is its `finished_at`; narinfo in the cache is when the bench, watching " +
	"the cache dir with inotify, saw `HASH.narinfo` appear. Each round has a fresh daemon, state dir and cache; " +
	"the tables pool the paths of every round."

// runDaemonSuite measures detection latency over -runs rounds.
func runDaemonSuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("daemon")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	root := filepath.Join(scratch, "root")
	if _, err := b.work.nix(ctx, "nix-store", "--store", root, "--init"); err != nil {
		return nil, fmt.Errorf("init store: %w", err)
	}
	var rounds []*daemonRound
	for round := range b.runs {
		r, err := runDaemonRound(ctx, b, scratch, root, round)
		if err != nil {
			return nil, err
		}
		enq, cache := r.stage(since(returned, enqueued)), r.stage(since(returned, inCache))
		logf("daemon round %d/%d: %d paths, enqueue p50 %s p99 %s, in cache p50 %s p99 %s",
			round+1, b.runs, len(r.Regs), millis(enq.percentile(0.5)), millis(enq.percentile(0.99)),
			millis(cache.percentile(0.5)), millis(cache.percentile(0.99)))
		rounds = append(rounds, r)
	}
	return daemonReport(rounds), nil
}

// delay is the time from one moment of a registration to another; ok is
// false when the bench did not see one of them.
type delay func(registration) (time.Duration, bool)

// The moments of a registration.
func started(r registration) time.Time  { return r.Start }
func unlocked(r registration) time.Time { return r.Unlocked }
func returned(r registration) time.Time { return r.T0 }
func enqueued(r registration) time.Time { return r.Enqueued }
func finished(r registration) time.Time { return r.Finished }
func inCache(r registration) time.Time  { return r.InCache }

func since(from, to func(registration) time.Time) delay {
	return func(r registration) (time.Duration, bool) {
		a, b := from(r), to(r)
		return b.Sub(a), !a.IsZero() && !b.IsZero()
	}
}

func (r *daemonRound) stage(d delay) latencies {
	var l latencies
	for _, reg := range r.Regs {
		if v, ok := d(reg); ok {
			l = append(l, v)
		}
	}
	return l
}

func pooled(rounds []*daemonRound, d delay) latencies {
	var l latencies
	for _, r := range rounds {
		l = append(l, r.stage(d)...)
	}
	return l
}

// p50p99 formats a stage's median and 99th percentile, "–" when empty.
func p50p99(l latencies) (string, string, string) {
	if len(l) == 0 {
		return "–", "–", "–"
	}
	return millis(l.percentile(0.5)), millis(l.percentile(0.99)), millis(l.max())
}

func daemonReport(rounds []*daemonRound) *report {
	r := &report{
		Title:  "Detection latency: watch-store, from nix-store --add to the cache",
		Method: fmt.Sprintf("%d rounds of %d paths, pooled; percentiles are nearest-rank", len(rounds), daemonPathsPerRound),
		Intro:  daemonIntro,
	}
	enq, cache := pooled(rounds, since(returned, enqueued)), pooled(rounds, since(returned, inCache))
	unlockedSeen := len(pooled(rounds, since(unlocked, returned)))
	stages := &table{Header: []string{"stage", "from T0: p50", "p99", "max",
		"from the .lock removal: p50", "p99", "max"}}
	for _, s := range []struct {
		name string
		at   func(registration) time.Time
	}{
		{"row in the queue (enqueued_at)", enqueued},
		{"upload recorded (finished_at)", finished},
		{"narinfo in the cache (seen by the bench)", inCache},
	} {
		a, b, c := p50p99(pooled(rounds, since(returned, s.at)))
		d, e, f := p50p99(pooled(rounds, since(unlocked, s.at)))
		stages.add(s.name, a, b, c, d, e, f)
	}
	r.Sections = append(r.Sections, section{
		Title: fmt.Sprintf("%s paths added one at a time (%d rounds)", thousands(len(enq)), len(rounds)),
		Text: fmt.Sprintf("The .lock removal was seen for %d of %d paths. For scale, nix-store --add itself "+
			"(p50 / p99): start → .lock removed %s / %s, .lock removed → return %s / %s, start → return %s / %s.",
			unlockedSeen, len(enq),
			millis(pooled(rounds, since(started, unlocked)).percentile(0.5)), millis(pooled(rounds, since(started, unlocked)).percentile(0.99)),
			millis(pooled(rounds, since(unlocked, returned)).percentile(0.5)), millis(pooled(rounds, since(unlocked, returned)).percentile(0.99)),
			millis(pooled(rounds, since(started, returned)).percentile(0.5)), millis(pooled(rounds, since(started, returned)).percentile(0.99))),
		Table: stages,
	})
	r.Sections = append(r.Sections, perRoundSection(rounds))
	fromLock := func(p float64, at func(registration) time.Time) string {
		l := pooled(rounds, since(unlocked, at))
		if len(l) == 0 {
			return ""
		}
		return fmt.Sprintf("; from the .lock removal %s", millis(l.percentile(p)))
	}
	r.Targets = []targetResult{
		latencyTarget("row in the queue, p50 ≤ 50 ms", enq, 0.5, 50*time.Millisecond),
		latencyTarget("row in the queue, p99 ≤ 250 ms", enq, 0.99, 250*time.Millisecond),
		latencyTarget("narinfo in the cache, p50 ≤ 300 ms", cache, 0.5, 300*time.Millisecond),
	}
	r.Targets[0].Detail += fromLock(0.5, enqueued)
	r.Targets[1].Detail += fromLock(0.99, enqueued)
	r.Targets[2].Detail += fromLock(0.5, inCache)
	if n := enq.below(0); n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d of %d rows were enqueued before their nix-store --add returned "+
			"(negative delays from T0): the daemon saw the DB commit while nix-store was still finishing.", n, len(enq)))
	}
	r.Notes = append(r.Notes, fmt.Sprintf("upload recorded (finished_at) → narinfo seen by the bench: median %s, p99 %s.",
		millis(pooled(rounds, since(finished, inCache)).percentile(0.5)), millis(pooled(rounds, since(finished, inCache)).percentile(0.99))))
	var problems []string
	for _, rd := range rounds {
		problems = append(problems, rd.Problems...)
	}
	if len(problems) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the daemon logged %d warnings or errors, the first: `%s`",
			len(problems), problems[0]))
	}
	return r
}

// perRoundSection shows each round's figures and what the machine did.
func perRoundSection(rounds []*daemonRound) section {
	t := &table{Header: []string{"round", "paths", "enqueue from T0 p50 / p99", "in cache from T0 p50 / p99",
		"wall", "daemon CPU", "daemon CPU per path", "others busy"}}
	for i, rd := range rounds {
		e, c := rd.stage(since(returned, enqueued)), rd.stage(since(returned, inCache))
		t.add(fmt.Sprint(i+1), fmt.Sprint(len(rd.Regs)),
			millis(e.percentile(0.5))+" / "+millis(e.percentile(0.99)),
			millis(c.percentile(0.5))+" / "+millis(c.percentile(0.99)),
			seconds(rd.Wall.Seconds()), seconds(rd.DaemonCPU.Seconds()),
			millis(rd.DaemonCPU/time.Duration(len(rd.Regs))), fmt.Sprintf("%.2f cores", rd.Others))
	}
	return section{
		Title: "Per round",
		Text: "Daemon CPU is utime+stime from /proc/PID/stat over the round; others busy is the CPU the rest of the " +
			"machine used meanwhile (all cores' busy time minus the daemon, the adds and the bench).",
		Table: t,
	}
}
