package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"
)

const idleIntro = "What the daemon costs while nothing happens. " +
	"`nixpush watch-store --store ROOT --to file:///CACHE?compression=zstd --signing-key SEC --state-dir FRESH --log-format json` " +
	"runs on the workspace's private store (the copy suite's inputs, nothing new registered); from the moment it logs " +
	"\"watching\" the bench reads /proc/PID/stat (utime+stime of all threads), /proc/PID/status (VmRSS, VmHWM) and the " +
	"context switches of every thread (/proc/PID/task/*/status) once a second, and compares the first and the last " +
	"reading. Context switches count how often the daemon's threads woke up."

// runIdleSuite watches an idle daemon for b.idleSeconds.
func runIdleSuite(ctx context.Context, b *bench) (*report, error) {
	scratch, err := b.work.newScratch("idle")
	if err != nil {
		return nil, err
	}
	defer removeAll(scratch)
	d := daemonDirs{Root: b.work.Root, Cache: filepath.Join(scratch, "cache"),
		State: filepath.Join(scratch, "state"), Home: filepath.Join(scratch, "home")}
	started := time.Now()
	ws, watching, err := startWatchStore(ctx, b.bin, b.work.SecKey, d)
	if err != nil {
		return nil, err
	}
	defer ws.Stop() //nolint:errcheck // stopped and checked below; this is for early returns
	first, err := ws.Stats()
	if err != nil {
		return nil, err
	}
	logf("idle: watching %d s", b.idleSeconds)
	last, peakRSS := first, first.RSS
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := first.At.Add(time.Duration(b.idleSeconds) * time.Second)
	for last.At.Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		if last, err = ws.Stats(); err != nil {
			return nil, fmt.Errorf("daemon gone while idle: %w\n%s", err, ws.logTail())
		}
		peakRSS = max(peakRSS, last.RSS)
	}
	if err := ws.Stop(); err != nil {
		return nil, err
	}
	return idleReport(b, idleFigures{first, last, peakRSS, watching.Sub(started), ws.Problems}), nil
}

// idleFigures are the two readings around the idle time, and the rest.
type idleFigures struct {
	first, last procStats
	peakRSS     int64         // largest VmRSS of the readings
	startup     time.Duration // process start → "watching" read
	problems    []string      // the daemon's warn/error lines
}

func idleReport(b *bench, f idleFigures) *report {
	wall := f.last.At.Sub(f.first.At)
	cpu := f.last.CPU - f.first.CPU
	share := cpu.Seconds() / wall.Seconds()
	t := &table{Header: []string{"watched", "CPU time", "CPU (% of one core)", "RSS at end",
		"peak RSS (sampled / VmHWM)", "context switches per s", "threads"}}
	t.add(seconds(wall.Seconds()), millis(cpu), fmt.Sprintf("%.3f %%", 100*share),
		mib(float64(f.last.RSS)), mib(float64(f.peakRSS))+" / "+mib(float64(f.last.HWM)),
		fmt.Sprintf("%.1f", float64(f.last.Switches-f.first.Switches)/wall.Seconds()), fmt.Sprint(f.last.Threads))
	r := &report{
		Title:  "Idle daemon: CPU and memory of watch-store with nothing to do",
		Method: fmt.Sprintf("one daemon watched for %d s (-idle-seconds)", b.idleSeconds),
		Intro:  idleIntro,
		Sections: []section{{
			Title: "watch-store, idle",
			Text: fmt.Sprintf("Start-up (process start → \"watching\" read by the bench) took %s, and %s of CPU "+
				"(counted in %d ms ticks).", millis(f.startup), millis(f.first.CPU), 1000/clockTick),
			Table: t,
		}},
	}
	target := targetResult{Name: "idle CPU < 1 % of one core", Met: share < 0.01,
		Detail: fmt.Sprintf("%.3f %% (%s of CPU in %s)", 100*share, millis(cpu), seconds(wall.Seconds()))}
	if !target.Met {
		target.Detail += fmt.Sprintf(", %.2f points over", 100*share-1)
	}
	r.Targets = []targetResult{target}
	r.Notes = append(r.Notes, fmt.Sprintf("/proc counts CPU in %d ms ticks, so the CPU share is exact to ±%.3f points over %s.",
		1000/clockTick, 100*2.0/clockTick/wall.Seconds(), seconds(wall.Seconds())))
	if len(f.problems) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the daemon logged %d warnings or errors, the first: `%s`", len(f.problems), f.problems[0]))
	}
	return r
}
