package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// scaleCatchUpRuns is how many catch-ups the daemon is timed on per store
// size (at most one per first push's cache): a single run on this machine
// moves by a third.
const scaleCatchUpRuns = 3

// catchUpRun is one catch-up of the daemon and nix copy of the same paths.
type catchUpRun struct {
	daemon, copy Sample
	err          error // the daemon did not finish (a result too)
	done         int   // narinfos of the paths in the cache when it stopped
}

// catchUps times the daemon's catch-up on every world of 20,000 paths or
// more: scaleCatchUp paths registered while it was stopped, against nix
// copy of those paths. Each world is timed scaleCatchUpRuns times, the
// worlds taking turns as in the first pushes, each run in the cache and
// state of another first push and on the store as the first pushes left
// it (its Nix DB put back after each run). The last run is in the
// world's own cache, which keeps its paths for the rows after it.
func catchUps(ctx context.Context, b *bench, worlds []*scaleWorld, sizes []scaleSize) error {
	type timedWorld struct {
		w    *scaleWorld
		sz   *scaleSize
		snap *nixDBSnapshot
		runs []catchUpRun
	}
	var timed []*timedWorld
	for i, w := range worlds {
		if w.n < 20_000 || sizes[i].timedOut > 0 {
			continue
		}
		s, err := snapshotNixDB(w.root)
		if err != nil {
			return err
		}
		timed = append(timed, &timedWorld{w: w, sz: &sizes[i], snap: s})
	}
	runs := min(scaleCatchUpRuns, b.scaleRuns)
	for run := range runs {
		for k := range timed {
			t := timed[inTurn(run, k, len(timed))]
			if n := len(t.runs); n > 0 && t.runs[n-1].err != nil {
				continue // the daemon did not finish: once is enough
			}
			logf("scale: catch-up %d of %d on the %d-path store", run+1, runs, t.w.n)
			// The world's own cache last; before it, those of first pushes 2, 3, ...
			pushed, copied := t.w.targets(runSuffix((run + 1) % runs))
			r, err := catchUp(ctx, b, t.w, pushed, copied, fmt.Sprintf("c%d", run))
			if err != nil {
				return fmt.Errorf("%d paths: %w", t.w.n, err)
			}
			t.runs = append(t.runs, r)
			if run < runs-1 {
				if err := t.snap.restore(); err != nil {
					return err
				}
			}
		}
	}
	for _, t := range timed {
		summariseCatchUps(t.w, t.sz, t.runs)
	}
	return nil
}

// catchUp times one catch-up of w's daemon in pushed's cache and state,
// and nix copy of the same paths to copied's.
func catchUp(ctx context.Context, b *bench, w *scaleWorld, pushed, copied scaleTarget, family string) (catchUpRun, error) {
	d := daemonDirs{Root: w.root, Cache: pushed.cache, State: pushed.state, Home: pushed.home, URL: pushed.url("")}
	// A first start saves the mark: what is registered after it is new.
	ws, _, err := startWatchStore(ctx, b.bin, w.secKey, d)
	if err != nil {
		return catchUpRun{}, err
	}
	if err := ws.Stop(); err != nil {
		return catchUpRun{}, fmt.Errorf("the daemon's first start: %v", firstLine(err))
	}
	added, err := w.addPaths(ctx, family, scaleCatchUp, w.top)
	if err != nil {
		return catchUpRun{}, err
	}
	syscall.Sync()
	start := time.Now()
	ws, _, err = startWatchStore(ctx, b.bin, w.secKey, d)
	if err != nil {
		return catchUpRun{}, err
	}
	var r catchUpRun
	r.err = waitNarinfos(ctx, pushed.cache, added, w.timeout)
	r.daemon.Wall = time.Since(start)
	st, err := ws.Stats()
	if err != nil {
		ws.Stop() //nolint:errcheck // the Stats error is the one to report
		return r, err
	}
	r.daemon.CPU, r.daemon.MaxRSS = st.CPU, st.HWM
	if err := ws.Stop(); err != nil && r.err == nil {
		return r, fmt.Errorf("the daemon after its catch-up: %v", firstLine(err))
	}
	r.done = countNarinfos(pushed.cache, added)
	r.copy, err = w.nixCopyTo(ctx, copied, added[len(added)-1])
	return r, err
}

// summariseCatchUps keeps the medians of a world's catch-ups (the daemon's
// peak RSS: the largest) and says what each run cost.
func summariseCatchUps(w *scaleWorld, sz *scaleSize, runs []catchUpRun) {
	var daemon, copies []Sample
	for _, r := range runs {
		if r.err != nil {
			sz.catchUpCell = fmt.Sprintf("stopped after %s with %s of %s in the cache", describe(r.daemon, false), thousands(r.done), thousands(scaleCatchUp))
			sz.catchUpCopyCell = describe(r.copy, false)
			sz.notes = append(sz.notes, fmt.Sprintf("%s store: the catch-up did not finish within -scale-timeout (%v), so single new paths were not timed", thousands(w.n), r.err))
			return
		}
		daemon, copies = append(daemon, r.daemon), append(copies, r.copy)
	}
	d, c := medianSample(daemon), medianSample(copies)
	sz.catchUpWall, sz.catchUpCPU, sz.catchUpCopy = d.Wall, d.CPU, c.Wall
	sz.catchUpCell, sz.catchUpCopyCell = describe(d, false), describe(c, false)
	sz.notes = append(sz.notes, fmt.Sprintf("%s store, catch-up of %s paths, the daemon's CPU per path run by run (each on a store of %s paths): %s; nix copy %s",
		thousands(w.n), thousands(scaleCatchUp), thousands(w.n), perPathRuns(daemon, scaleCatchUp), perPathRuns(copies, scaleCatchUp)))
}

// measureDaemon adds the catch-up row of w (timed by catchUps) and times
// single new paths with the daemon running on w's own cache, against nix
// copy of the same path.
func measureDaemon(ctx context.Context, b *bench, w *scaleWorld, t *table, sz *scaleSize) error {
	row := "watch-store: catch-up of " + thousands(scaleCatchUp) + " paths registered while stopped"
	store := thousands(w.n) + " store"
	if sz.catchUpCell == "" {
		t.add(row, store, "– (the first push was stopped)", "–", "–")
		return nil
	}
	// A catch-up that did not finish is a result too (the daemon before
	// issue 21): what it managed, with no ratio and no new paths after.
	t.add(row, store, sz.catchUpCell, sz.catchUpCopyCell, ratio(sz.catchUpCopy, sz.catchUpWall))
	if sz.catchUpWall == 0 {
		return nil
	}

	d := daemonDirs{Root: w.root, Cache: w.pushed.cache, State: w.pushed.state, Home: w.pushed.home, URL: w.pushed.url("")}
	ws, _, err := startWatchStore(ctx, b.bin, w.secKey, d)
	if err != nil {
		return err
	}
	defer ws.Stop() //nolint:errcheck // the last Stop below reports
	var lat latencies
	var last string
	for k := range scaleNewPaths {
		// Timed from before nix-store --load-db starts: the daemon may
		// well push the path before that command has exited.
		registered := time.Now()
		paths, err := w.addPaths(ctx, fmt.Sprintf("o%d", k), 1, w.top)
		if err != nil {
			return err
		}
		if err := waitNarinfos(ctx, w.pushed.cache, paths, time.Minute); err != nil {
			return fmt.Errorf("new path: %w", err)
		}
		lat = append(lat, time.Since(registered))
		last = paths[0]
	}
	one, err := w.nixCopy(ctx, last)
	if err != nil {
		return err
	}
	sz.newPath = lat.percentile(0.5)
	t.add("watch-store: one new path → narinfo in the cache", store,
		fmt.Sprintf("median %s (min %s, max %s)", millis(sz.newPath), millis(lat.min()), millis(lat.max())),
		describe(one, false), ratio(one.Wall, sz.newPath))
	if err := ws.Stop(); err != nil {
		sz.notes = append(sz.notes, fmt.Sprintf("%s store, the daemon after the new paths: %v", thousands(w.n), firstLine(err)))
	}
	return nil
}

func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}
