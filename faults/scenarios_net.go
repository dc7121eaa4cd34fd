package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"nixpush/internal/toxitest"
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

// pushThroughFault pushes a fresh chain through a proxy to nginx while
// fault comes and goes (rounds times, from the first narinfo on when
// midway, else from the start), and expects push to succeed.
func pushThroughFault(ctx context.Context, r *run, n, kib int, rounds int, midway bool, period time.Duration, extra []string,
	on func(*toxitest.Proxy) error) error {
	ng, err := r.nginx()
	if err != nil {
		return err
	}
	px, err := r.proxy(ng.Addr)
	if err != nil {
		return err
	}
	top, err := r.chain(ctx, r.sc.name, n, kib)
	if err != nil {
		return err
	}
	closure, err := r.closure(ctx, top)
	if err != nil {
		return err
	}
	r.watch(ng.CacheDir)
	url, sd := "http://"+px.Addr, filepath.Join(r.dir, "state")
	p, err := r.nixpush("push", nil, r.pushArgs(url, sd, extra, top)...)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	faults := make(chan error, 1)
	go func() {
		if midway {
			waitFor(ctx, 20*time.Second, func() bool { return countNarinfos(ng.CacheDir) > 0 || p.exited() })
		}
		faults <- toggle(stop, rounds, period, func() error { return on(px) }, px.Heal)
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
	r.checked("push exit 0")
	return r.settle(ctx, ng.CacheDir, url, nil, closure, sd)
}

func latencySpikes(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, 20, 32, 6, false, time.Second, []string{"--jobs", "4", "--http-timeout", "5s"},
		func(px *toxitest.Proxy) error { return px.Latency(1500 * time.Millisecond) })
}

// bandwidthCollapse throttles every connection to 1 KB/s, slower than
// any NAR could go but never quite a stall.
func bandwidthCollapse(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, 10, 256, 6, false, 3*time.Second, []string{"--http-timeout", "3s", "--max-attempts", "6"},
		func(px *toxitest.Proxy) error { return px.Bandwidth(1000) })
}

// resetsAndCuts resets every connection 200 ms after it opens and cuts
// uploads after 64 KB.
func resetsAndCuts(px *toxitest.Proxy) error {
	if err := px.LimitData(toxitest.Upstream, 64<<10); err != nil {
		return err
	}
	return px.ResetPeer(toxitest.Downstream, 200*time.Millisecond)
}

// connectionResets injects resetsAndCuts on and off once uploads are
// under way.
func connectionResets(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, 12, 128, 4, true, 1500*time.Millisecond,
		[]string{"--http-timeout", "3s", "--max-attempts", "10"}, resetsAndCuts)
}

// resetsAtStart injects resetsAndCuts for the first second of a push,
// when it reads the cache's nix-cache-info: one glitch, then a healthy
// network, as a CI job meets it.
func resetsAtStart(ctx context.Context, r *run) error {
	return pushThroughFault(ctx, r, 4, 32, 1, false, time.Second,
		[]string{"--http-timeout", "3s", "--max-attempts", "10"}, resetsAndCuts)
}
