package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"nixpush/internal/nixtest"
)

// scaleWorld is one size of the scale suite: a synthetic store, and one
// cache, state dir and Nix home per tool, kept across the workloads (a
// re-push is measured against the first push's cache and state).
type scaleWorld struct {
	n       int
	dir     string // scratch of this size
	root    string // the store
	top     string // its top path: the closure is the whole store
	secKey  string
	pubKey  string
	pushed  scaleTarget // nixpush's cache and state
	copied  scaleTarget // nix copy's cache and home
	timeout time.Duration
}

// scaleTarget is where one tool writes.
type scaleTarget struct {
	cache, state, home string
}

func (t scaleTarget) url(extra string) string {
	return "file://" + t.cache + "?compression=none" + extra
}

// newScaleWorld makes a store of n paths in dir.
func newScaleWorld(ctx context.Context, dir string, n int, secKey, pubKey string, timeout time.Duration) (*scaleWorld, error) {
	removeAll(dir)
	w := &scaleWorld{n: n, dir: dir, root: filepath.Join(dir, "root"), secKey: secKey, pubKey: pubKey, timeout: timeout}
	w.pushed, w.copied = w.targets("")
	env := cleanEnv(filepath.Join(dir, "setup-home"))
	if _, err := runCmd(ctx, "", env, "nix-store", "--store", w.root, "--init"); err != nil {
		return nil, err
	}
	entries := nixtest.SyntheticLayout("s", n, 0, nil)
	if err := nixtest.WriteSynthetic(ctx, w.root, entries, env); err != nil {
		return nil, err
	}
	w.top = entries[n-1].Path
	return w, nil
}

// targets are a cache, state dir and home for each tool, named with
// suffix (fresh ones for each repeated first push).
func (w *scaleWorld) targets(suffix string) (pushed, copied scaleTarget) {
	at := func(name string) scaleTarget {
		d := filepath.Join(w.dir, name+suffix)
		return scaleTarget{cache: filepath.Join(d, "cache"), state: filepath.Join(d, "state"), home: filepath.Join(d, "home")}
	}
	return at("nixpush"), at("nix-copy")
}

// addPaths registers n more paths of family whose closure includes the
// whole store (their first layer references base), and returns them,
// their top last.
func (w *scaleWorld) addPaths(ctx context.Context, family string, n int, base string) ([]string, error) {
	entries := nixtest.SyntheticLayout(family, n, 0, []string{base})
	if err := nixtest.WriteSynthetic(ctx, w.root, entries, cleanEnv(filepath.Join(w.dir, "setup-home"))); err != nil {
		return nil, err
	}
	paths := make([]string, n)
	for i, e := range entries {
		paths[i] = e.Path
	}
	return paths, nil
}

// nixpush runs the nixpush binary on w's store with nixpush's state.
func (w *scaleWorld) nixpush(ctx context.Context, bin string, args ...string) (Sample, error) {
	return w.timed(ctx, bin, args, cleanEnv(w.pushed.home))
}

// pushArgs is a push of paths to nixpush's cache.
func (w *scaleWorld) pushArgs(paths ...string) []string {
	return append([]string{"push", "--store", w.root, "--to", w.pushed.url(""),
		"--signing-key", w.secKey, "--state-dir", w.pushed.state}, paths...)
}

// nixCopy runs nix copy of paths into nix copy's cache, signing as
// nixpush does, with nix copy's own home (its narinfo disk cache).
func (w *scaleWorld) nixCopy(ctx context.Context, paths ...string) (Sample, error) {
	return w.nixCopyTo(ctx, w.copied, paths...)
}

// nixCopyTo is nixCopy into to's cache, with to's home.
func (w *scaleWorld) nixCopyTo(ctx context.Context, to scaleTarget, paths ...string) (Sample, error) {
	args := append([]string{"--extra-experimental-features", "nix-command", "--store", w.root,
		"copy", "--to", to.url("&secret-key=" + w.secKey)}, paths...)
	return w.timed(ctx, "nix", args, cleanEnv(to.home))
}

// errTimedOut marks a run stopped at the suite's timeout: its Sample
// holds the time it ran.
var errTimedOut = errors.New("stopped at the timeout")

// timed runs a command to completion or to w.timeout, with its CPU (of
// it and its children, from wait4) and its peak memory. The peak comes
// from GNU time's %M, not from wait4: Go starts a child with vfork, and
// the kernel then gives the child the parent's peak as its own, so a
// bench that held a 100,000-path layout reported that for every tool.
// time forks its child for real, which starts with a peak of its own.
func (w *scaleWorld) timed(ctx context.Context, name string, args, env []string) (Sample, error) {
	syscall.Sync()
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-f", rssMarker + "%M", name}, args...)...)
	cmd.Env = env
	// time runs the command as its child: at the timeout, kill the whole
	// process group, or the command would outlive time and hold its
	// stderr open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	err := cmd.Run()
	s := Sample{Wall: time.Since(start)}
	if cmd.ProcessState == nil {
		return s, fmt.Errorf("%s: %w", commandLine(name, args), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.CPU = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime))
		s.Sys = time.Duration(syscall.TimevalToNsec(ru.Stime))
	}
	if _, kb, ok := strings.Cut(errb.String(), rssMarker); ok {
		n, _ := strconv.ParseInt(strings.TrimSpace(kb), 10, 64)
		s.MaxRSS = n << 10
	}
	switch {
	case ctx.Err() != nil:
		return s, errTimedOut
	case err != nil:
		return s, fmt.Errorf("%s: %w\n%s", commandLine(name, args), err, tail(errb.String(), 2000))
	}
	return s, nil
}

// rssMarker starts GNU time's report on the command's stderr.
const rssMarker = "\nnixpush-bench peak RSS KiB: "

// cacheCounts counts a cache's narinfos and NAR objects: a tool that
// skipped work would look fast, and NARs beyond the narinfos are
// orphans (a NAR uploaded twice).
func cacheCounts(dir string) (narinfos, nars int, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".narinfo") {
			narinfos++
		}
	}
	nar, err := os.ReadDir(filepath.Join(dir, "nar"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, 0, err
	}
	return narinfos, len(nar), nil
}

// narinfoIn reports whether dir's cache holds path's narinfo.
func narinfoIn(dir, path string) bool {
	_, err := os.Stat(filepath.Join(dir, storeKey(path)+".narinfo"))
	return err == nil
}

// waitNarinfos waits until every path has its narinfo in dir, polling
// (the cache is written by another process), or until timeout.
func waitNarinfos(ctx context.Context, dir string, paths []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	next := 0
	for {
		for next < len(paths) && narinfoIn(dir, paths[next]) {
			next++
		}
		if next == len(paths) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d narinfos in the cache after %s", next, len(paths), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// countNarinfos counts the paths whose narinfo is in dir.
func countNarinfos(dir string, paths []string) int {
	n := 0
	for _, p := range paths {
		if narinfoIn(dir, p) {
			n++
		}
	}
	return n
}
