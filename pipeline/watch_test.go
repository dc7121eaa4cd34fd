package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/pipeline"
	"nixpush/queue"
)

// narinfoIn reports whether dir's cache holds path's narinfo.
func narinfoIn(dir, path string) bool {
	_, err := os.Stat(filepath.Join(dir, cache.NarInfoKey(path)))
	return err == nil
}

// runDaemon runs WatchStore until the test ends, and returns once it is
// ready (watching).
func runDaemon(t *testing.T, p *pipeline.Pipeline, o pipeline.WatchOptions) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan struct{})
	o.Ready = func() { close(ready) }
	done := make(chan error, 1)
	go func() { done <- p.WatchStore(ctx, o) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("daemon stopped before it was ready: %v", err)
	}
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return stop
}

// startExec starts watch-exec's run on p above the store's newest
// registration (mark), watching until stop; stop returns the context it
// ended (an interrupt's, for Finish).
func startExec(t *testing.T, p *pipeline.Pipeline) (run *pipeline.Exec, mark int64, stop func() context.Context) {
	t.Helper()
	mark, err := p.Store.MaxID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if run, err = p.StartExec(t.Context(), mark); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run.Watch(ctx) }()
	return run, mark, func() context.Context {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return ctx
	}
}

// TestDaemonOneWatcherTwoCaches: the daemon's one watcher feeds both
// caches' queues; each pushes what is built; a restart resumes from the
// marks saved in the queues, so paths built while it was stopped are
// pushed too; housekeeping prunes finished rows older than KeepDone at
// start.
func TestDaemonOneWatcherTwoCaches(t *testing.T) {
	w := newWorld(t)
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	cfg := w.config(t, a, b)
	cfg.Daemon = true
	opts := pipeline.WatchOptions{Poll: time.Second, KeepDone: time.Hour}

	p := open(t, cfg)
	stop := runDaemon(t, p, opts)
	first := w.nix.Build(t, nixtest.FibChain("daemon-1", 2))
	waitFor(t, "the first build in both caches", func() bool {
		return narinfoIn(a, first[0]) && narinfoIn(b, first[0])
	})
	stop()
	// An old finished row, for housekeeping to prune at the next start.
	const old = "/nix/store/00000000000000000000000000000000-old"
	if _, err := p.Lanes[0].Queue.Enqueue(t.Context(), []string{old}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Lanes[0].Queue.Claim(t.Context(), 1, time.Now(), queue.Everything); err != nil {
		t.Fatal(err)
	}
	if err := p.Lanes[0].Queue.Complete(t.Context(), old, 1, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	p.Close()

	second := w.nix.Build(t, nixtest.FibChain("daemon-2", 2)) // while stopped
	p = open(t, cfg)
	runDaemon(t, p, opts)
	waitFor(t, "the build made while stopped in both caches", func() bool {
		return narinfoIn(a, second[0]) && narinfoIn(b, second[0])
	})
	if s := itemState(t, p.Lanes[0], "/nix/store/00000000000000000000000000000000-old"); s != "" {
		t.Errorf("a row finished 2 h ago is still there (%s) with KeepDone 1 h", s)
	}
	if s := itemState(t, p.Lanes[1], first[0]); s != queue.Done {
		t.Errorf("row of the first build in the second cache: %q, want done", s)
	}
	w.substitutes(t, b, first[0], second[0])
}

// TestExecPushesWhatTheCommandBuilt: watch-exec's run pushes what is
// registered while it watches, and Finish finds and pushes what was
// registered after (the command's last builds), then reports every path
// the command made; paths registered before the mark are not its.
func TestExecPushesWhatTheCommandBuilt(t *testing.T) {
	w := newWorld(t)
	before := w.nix.Build(t, nixtest.FibChain("exec-before", 1))
	dir := filepath.Join(t.TempDir(), "cache")
	p := open(t, w.config(t, dir))
	run, mark, stop := startExec(t, p)
	during := w.nix.Build(t, nixtest.FibChain("exec-during", 2))
	waitFor(t, "the build made during the command", func() bool { return narinfoIn(dir, during[0]) })
	stop()
	after := w.nix.Build(t, nixtest.FibChain("exec-after", 1)) // the command's last moments
	results, err := run.Finish(t.Context(), time.Minute, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || len(results[0].Unfinished) != 0 {
		t.Fatalf("results %+v; want one cache, nothing unfinished", results)
	}
	if !narinfoIn(dir, after[0]) {
		t.Errorf("%s, built after the watch stopped, was not pushed by Finish", after[0])
	}
	if narinfoIn(dir, before[0]) {
		t.Errorf("%s, built before the mark, was pushed", before[0])
	}
	// The command's paths are what the DB registered above the mark,
	// .drv files aside (the watcher's filter).
	regs, err := p.Store.RegisteredAfter(t.Context(), mark, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range regs {
		if !strings.HasSuffix(r.Path, ".drv") {
			want = append(want, r.Path)
		}
	}
	if results[0].New != len(want) {
		t.Errorf("the command made %d new paths, want %d: %v", results[0].New, len(want), want)
	}
	w.substitutes(t, dir, during[0], after[0])
}

// TestExecFinishInterrupted: a Finish whose context has ended (SIGINT
// right after the command exited) is no error, even before its last scan
// of the DB: it reports what the command made so far and what stays
// queued, as an interrupted wait does.
func TestExecFinishInterrupted(t *testing.T) {
	w := newWorld(t)
	p := open(t, w.config(t, filepath.Join(t.TempDir(), "cache")))
	run, _, stop := startExec(t, p)
	during := w.nix.Build(t, nixtest.FibChain("exec-int", 1))
	waitFor(t, "the build queued", func() bool { return itemState(t, p.Lanes[0], during[0]) != "" })
	ended := stop()
	results, err := run.Finish(ended, time.Minute, time.Minute)
	if err != nil {
		t.Fatalf("Finish after an interrupt: %v; want what it had, no error", err)
	}
	if len(results) != 1 || results[0].New == 0 {
		t.Fatalf("results %+v; want one cache and the paths seen while watching", results)
	}
}
