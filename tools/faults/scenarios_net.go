package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"nixpush/internal/servertest"
)

// pushArgs is a push command line as a user would type it.
func (r *run) pushArgs(url, stateDir string, extra []string, roots ...string) []string {
	args := []string{"push", "--to", url, "--store", r.Store, "--signing-key", r.SecKey, "--state-dir", stateDir}
	return append(append(args, extra...), roots...)
}

// toggle runs on and off alternately, each for period, until stop is
// closed or rounds are done; it returns when the fault is off again.
func toggle(stop <-chan struct{}, rounds int, period time.Duration, on, off func() error) error {
	defer func() { _ = off() }()
	for range rounds {
		if err := on(); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-time.After(period):
		}
		if err := off(); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-time.After(period):
		}
	}
	return nil
}

// netFault is a fault pushThroughFault injects.
type netFault struct {
	paths, kib int           // the chain pushed
	big        int           // and this many unreferenced 8 MiB paths
	rounds     int           // times the fault comes and goes
	period     time.Duration // how long it stays, and stays away
	midway     bool          // from the first narinfo on, not from the start
	args       []string      // extra push flags
	on, off    func(*servertest.Proxy) error
}

// pushThroughFault pushes a fresh chain through a proxy to nginx while
// the fault comes and goes, and expects push to succeed.
func pushThroughFault(ctx context.Context, r *run, f netFault) error {
	if f.off == nil {
		f.off = (*servertest.Proxy).Heal
	}
	cache, url, px, err := r.proxiedNginx()
	if err != nil {
		return err
	}
	top, err := r.chain(ctx, r.sc.name, f.paths, f.kib)
	if err != nil {
		return err
	}
	roots := []string{top}
	for range f.big {
		p, err := r.addLarge(ctx, "big", 1, 8)
		if err != nil {
			return err
		}
		roots = append(roots, p)
	}
	closure, err := r.closure(ctx, roots...)
	if err != nil {
		return err
	}
	r.watch(cache)
	sd := filepath.Join(r.dir, "state")
	p, err := r.nixpush("push", nil, r.pushArgs(url, sd, f.args, roots...)...)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	faults := make(chan error, 1)
	go func() {
		if f.midway {
			waitFor(ctx, 20*time.Second, func() bool { return countNarinfos(cache) > 0 || p.exited() })
		}
		faults <- toggle(stop, f.rounds, f.period, func() error { return f.on(px) }, func() error { return f.off(px) })
	}()
	code, werr := p.wait(90 * time.Second)
	close(stop)
	if err := <-faults; err != nil {
		return fmt.Errorf("inject fault: %w", err)
	}
	if werr != nil {
		return werr
	}
	r.expectCode("push", code, 0)
	r.checked("push exits 0")
	return r.settle(ctx, cache, url, nil, closure, sd)
}

// latencySpikes raises the round trip from 100 ms to 3 s, above
// --http-timeout 2s, for 3 s at a time: requests caught in a spike time
// out and are retried. (Data held by a latency toxic is let go when the
// toxic changes, so a spike shorter than the timeout would fail nothing.)
func latencySpikes(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, netFault{paths: 30, kib: 32, rounds: 3, period: 3 * time.Second, midway: true,
		args: []string{"--http-timeout", "2s", "--max-attempts", "10"},
		on:   func(px *servertest.Proxy) error { return px.Latency(3 * time.Second) },
		off:  func(px *servertest.Proxy) error { return px.Latency(100 * time.Millisecond) }})
}

// bandwidthCollapse throttles every connection to 1 KB/s for 6 s, twice,
// once uploads are under way. 24 MiB of NARs are more than the socket
// buffers between nixpush and the throttle hold (loopback buffers grow to
// MBs), so writes block: past --http-timeout 3s a write is a stall.
func bandwidthCollapse(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, netFault{paths: 10, kib: 64, big: 3, rounds: 2, period: 6 * time.Second, midway: true,
		args: []string{"--http-timeout", "3s", "--max-attempts", "6"},
		on:   func(px *servertest.Proxy) error { return px.Bandwidth(1000) }})
}

// resetsAndCuts resets every connection 200 ms after it opens and cuts
// uploads after 64 KB.
func resetsAndCuts(px *servertest.Proxy) error {
	if err := px.LimitData(servertest.Upstream, 64<<10); err != nil {
		return err
	}
	return px.ResetPeer(servertest.Downstream, 200*time.Millisecond)
}

// connectionResets injects resetsAndCuts on and off once uploads are
// under way.
func connectionResets(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, netFault{paths: 12, kib: 128, rounds: 4, period: 1500 * time.Millisecond, midway: true,
		args: []string{"--http-timeout", "3s", "--max-attempts", "10"}, on: resetsAndCuts})
}

// resetsAtStart injects resetsAndCuts for the first second of a push,
// when it reads the cache's nix-cache-info: one glitch, then a healthy
// network, as a CI job meets it.
func resetsAtStart(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, netFault{paths: 4, kib: 32, rounds: 1, period: time.Second,
		args: []string{"--http-timeout", "3s", "--max-attempts", "10"}, on: resetsAndCuts})
}
