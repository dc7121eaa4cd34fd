package pipeline_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"nixpush/internal/nixtest"
	"nixpush/pipeline"
)

// TestDaemonNoticesAWipedCache: a cache wiped under a running daemon
// (memo on) is noticed at its next push: nix-cache-info is written again
// and what the new build needs of the old one is pushed again, so real
// Nix substitutes it.
func TestDaemonNoticesAWipedCache(t *testing.T) {
	pipeline.SetIdentityRecheck(t, 0)
	w := newWorld(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := w.config(t, dir)
	cfg.Daemon, cfg.MemoTTL = true, 24*time.Hour
	p := open(t, cfg)
	runDaemon(t, p, pipeline.WatchOptions{Poll: time.Second, KeepDone: time.Hour})

	expr := nixtest.WithReference("daemon-wiped")
	dep := w.nix.Build(t, "("+expr+").dep")[0]
	waitFor(t, "dep in the cache", func() bool { return narinfoIn(dir, dep) })
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	top := w.nix.Build(t, "("+expr+").top")[0]
	waitFor(t, "top and dep in the wiped cache", func() bool { return narinfoIn(dir, top) && narinfoIn(dir, dep) })
	if _, err := os.Stat(filepath.Join(dir, "nix-cache-info")); err != nil {
		t.Errorf("the wiped cache has no nix-cache-info again: %v", err)
	}
	w.substitutes(t, dir, top)
}
