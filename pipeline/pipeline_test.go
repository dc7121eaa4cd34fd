package pipeline_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache/location"
	"nixpush/internal/nixtest"
	"nixpush/pipeline"
	"nixpush/queue"
	"nixpush/uploader"
)

// world is a private store with real Nix, signing keys, and file://
// caches to push to.
type world struct {
	nix      *nixtest.Store
	stateDir string
	secFile  string
	pub      string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{nix: nixtest.NewStore(t), stateDir: t.TempDir()}
	w.secFile, _, w.pub = nixtest.Keygen(t, "pipeline-test-1")
	return w
}

// config is a pipeline's Config for file:// caches in these dirs.
func (w *world) config(t *testing.T, cacheDirs ...string) pipeline.Config {
	t.Helper()
	key, err := uploader.LoadSigningKey(w.secFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := pipeline.Config{
		StoreRoot: w.nix.Root, StateDir: w.stateDir, Jobs: 1, Logs: true,
		MaxAttempts: 3, ShutdownTimeout: 10 * time.Second, Log: zaptest.NewLogger(t),
	}
	for _, dir := range cacheDirs {
		u, err := location.Parse("file://" + dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Caches = append(cfg.Caches, pipeline.CacheConfig{URL: u, Compression: uploader.DefaultCompression, Keys: []signature.SecretKey{key}, Priority: 40})
	}
	return cfg
}

func open(t *testing.T, cfg pipeline.Config) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// substitutes checks that real Nix copies paths into a fresh store from
// the cache.
func (w *world) substitutes(t *testing.T, dir string, paths ...string) {
	t.Helper()
	if out, err := nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh"), "file://"+dir, w.pub, paths...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestPushClosure: a push plans what the cache lacks, drains exactly
// those items and reports; a second push of the same closure finds it
// all present and drains nothing. Real Nix substitutes the result.
func TestPushClosure(t *testing.T) {
	w := newWorld(t)
	top := w.nix.Build(t, nixtest.WithReference("push"))[0]
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := w.config(t, dir)
	cfg.Roots = []string{top}
	p := open(t, cfg)
	n := len(w.nix.Closure(t, top))
	if len(p.Closure) != n {
		t.Fatalf("closure of %s: %d paths, want %d", top, len(p.Closure), n)
	}
	res, err := p.Lanes[0].Push(t.Context(), p.Closure, pipeline.PushOptions{})
	if err != nil || res.Total != n || len(res.Unfinished) != 0 || res.Stats.Paths.Load() != int64(n) {
		t.Fatalf("first push: %+v, %v; want %d pushed, none unfinished", res, err, n)
	}
	w.substitutes(t, dir, top)
	res, err = p.Lanes[0].Push(t.Context(), p.Closure, pipeline.PushOptions{})
	if err != nil || res.Total != 0 || res.Plan.Present != n {
		t.Fatalf("second push: %+v, %v; want all %d present, nothing drained", res, err, n)
	}
}

// TestBadRootWritesNothing: a root the store does not know fails Open
// before the cache or the state dir is touched.
func TestBadRootWritesNothing(t *testing.T) {
	w := newWorld(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := w.config(t, dir)
	cfg.Roots = []string{"/nix/store/00000000000000000000000000000000-missing"}
	if p, err := pipeline.Open(t.Context(), cfg); err == nil {
		p.Close()
		t.Fatal("Open with an unknown root succeeded")
	}
	if files, _ := filepath.Glob(filepath.Join(w.stateDir, "*")); len(files) > 0 {
		t.Errorf("state dir holds %v after a failed Open", files)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) > 0 {
		t.Errorf("cache holds %v after a failed Open", files)
	}
}

// waitFor polls cond (a cache or queue, filled by other goroutines) until
// it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// itemState is the state of path's row in the lane's queue.
func itemState(t *testing.T, l *pipeline.Lane, path string) queue.State {
	t.Helper()
	items, err := l.Queue.Get(t.Context(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	return items[path].State
}

// TestPushUploadsEachNAROnce: a closure whose paths share dependencies,
// pushed in batches of which two are in flight at once, leaves one NAR
// object per narinfo (a 1,000-path push left 6 objects no narinfo named,
// and printed "pushed 1006 paths").
func TestPushUploadsEachNAROnce(t *testing.T) {
	w := newWorld(t)
	paths := w.nix.Synthetic(t, 1200, 150) // 8 layers, each path referencing 2 below
	top := paths[len(paths)-1]
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := w.config(t, dir)
	cfg.Roots = []string{top}
	p := open(t, cfg)
	res, err := p.Lanes[0].Push(t.Context(), p.Closure, pipeline.PushOptions{})
	if err != nil || len(res.Unfinished) != 0 {
		t.Fatalf("push: %v, %d unfinished", err, len(res.Unfinished))
	}
	narinfos, _ := filepath.Glob(filepath.Join(dir, "*.narinfo"))
	nars, _ := filepath.Glob(filepath.Join(dir, "nar", "*"))
	if len(narinfos) != len(paths) || len(nars) != len(paths) || res.Stats.Paths.Load() != int64(len(paths)) {
		t.Errorf("%d paths: %d narinfos, %d NAR objects, %d counted as pushed; want %d of each",
			len(paths), len(narinfos), len(nars), res.Stats.Paths.Load(), len(paths))
	}
	w.substitutes(t, dir, top)
}
