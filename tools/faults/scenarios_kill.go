package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// fileCache is a file:// cache in the scenario's scratch.
func (r *run) fileCache(query string) (dir, url string, err error) {
	dir = filepath.Join(r.dir, "cache")
	url = "file://" + dir
	if query != "" {
		url += "?" + query
	}
	return dir, url, os.MkdirAll(dir, 0o755)
}

// sigkillPush SIGKILLs push at random points, three times, then lets a
// fourth push finish: rows a killed push claimed must be taken over.
func sigkillPush(ctx context.Context, r *run) error {
	cache, url, px, err := r.proxiedNginx()
	if err != nil {
		return err
	}
	// A round trip slows the push to seconds, so kills land anywhere in it.
	if err := px.Latency(200 * time.Millisecond); err != nil {
		return err
	}
	top, err := r.chain(ctx, r.sc.name, 30, 64)
	if err != nil {
		return err
	}
	big, err := r.addLarge(ctx, "big", 4, 1)
	if err != nil {
		return err
	}
	closure, err := r.closure(ctx, top, big)
	if err != nil {
		return err
	}
	r.watch(cache)
	sd := filepath.Join(r.dir, "state")
	var killedAt []string
	for i := range 3 {
		p, err := r.nixpush(fmt.Sprintf("push-%d", i), nil, r.pushArgs(url, sd, []string{"--jobs", "4"}, top, big)...)
		if err != nil {
			return err
		}
		// Round i kills after a random 1–10 narinfos more than round
		// i-1 allowed, then up to 200 ms later: at startup, mid-NAR or
		// between a NAR and its narinfo, at a different point each run.
		target := 1 + 10*i + rand.IntN(10)
		waitFor(ctx, 20*time.Second, func() bool { return countNarinfos(cache) >= target || p.exited() })
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		p.kill()
		killedAt = append(killedAt, fmt.Sprintf("at %d narinfos", countNarinfos(cache)))
	}
	r.note("killed %s", strings.Join(killedAt, ", "))
	code, err := r.nixpushWait("push", 60*time.Second, nil, r.pushArgs(url, sd, nil, top, big)...)
	if err != nil {
		return err
	}
	r.expectCode("push", code, 0)
	r.checked("3 SIGKILLs, then push exits 0")
	return r.settle(ctx, cache, url, nil, closure, sd)
}

// sigkillWatchStore SIGKILLs the daemon three times while paths keep
// being registered, restarting it each time: paths registered while it
// was dead and rows it held must all be pushed.
func sigkillWatchStore(ctx context.Context, r *run) error {
	cache, url, px, err := r.proxiedNginx()
	if err != nil {
		return err
	}
	// A round trip keeps uploads in flight when the kills come.
	if err := px.Latency(100 * time.Millisecond); err != nil {
		return err
	}
	r.watch(cache)
	sd := filepath.Join(r.dir, "state")
	d, err := r.watchStore("watch-store-0", url, sd, nil)
	if err != nil {
		return err
	}
	var closure []string
	for i := range 8 {
		if _, err := r.addChain(ctx, &closure, 5, 128); err != nil {
			return err
		}
		if i%3 == 1 { // kill at a random point after this batch lands in the DB
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
			d.kill()
			if d, err = r.watchStore(fmt.Sprintf("watch-store-%d", i), url, sd, nil); err != nil {
				return err
			}
		}
	}
	r.note("3 SIGKILLs of watch-store while 8 batches of 5 paths were registered; %d narinfos when the last daemon started", countNarinfos(cache))
	if r.inCache(ctx, cache, closure, 40*time.Second) {
		r.checked("every registered path pushed by the restarted daemons")
	} else {
		r.fail("not every path pushed within 40 s of the last registration")
	}
	r.stopDaemon(d, 15*time.Second)
	return r.settle(ctx, cache, url, nil, closure, sd)
}

// gcMidUpload deletes (nix-store --delete) an unreferenced path of 16
// files while nixpush reads it: as soon as one of its files is open in
// the push process (xz keeps the dump slow enough to land in it). The
// push must end, the cache must not describe a NAR it does not hold, and
// the path must be in the cache or skipped with a reason.
func gcMidUpload(ctx context.Context, r *run) error {
	ng, err := r.nginx()
	if err != nil {
		return err
	}
	victim, err := r.addLarge(ctx, "gc-victim", 16, 1)
	if err != nil {
		return err
	}
	top, err := r.chain(ctx, r.sc.name, 5, 64)
	if err != nil {
		return err
	}
	closure, err := r.closure(ctx, top, victim)
	if err != nil {
		return err
	}
	r.watch(ng.CacheDir)
	url, sd := "http://"+ng.Addr, filepath.Join(r.dir, "state")
	p, err := r.nixpush("push", nil, r.pushArgs(url, sd, []string{"--compression", "xz", "--compression-level", "1"}, victim, top)...)
	if err != nil {
		return err
	}
	real := filepath.Join(r.Store, victim)
	var open string
	waitFor(ctx, 30*time.Second, func() bool { open = openUnder(p, real); return open != "" || p.exited() })
	if open == "" {
		r.fail("push never opened a file of %s: nothing was deleted mid-upload", filepath.Base(victim))
	} else {
		if _, err := r.nix(ctx, "nix-store", "--store", r.Store, "--delete", victim); err != nil {
			return fmt.Errorf("delete %s: %w", victim, err)
		}
		r.note("%s deleted while push had %s open", filepath.Base(victim), filepath.Base(open))
	}
	code, err := p.wait(60 * time.Second)
	if err != nil {
		return err
	}
	r.checked(fmt.Sprintf("push ended (exit %d)", code))
	if code != 0 && code != 1 {
		r.fail("push exited %d: %s", code, tail(p.output(), 500))
	}
	return r.settle(ctx, ng.CacheDir, url, nil, closure, sd)
}

// openUnder returns a file under dir that p has open, or "".
func openUnder(p *proc, dir string) string {
	fds := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	entries, _ := os.ReadDir(fds)
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, dir+"/") {
			return target
		}
	}
	return ""
}
