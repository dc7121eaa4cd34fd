package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// measureDaemon times the daemon on w's store, after the first push: the
// catch-up of scaleCatchUp paths registered while it was stopped, then
// single new paths, each against nix copy of the same paths.
func measureDaemon(ctx context.Context, b *bench, w *scaleWorld, t *table, sz *scaleSize) error {
	d := daemonDirs{Root: w.root, Cache: w.pushed.cache, State: w.pushed.state, Home: w.pushed.home, URL: w.pushed.url("")}
	// A first start saves the mark: what is registered after it is new.
	ws, _, err := startWatchStore(ctx, b.bin, w.secKey, d)
	if err != nil {
		return err
	}
	if err := ws.Stop(); err != nil {
		sz.notes = append(sz.notes, fmt.Sprintf("%s store, the daemon's first start: %v", thousands(w.n), firstLine(err)))
	}
	added, err := w.addPaths(ctx, "c", scaleCatchUp, w.top)
	if err != nil {
		return err
	}
	start := time.Now()
	ws, _, err = startWatchStore(ctx, b.bin, w.secKey, d)
	if err != nil {
		return err
	}
	defer ws.Stop() //nolint:errcheck // the last Stop below reports
	waitErr := waitNarinfos(ctx, w.pushed.cache, added, w.timeout)
	catchUp := time.Since(start)
	st, err := ws.Stats()
	if err != nil {
		return err
	}
	top := added[len(added)-1]
	cp, err := w.nixCopy(ctx, top)
	if err != nil {
		return err
	}
	row := "watch-store: catch-up of " + thousands(scaleCatchUp) + " paths registered while stopped"
	cell := fmt.Sprintf("%s, %s CPU, %s", seconds(catchUp.Seconds()), seconds(st.CPU.Seconds()), mib(float64(st.HWM)))
	if waitErr != nil {
		// A result too (the daemon before issue 21): what it managed.
		t.add(row, thousands(w.n)+" store", fmt.Sprintf("stopped after %s with %s of %s in the cache",
			cell, thousands(countNarinfos(w.pushed.cache, added)), thousands(scaleCatchUp)), describe(cp, false), "–")
		sz.notes = append(sz.notes, fmt.Sprintf("%s store: the catch-up did not finish within -scale-timeout, so single new paths were not timed", thousands(w.n)))
		return nil
	}
	sz.catchUpWall, sz.catchUpCPU, sz.catchUpCopy = catchUp, st.CPU, cp.Wall
	t.add(row, thousands(w.n)+" store", cell, describe(cp, false), ratio(cp.Wall, catchUp))

	// One new path at a time, the daemon warm.
	var lat latencies
	var last string
	for k := range scaleNewPaths {
		// Timed from before nix-store --load-db starts: the daemon may
		// well push the path before that command has exited.
		registered := time.Now()
		paths, err := w.addPaths(ctx, fmt.Sprintf("o%d", k), 1, top)
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
	t.add("watch-store: one new path → narinfo in the cache", thousands(w.n)+" store",
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
