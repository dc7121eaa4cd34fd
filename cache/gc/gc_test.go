package gc_test

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/gc"
	"nixpush/cache/verify"
	"nixpush/internal/nixtest"
	"nixpush/internal/pushtest"
)

// sharing builds two closures sharing a dependency: a → {only-a, shared},
// b → {shared}. nix-build prints outputs in attribute order.
var sharing = nixtest.Derivations("gc", `
  shared = mk "shared" "echo shared > $out/f";
  onlyA = mk "only-a" "echo a > $out/f";
  a = mk "a" "echo ${shared} ${onlyA} > $out/refs";
  b = mk "b" "echo ${shared} > $out/refs";`, "{ inherit a b onlyA shared; }")

type closures struct {
	a, b, onlyA, shared string
}

// pushAThenB pushes closure A, ages everything in the cache by ageA, then
// pushes closure B now. It also leaves a build log and a realisation for
// a and for b, and an old and a new orphan NAR.
func pushAThenB(t *testing.T, f *pushtest.Fixture, p closures, ageA time.Duration) {
	t.Helper()
	f.Push(t, f.Key, p.a)
	write(t, f, "log/"+deriver(t, f, p.a), "building a")
	write(t, f, "realisations/sha256:aaaa!out.doi", `{"id":"sha256:aaaa!out","outPath":"`+path.Base(p.a)+`","signatures":[]}`)
	write(t, f, "build-trace-v2/00000000000000000000000000000000-a.drv/out.doi", `{"outPath":"`+path.Base(p.a)+`","signatures":[]}`)
	write(t, f, "nar/0000000000000000000000000000000000000000000000000000.nar.zst", "old orphan")
	f.SetModTimes(t, time.Now().Add(-ageA))
	f.Push(t, f.Key, p.b)
	write(t, f, "log/"+deriver(t, f, p.b), "building b")
	write(t, f, "realisations/sha256:bbbb!out.doi", `{"id":"sha256:bbbb!out","outPath":"`+path.Base(p.b)+`","signatures":[]}`)
	write(t, f, "build-trace-v2/11111111111111111111111111111111-b.drv/out.doi", `{"outPath":"`+path.Base(p.b)+`","signatures":[]}`)
	// Backdate B too, but not into the grace period of the clock that
	// Collect is given below (now + 2h): B stays for its age, not grace.
	for _, p := range []string{p.b, p.shared} {
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(f.NarInfoFile(p), old, old); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan NAR written "just now" by a pusher whose narinfo is
	// still to come: within the grace period.
	write(t, f, "nar/1111111111111111111111111111111111111111111111111111.nar.zst", "new orphan")
	soon := time.Now().Add(90 * time.Minute)
	if err := os.Chtimes(filepath.Join(f.Dir, "nar/1111111111111111111111111111111111111111111111111111.nar.zst"), soon, soon); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, f *pushtest.Fixture, key, content string) {
	t.Helper()
	if err := f.Cache.Put(t.Context(), key, strings.NewReader(content), "text/plain"); err != nil {
		t.Fatal(err)
	}
}

func deriver(t *testing.T, f *pushtest.Fixture, p string) string {
	t.Helper()
	ni, err := cache.ReadNarInfo(t.Context(), f.Cache, cache.NarInfoKey(p))
	if err != nil {
		t.Fatalf("deriver of %s: %v", p, err)
	}
	if ni.Deriver == "" {
		t.Fatalf("%s has no deriver", p)
	}
	return ni.Deriver
}

func narKey(t *testing.T, f *pushtest.Fixture, p string) string {
	t.Helper()
	rel, err := filepath.Rel(f.Dir, f.NARFile(t, p))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.ToSlash(rel)
}

func collect(t *testing.T, f *pushtest.Fixture, opts gc.Options) gc.Result {
	t.Helper()
	// Two hours on: what was pushed an hour ago is out of the grace period.
	later := time.Now().Add(2 * time.Hour)
	opts.Now = func() time.Time { return later }
	if opts.Grace == 0 {
		opts.Grace = gc.DefaultGrace
	}
	r, err := gc.Collect(t.Context(), f.Cache, opts)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	return r
}

func whole(t *testing.T, f *pushtest.Fixture) {
	t.Helper()
	r, err := verify.Run(t.Context(), f.Cache, verify.Options{TrustedKeys: []string{f.Pub}})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Whole() {
		t.Errorf("cache not whole after gc: %+v", r.Problems)
	}
}

func TestCollect(t *testing.T) {
	base := pushtest.New(t)
	out := base.Nix.Build(t, sharing)
	p := closures{a: out[0], b: out[1], onlyA: out[2], shared: out[3]}

	t.Run("A past KeepDays goes, B and the shared path stay", func(t *testing.T) {
		f := base.WithNewCache(t)
		pushAThenB(t, f, p, 10*24*time.Hour)
		aNARs := []string{narKey(t, f, p.a), narKey(t, f, p.onlyA)}
		aLog := "log/" + deriver(t, f, p.a)
		wantNARs := append(slices.Clone(aNARs), "nar/0000000000000000000000000000000000000000000000000000.nar.zst")
		slices.Sort(wantNARs)
		wantPaths := []string{p.a, p.onlyA}
		slices.Sort(wantPaths)
		check := func(r gc.Result) {
			t.Helper()
			if !slices.Equal(r.Paths, wantPaths) || !slices.Equal(r.NARs, wantNARs) {
				t.Errorf("paths going %q, NARs %q; want %q and %q", r.Paths, r.NARs, wantPaths, wantNARs)
			}
			if !slices.Equal(r.Logs, []string{aLog}) ||
				!slices.Equal(r.Realisations, []string{"build-trace-v2/00000000000000000000000000000000-a.drv/out.doi", "realisations/sha256:aaaa!out.doi"}) {
				t.Errorf("logs going %q, realisations %q", r.Logs, r.Realisations)
			}
			if r.KeptPaths != 2 || r.Bytes <= 0 {
				t.Errorf("kept %d paths, %d bytes going; want 2 kept", r.KeptPaths, r.Bytes)
			}
		}
		dry := collect(t, f, gc.Options{KeepDays: 7})
		check(dry)
		if dry.Deleted || !exists(t, f, cache.NarInfoKey(p.a)) || !exists(t, f, aNARs[0]) {
			t.Fatal("a dry run deleted something")
		}
		r := collect(t, f, gc.Options{KeepDays: 7, Delete: true})
		check(r)
		if !r.Deleted || r.Bytes != dry.Bytes {
			t.Errorf("deleted=%v, %d bytes; the dry run said %d", r.Deleted, r.Bytes, dry.Bytes)
		}
		for _, key := range append(aNARs, cache.NarInfoKey(p.a), cache.NarInfoKey(p.onlyA), r.Logs[0]) {
			if exists(t, f, key) {
				t.Errorf("%s is still in the cache", key)
			}
		}
		if !exists(t, f, "nar/1111111111111111111111111111111111111111111111111111.nar.zst") {
			t.Error("an orphan NAR within the grace period was deleted")
		}
		whole(t, f)
		f.Substitute(t, p.b)
		if again := collect(t, f, gc.Options{KeepDays: 7}); len(again.Paths)+len(again.NARs) != 0 {
			t.Errorf("a second gc would delete %q %q", again.Paths, again.NARs)
		}
	})

	t.Run("pinned A stays", func(t *testing.T) {
		f := base.WithNewCache(t)
		pushAThenB(t, f, p, 10*24*time.Hour)
		if err := gc.Pin(t.Context(), f.Cache, "release-1", p.a); err != nil {
			t.Fatal(err)
		}
		r := collect(t, f, gc.Options{KeepDays: 7, Delete: true})
		if len(r.Paths) != 0 || !slices.Equal(r.NARs, []string{"nar/0000000000000000000000000000000000000000000000000000.nar.zst"}) {
			t.Errorf("with A pinned, gc deleted %q and %q", r.Paths, r.NARs)
		}
		whole(t, f)
		f.Substitute(t, p.a, p.b)
		// Unpinned, A goes.
		if err := gc.Unpin(t.Context(), f.Cache, "release-1"); err != nil {
			t.Fatal(err)
		}
		if r := collect(t, f, gc.Options{KeepDays: 7}); len(r.Paths) != 2 {
			t.Errorf("after unpinning, gc would delete %q, want a and only-a", r.Paths)
		}
	})

	t.Run("Keep and MaxSize", func(t *testing.T) {
		f := base.WithNewCache(t)
		pushAThenB(t, f, p, 2*24*time.Hour) // both within KeepDays
		if r := collect(t, f, gc.Options{KeepDays: 7}); len(r.Paths) != 0 {
			t.Errorf("gc deletes %q although everything is within KeepDays", r.Paths)
		}
		// Room for B's closure only: the newest root's closure stays.
		bSize := fileSize(t, f, p.b) + fileSize(t, f, p.shared)
		r := collect(t, f, gc.Options{KeepDays: 7, MaxSize: bSize})
		if len(r.Paths) != 2 || r.KeptBytes != bSize {
			t.Errorf("with MaxSize of B's closure: going %q, kept %d bytes of %d", r.Paths, r.KeptBytes, bSize)
		}
		// Keep wins over MaxSize and age.
		r = collect(t, f, gc.Options{KeepDays: 0, MaxSize: 1, Keep: []string{p.a}})
		if !slices.Equal(r.Paths, []string{p.b}) {
			t.Errorf("keeping a with no KeepDays: going %q, want only b", r.Paths)
		}
	})
}

func exists(t *testing.T, f *pushtest.Fixture, key string) bool {
	t.Helper()
	ok, err := f.Cache.Exists(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

func fileSize(t *testing.T, f *pushtest.Fixture, p string) int64 {
	t.Helper()
	ni, err := cache.ReadNarInfo(t.Context(), f.Cache, cache.NarInfoKey(p))
	if err != nil {
		t.Fatal(err)
	}
	return int64(ni.FileSize)
}

func TestPins(t *testing.T) {
	f := pushtest.New(t)
	ctx := t.Context()
	p := f.AddFile(t, "pinned", "x")
	if err := gc.Pin(ctx, f.Cache, "v1", p); err == nil {
		t.Error("pinned a path that is not in the cache")
	}
	f.Push(t, f.Key, p)
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := gc.Pin(ctx, f.Cache, bad, p); err == nil {
			t.Errorf("Pin accepted the name %q", bad)
		}
	}
	if err := gc.Pin(ctx, f.Cache, "v1", p); err != nil {
		t.Fatal(err)
	}
	pins, err := gc.Pins(ctx, f.Cache)
	if err != nil || len(pins) != 1 || pins["v1"] != p {
		t.Errorf("Pins = %v, %v", pins, err)
	}
	if _, err := os.Stat(filepath.Join(f.Dir, "nixpush", "pins", "v1")); err != nil {
		t.Errorf("pin not stored under %s: %v", gc.PinPrefix, err)
	}
	if err := gc.Unpin(ctx, f.Cache, "v2"); err == nil {
		t.Error("unpinning a pin that does not exist succeeded")
	}
	if err := gc.Unpin(ctx, f.Cache, "v1"); err != nil {
		t.Fatal(err)
	}
	if pins, err := gc.Pins(ctx, f.Cache); err != nil || len(pins) != 0 {
		t.Errorf("Pins after Unpin = %v, %v", pins, err)
	}
}

// TestGraceZeroIsZero: --grace 0s protects only what is written while gc
// runs; a closure pushed a second before is collected (0 was silently
// taken as one hour), and the default hour keeps it.
func TestGraceZeroIsZero(t *testing.T) {
	f := pushtest.New(t)
	p := f.Nix.Build(t, sharing)[0]
	f.Push(t, f.Key, p)
	soon := time.Now().Add(time.Second)
	opts := gc.Options{KeepDays: 0, Now: func() time.Time { return soon }}
	r, err := gc.Collect(t.Context(), f.Cache, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Paths) == 0 {
		t.Errorf("with grace 0, nothing of a closure pushed a second ago would go: %+v", r)
	}
	opts.Grace = gc.DefaultGrace
	if r, err = gc.Collect(t.Context(), f.Cache, opts); err != nil || len(r.Paths) != 0 {
		t.Errorf("with the default grace, %v would go (%v); want nothing", r.Paths, err)
	}
	if _, err := gc.Collect(t.Context(), f.Cache, gc.Options{Grace: -time.Second}); err == nil {
		t.Error("a negative grace period was accepted")
	}
}
