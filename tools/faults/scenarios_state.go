package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// stateDirFull runs the daemon on a 4 MiB tmpfs state dir and fills it
// to the last byte while uploads are in flight (nginx at 300 KB/s per
// connection), new paths arrive and a push starts, then frees it: the
// daemon must live on and push everything, the push must end.
func stateDirFull(ctx context.Context, r *run) error {
	cache, url, px, err := r.proxiedNginx()
	if err != nil {
		return err
	}
	if err := px.Bandwidth(300_000); err != nil {
		return err
	}
	sd := filepath.Join(r.dir, "state")
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return err
	}
	if _, err := r.run(ctx, "", nil, "mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", sd); err != nil {
		return fmt.Errorf("mount a tmpfs state dir (needs root): %w", err)
	}
	r.cleanup(func() { _ = syscall.Unmount(sd, syscall.MNT_DETACH) })
	r.watch(cache)
	d, err := r.watchStore("watch-store", url, sd, nil)
	if err != nil {
		return err
	}
	var closure []string
	add := func() (string, error) { return r.addChain(ctx, &closure, 8, 128) }
	if _, err := add(); err != nil {
		return err
	}
	// Fill once some outcomes are recorded and more uploads are in flight.
	waitFor(ctx, 20*time.Second, func() bool { return countNarinfos(cache) >= 2 })
	filler := filepath.Join(sd, "filler")
	if err := fill(filler); err != nil {
		return err
	}
	r.note("state dir filled to ENOSPC with %d of 8 paths of the first batch in the cache", countNarinfos(cache))
	if _, err := add(); err != nil { // registered while the disk is full
		return err
	}
	top, err := add()
	if err != nil {
		return err
	}
	p, err := r.nixpush("push-full", nil, r.pushArgs(url, sd, nil, top)...)
	if err != nil {
		return err
	}
	time.Sleep(4 * time.Second)
	warnings := strings.Count(d.output(), `"level":"warn"`) + strings.Count(d.output(), `"level":"error"`)
	if err := os.Remove(filler); err != nil {
		return fmt.Errorf("free the state dir: %w", err)
	}
	r.note("freed after 4 s, during which watch-store logged %d warnings and errors", warnings)
	code, err := p.wait(60 * time.Second)
	if err != nil {
		r.fail("push run while the disk was full: %v", err)
	} else {
		r.checked(fmt.Sprintf("push run while full ended (exit %d)", code))
		if code != 0 {
			r.note("push while full: exit %d: %s", code, lastLine(p.output()))
		}
	}
	if r.inCache(ctx, cache, closure, 40*time.Second) {
		r.checked("daemon pushed every path once the disk was freed")
	} else {
		r.fail("daemon did not push every path within 40 s of freeing the disk")
	}
	if d.exited() {
		r.fail("watch-store exited: %s", tail(d.output(), 500))
	} else {
		r.stopDaemon(d, 15*time.Second)
	}
	if err := px.Heal(); err != nil {
		return err
	}
	return r.settle(ctx, cache, url, nil, closure, sd)
}

// fill writes name until the file system is full.
func fill(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("fill state dir: %w", err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for range 1 << 14 { // 1 GiB at most: the tmpfs is far smaller
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return fmt.Errorf("fill state dir: %w", err)
		}
	}
	return errors.New("fill state dir: never full")
}

// queueLocked holds the queue's write lock from another process
// (sqlite3: BEGIN IMMEDIATE) for 15 s while the daemon runs and a push
// starts: both must wait it out and carry on.
func queueLocked(ctx context.Context, r *run) error {
	cache, url, err := r.fileCache("")
	if err != nil {
		return err
	}
	r.watch(cache)
	sd := filepath.Join(r.dir, "state")
	d, err := r.watchStore("watch-store", url, sd, nil)
	if err != nil {
		return err
	}
	var closure []string
	add := func() (string, error) { return r.addChain(ctx, &closure, 6, 64) }
	if _, err := add(); err != nil {
		return err
	}
	if !r.inCache(ctx, cache, closure, 20*time.Second) {
		r.fail("first batch not pushed within 20 s, before any fault")
	}
	files, _ := filepath.Glob(filepath.Join(sd, "*.queue.db"))
	if len(files) != 1 {
		return fmt.Errorf("want one queue file in %s, found %d", sd, len(files))
	}
	release, err := holdWriteLock(files[0])
	if err != nil {
		return err
	}
	r.note("write lock held for 15 s")
	lockedAt := time.Now()
	if _, err := add(); err != nil {
		return err
	}
	top, err := add()
	if err != nil {
		return err
	}
	p, err := r.nixpush("push", nil, r.pushArgs(url, sd, nil, top)...)
	if err != nil {
		return err
	}
	time.Sleep(15*time.Second - time.Since(lockedAt))
	if err := release(); err != nil {
		return err
	}
	code, err := p.wait(45 * time.Second)
	if err != nil {
		return err
	}
	r.expectCode("push", code, 0)
	if r.inCache(ctx, cache, closure, 30*time.Second) {
		r.checked("every path pushed after the lock was released; push exit 0")
	} else {
		r.fail("not every path pushed within 30 s of releasing the lock")
	}
	if d.exited() {
		r.fail("watch-store exited: %s", tail(d.output(), 500))
	} else {
		r.stopDaemon(d, 15*time.Second)
	}
	return r.settle(ctx, cache, url, nil, closure, sd)
}

// holdWriteLock opens the queue in sqlite3 and takes the write lock;
// release commits and ends sqlite3.
func holdWriteLock(file string) (release func() error, err error) {
	cmd := exec.Command("sqlite3", file)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sqlite3: %w", err)
	}
	// The marker comes back once BEGIN IMMEDIATE holds the lock (or failed).
	fmt.Fprint(in, ".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
	buf := make([]byte, 7)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "locked\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("sqlite3 did not take the write lock: %q %v", buf, err)
	}
	return func() error {
		fmt.Fprint(in, "COMMIT;\n")
		in.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			return errors.New("sqlite3 did not exit after COMMIT")
		}
	}, nil
}

func lastLine(s string) string {
	return tail(s, 300)
}
