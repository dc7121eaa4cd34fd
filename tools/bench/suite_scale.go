package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scaleCatchUp is how many paths the daemon finds registered while it
// was stopped; scaleNewPaths how many single new paths it is timed on.
const (
	scaleCatchUp  = 10_000
	scaleNewPaths = 5
)

const scaleIntro = "Synthetic stores of N small valid paths (100 B–4 KiB, `nix-store --load-db` with real NAR hashes) " +
	"in a layered DAG 1,000 wide, the top path's closure being the whole store; made afresh for each size, all deleted when the suite ends (ext4 is slower for a while after a mass delete), and dirty pages are synced before every timed run. " +
	"Both tools sign with one key and write `?compression=none` to a fresh `file://` cache: " +
	"`nixpush push --store ROOT --to file://DIR?compression=none --signing-key SEC --state-dir STATE TOP` against " +
	"`nix --store ROOT copy --to 'file://DIR?compression=none&secret-key=SEC' TOP`. " +
	"From 20,000 paths on, after the first pushes: the daemon (`nixpush watch-store`, started once to save its mark, then stopped) " +
	"finds 10,000 paths registered while it was stopped, timed from its start until their narinfos are all in the cache, " +
	"against `nix copy` of those paths to its own cache; up to three times per size (one per first push), the sizes taking turns, each time in the cache and state of another first push, " +
	"the first push's own last, and each time on a store of N paths (the Nix DB is put back as the first pushes left it after each catch-up but the last; the files of those paths stay in the store directory, unregistered). " +
	"The re-push then repeats the first push's command on its cache with its state (nixpush's state dir, nix copy's narinfo disk cache; both hold the last catch-up's paths too). " +
	"Then, with the daemon started again, one new path is registered at a time " +
	"(5 times) and timed from the start of `nix-store --load-db` until its narinfo is in the cache, against `nix copy` of that path. " +
	"`nixpush verify --trusted-key PUB` (no --full) of nixpush's cache runs against " +
	"`nix store verify --store file://DIR --all --no-contents` with the key trusted; `nixpush gc` is a dry run. " +
	"Every push is checked: the cache holds one narinfo per path, and nixpush's as many NAR objects (none uploaded twice). " +
	"CPU comes from wait4 of the child, peak RSS from GNU time (the daemon's from /proc). A first push stopped at -scale-timeout is a result: " +
	"the rows after it then run on nixpush's cache completed with a copy of nix copy's (same signing key)."

// runScaleSuite measures nixpush against nix copy on stores of
// b.scaleSizes paths.
func runScaleSuite(ctx context.Context, b *bench) (*report, error) {
	pub, err := os.ReadFile(filepath.Join(b.work.Dir, "key.pub"))
	if err != nil {
		return nil, err
	}
	r := &report{
		Title:  "Scale: " + b.scaleLabel,
		Method: fmt.Sprintf("first push: the median of %d runs per tool and size, each into a fresh cache (peak RSS: the largest), the sizes taking turns in every run (smallest first, then largest first) and nixpush and nix copy alternating; catch-ups: the median of %d runs per size (peak RSS: the largest), the sizes taking turns; every other workload one run (the stores take minutes to fill); single new paths: the median of 5", b.scaleRuns, min(scaleCatchUpRuns, b.scaleRuns)),
		Intro:  scaleIntro,
	}
	t := &table{Header: []string{"work", "N", "nixpush", "nix copy", "nix copy ÷ nixpush"}}
	growth := &table{Header: []string{"N", "first push: nixpush CPU per path (user / sys)", "nix copy CPU per path (user / sys)", "catch-up: nixpush CPU per path"}}
	// Worlds go when the suite ends: ext4 allocates inodes slower for a
	// while after thousands of files are deleted, which would charge
	// whatever runs next for the cleanup.
	var worlds []*scaleWorld
	defer func() {
		for _, w := range worlds {
			removeAll(w.dir)
		}
	}()
	for _, n := range b.scaleSizes {
		logf("scale: making a store of %d paths", n)
		w, err := newScaleWorld(ctx, filepath.Join(b.work.Dir, "scale", strconv.Itoa(n)), n, b.work.SecKey, strings.TrimSpace(string(pub)), b.scaleTimeout)
		if err != nil {
			return nil, err
		}
		worlds = append(worlds, w)
	}
	sizes := make([]scaleSize, len(worlds))
	for i, w := range worlds {
		sizes[i].n = w.n
	}
	firsts, err := firstPushes(ctx, b, worlds, sizes)
	if err != nil {
		return nil, err
	}
	if err := catchUps(ctx, b, worlds, sizes); err != nil {
		return nil, err
	}
	for i, w := range worlds {
		logf("scale: %d paths", w.n)
		sz := &sizes[i]
		if err := measureScale(ctx, b, w, t, sz, firsts[i]); err != nil {
			return nil, fmt.Errorf("%d paths: %w", w.n, err)
		}
		r.Notes = append(r.Notes, sz.notes...)
		pushCPU := split(sz.pushCPU, sz.pushSys, w.n)
		if sz.timedOut > 0 {
			pushCPU = "– (stopped)"
		}
		growth.add(thousands(w.n), pushCPU, split(sz.copyCPU, sz.copySys, w.n), perPath(sz.catchUpCPU, scaleCatchUp))
	}
	r.Sections = []section{
		{Title: "Rows of issue 21, nixpush " + b.scaleLabel, Table: t},
		{Title: "Growth: CPU per path", Text: "The cost of a path should not grow with the size of the work.", Table: growth},
	}
	r.Targets = scaleTargets(sizes)
	return r, nil
}

// scaleSize is what the targets need of one size.
type scaleSize struct {
	n                          int
	pushWall, copyWall         time.Duration
	pushCPU, copyCPU           time.Duration
	pushSys, copySys           time.Duration // the kernel's part
	pushRSS                    int64
	catchUpWall, catchUpCopy   time.Duration
	catchUpCPU                 time.Duration
	catchUpCell                string // the daemon's median catch-up, or what one that did not finish managed
	catchUpCopyCell            string // nix copy's, beside it
	newPath                    time.Duration
	verifyWall, nixVerifyWall  time.Duration
	verifyRSS, gcRSS           int64
	timedOut, orphans, missing int
	notes                      []string // what went wrong but is a result
}

// measureScale runs every workload on one world after its first pushes
// (the medians of nixpush's and nix copy's), adding rows to t.
func measureScale(ctx context.Context, b *bench, w *scaleWorld, t *table, sz *scaleSize, firsts [2]Sample) error {
	n := thousands(w.n)
	push, cp := firsts[0], firsts[1]
	sz.pushWall, sz.pushCPU, sz.pushRSS, sz.copyWall, sz.copyCPU = push.Wall, push.CPU, push.MaxRSS, cp.Wall, cp.CPU
	sz.pushSys, sz.copySys = push.Sys, cp.Sys
	first := describe(push, sz.timedOut > 0)
	if sz.timedOut > 0 {
		// Killed at the timeout: its CPU and memory died with it.
		first = fmt.Sprintf("stopped after %s with %s of %s written", seconds(push.Wall.Seconds()), thousands(sz.timedOut), n)
		// The rows below need a whole cache: nix copy's, copied, stands
		// in for the rest of the push (same key, so the same signatures).
		if _, err := runCmd(ctx, "", nil, "cp", "-a", "--no-clobber", w.copied.cache+"/.", w.pushed.cache+"/"); err != nil {
			return err
		}
	}
	t.add("first push of the closure", n, first, describe(cp, false), ratio(cp.Wall, push.Wall))
	again, err := w.nixpush(ctx, b.bin, w.pushArgs(w.top)...)
	if err != nil {
		return err
	}
	copyAgain, err := w.nixCopy(ctx, w.top)
	if err != nil {
		return err
	}
	t.add("re-push, all present, state kept", n, describe(again, false), describe(copyAgain, false), ratio(copyAgain.Wall, again.Wall))
	if w.n >= 20_000 {
		if err := measureDaemon(ctx, b, w, t, sz); err != nil {
			return err
		}
	}
	// Verify and gc read nixpush's cache, all it holds by now.
	narinfos, _, err := cacheCounts(w.pushed.cache)
	if err != nil {
		return err
	}
	ver, err := w.nixpush(ctx, b.bin, "verify", "--to", w.pushed.url(""), "--trusted-key", w.pubKey)
	if err != nil {
		return err
	}
	nixVer, err := w.timed(ctx, "nix", []string{"--extra-experimental-features", "nix-command", "store", "verify",
		"--store", w.pushed.url(""), "--all", "--no-contents", "--option", "trusted-public-keys", w.pubKey}, cleanEnv(w.copied.home))
	if err != nil {
		return err
	}
	sz.verifyWall, sz.nixVerifyWall, sz.verifyRSS = ver.Wall, nixVer.Wall, ver.MaxRSS
	t.add("verify (no --full)", thousands(narinfos)+" narinfos", describe(ver, false), describe(nixVer, false), ratio(nixVer.Wall, ver.Wall))
	gc, err := w.nixpush(ctx, b.bin, "gc", "--to", w.pushed.url(""), "--keep-days", "30", "--state-dir", w.pushed.state)
	if err != nil {
		return err
	}
	sz.gcRSS = gc.MaxRSS
	t.add("gc dry run", thousands(narinfos)+" narinfos", describe(gc, false), "–", "–")
	return nil
}

// firstPushes runs the first push of each world's whole closure
// -scale-runs times per tool, nixpush then nix copy, each into a cache
// and state of its own, and returns each world's medians (peak RSS: the
// largest). The worlds take turns in each run, smallest first in one run
// and largest first in the next: on this shared machine the kernel's cost
// of creating files moves from minute to minute, and sizes measured
// minutes apart (the largest right after its store was made) compared
// the minutes as much as the sizes. The first run's caches serve the rows
// after it; a first push stopped at the timeout is not repeated.
func firstPushes(ctx context.Context, b *bench, worlds []*scaleWorld, sizes []scaleSize) ([][2]Sample, error) {
	runs := make([][2][]Sample, len(worlds))
	for run := range b.scaleRuns {
		for k := range worlds {
			i := inTurn(run, k, len(worlds))
			w, sz := worlds[i], &sizes[i]
			if sz.timedOut > 0 {
				continue
			}
			logf("scale: first push %d of %d, %d paths", run+1, b.scaleRuns, w.n)
			w.pushed, w.copied = w.targets(runSuffix(run))
			p, err := w.nixpush(ctx, b.bin, w.pushArgs(w.top)...)
			if err := w.checkPush(sz, err, w.n); err != nil {
				return nil, fmt.Errorf("%d paths: %w", w.n, err)
			}
			c, err := w.nixCopy(ctx, w.top)
			if err != nil {
				return nil, fmt.Errorf("%d paths: %w", w.n, err)
			}
			if got, _, _ := cacheCounts(w.copied.cache); got != w.n {
				return nil, fmt.Errorf("%d paths: nix copy wrote %d narinfos", w.n, got)
			}
			runs[i][0], runs[i][1] = append(runs[i][0], p), append(runs[i][1], c)
		}
	}
	for _, w := range worlds {
		w.pushed, w.copied = w.targets(runSuffix(0)) // the rows after the first pushes
	}
	out := make([][2]Sample, len(worlds))
	for i, w := range worlds {
		out[i] = [2]Sample{medianSample(runs[i][0]), medianSample(runs[i][1])}
		sizes[i].notes = append(sizes[i].notes, fmt.Sprintf("first push of %s paths, CPU per path run by run: nixpush %s; nix copy %s",
			thousands(w.n), perPathRuns(runs[i][0], w.n), perPathRuns(runs[i][1], w.n)))
	}
	return out, nil
}

// inTurn is the k-th of n sizes (smallest first) measured in run: in
// order in one run, largest first in the next.
func inTurn(run, k, n int) int {
	if run%2 == 1 {
		return n - 1 - k
	}
	return k
}

// runSuffix names a first push's cache and state: the first run's are the
// world's own, which the rows after the first pushes use.
func runSuffix(run int) string {
	if run == 0 {
		return ""
	}
	return fmt.Sprintf("-run%d", run+1)
}

// perPathRuns is each sample's CPU per path, in run order.
func perPathRuns(samples []Sample, n int) string {
	cells := make([]string, len(samples))
	for i, s := range samples {
		cells[i] = perPath(s.CPU, n)
	}
	return strings.Join(cells, ", ")
}

// medianSample is the median of each figure over samples, and the
// largest peak RSS.
func medianSample(samples []Sample) Sample {
	sec := func(f func(Sample) float64) time.Duration {
		return time.Duration(summarise(samples, f).Median * float64(time.Second))
	}
	return Sample{Wall: sec(wallSeconds), CPU: sec(cpuSeconds), Sys: sec(sysSeconds), MaxRSS: int64(summarise(samples, rssBytes).Max)}
}

// checkPush checks a push of want paths in nixpush's cache: every
// narinfo there, as many NARs (a timed-out run is a result, with what it
// wrote).
func (w *scaleWorld) checkPush(sz *scaleSize, runErr error, want int) error {
	narinfos, nars, err := cacheCounts(w.pushed.cache)
	if err != nil {
		return err
	}
	switch {
	case errors.Is(runErr, errTimedOut):
		sz.timedOut, sz.missing = narinfos, want-narinfos
	case runErr != nil:
		return runErr
	case narinfos != want:
		return fmt.Errorf("nixpush's cache has %d narinfos, want %d", narinfos, want)
	}
	sz.orphans += nars - narinfos
	return nil
}

// describe is a run's figures in one cell.
func describe(s Sample, timedOut bool) string {
	cell := fmt.Sprintf("%s, %s CPU, %s", seconds(s.Wall.Seconds()), seconds(s.CPU.Seconds()), mib(float64(s.MaxRSS)))
	if timedOut {
		cell = "stopped after " + cell
	}
	return cell
}

func ratio(ref, d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", ref.Seconds()/d.Seconds())
}

// split is CPU per path with its user and kernel parts: creating files
// in a directory of 100,000 costs the kernel more per file than in one
// of 20,000, whichever tool asks.
func split(cpu, sys time.Duration, n int) string {
	if cpu <= 0 {
		return "–"
	}
	return fmt.Sprintf("%s (%s / %s)", perPath(cpu, n), perPath(cpu-sys, n), perPath(sys, n))
}

func perPath(d time.Duration, n int) string {
	if d <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(n))
}

// scaleTargets checks the goals of issue 21 on what was measured; a goal
// whose figure was not measured (a run stopped at the timeout) is missed
// and says so.
func scaleTargets(sizes []scaleSize) []targetResult {
	var out []targetResult
	by := map[int]scaleSize{}
	notMeasured := func(name, why string) targetResult {
		return targetResult{Name: name, Detail: "not measured: " + why}
	}
	for _, s := range sizes {
		by[s.n] = s
		detail := fmt.Sprintf("%d NAR objects beyond the narinfos; complete", s.orphans)
		if s.timedOut > 0 {
			detail = fmt.Sprintf("%d NAR objects beyond the narinfos; stopped with %s paths not written", s.orphans, thousands(s.missing))
		}
		out = append(out, targetResult{Name: fmt.Sprintf("%s paths: each NAR uploaded once, every path written", thousands(s.n)),
			Met: s.orphans == 0 && s.timedOut == 0, Detail: detail})
		if s.n >= 20_000 {
			out = append(out, targetResult{
				Name: fmt.Sprintf("%s: first push ≥ 2× faster than nix copy", thousands(s.n)), Met: s.timedOut == 0 && s.copyWall >= 2*s.pushWall,
				Detail: ratio(s.copyWall, s.pushWall)})
		}
	}
	const cpuGrowth = "100,000 paths cost at most 6× the CPU of 20,000"
	if a, b := by[20_000], by[100_000]; a.pushCPU > 0 && b.pushCPU > 0 && a.timedOut == 0 && b.timedOut == 0 {
		out = append(out, targetResult{Name: cpuGrowth, Met: b.pushCPU <= 6*a.pushCPU,
			Detail: fmt.Sprintf("%.1f×", b.pushCPU.Seconds()/a.pushCPU.Seconds())})
	} else if a.n > 0 && b.n > 0 {
		out = append(out, notMeasured(cpuGrowth, "a first push was stopped"))
	}
	s, ok := by[100_000]
	if !ok {
		return out
	}
	if s.timedOut == 0 {
		out = append(out, targetResult{Name: "100,000: first push peak RSS ≤ 200 MiB", Met: s.pushRSS <= 200<<20, Detail: mib(float64(s.pushRSS))})
	} else {
		out = append(out, notMeasured("100,000: first push peak RSS ≤ 200 MiB", "the first push was stopped"))
	}
	if s.catchUpWall > 0 {
		out = append(out,
			targetResult{Name: "catch-up of 10,000 on a 100,000 store at least as fast as nix copy", Met: s.catchUpWall <= s.catchUpCopy,
				Detail: ratio(s.catchUpCopy, s.catchUpWall)},
			targetResult{Name: "one new path on a 100,000 store in the cache within 0.5 s", Met: s.newPath > 0 && s.newPath <= 500*time.Millisecond,
				Detail: millis(s.newPath)})
		if a := by[20_000]; a.catchUpCPU > 0 {
			out = append(out, targetResult{Name: "catch-up CPU per path independent of the store's size (100,000 ≤ 1.5× 20,000)",
				Met: s.catchUpCPU <= a.catchUpCPU*3/2, Detail: fmt.Sprintf("%.2f×", s.catchUpCPU.Seconds()/a.catchUpCPU.Seconds())})
		}
	} else {
		out = append(out, notMeasured("catch-up of 10,000 on a 100,000 store at least as fast as nix copy, and one new path within 0.5 s",
			"the catch-up did not finish"))
	}
	out = append(out,
		targetResult{Name: "verify no slower than nix store verify --all --no-contents", Met: s.verifyWall <= s.nixVerifyWall,
			Detail: ratio(s.nixVerifyWall, s.verifyWall)},
		targetResult{Name: "verify and gc peak RSS ≤ 200 MiB", Met: s.verifyRSS <= 200<<20 && s.gcRSS <= 200<<20,
			Detail: mib(float64(s.verifyRSS)) + " / " + mib(float64(s.gcRSS))},
	)
	return out
}

// parseSizes reads -scale-sizes.
func parseSizes(list string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-scale-sizes: %q is not a size", f)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
