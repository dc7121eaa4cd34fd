package verify_test

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/cache/verify"
	"nixpush/internal/nixtest"
	"nixpush/internal/pushtest"
)

func runVerify(t *testing.T, c cache.Cache, opts verify.Options) verify.Report {
	t.Helper()
	r, err := verify.Run(t.Context(), c, opts)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return r
}

func checkCounts(t *testing.T, r verify.Report, want map[verify.Kind]int) {
	t.Helper()
	got := maps.Clone(r.Counts)
	maps.DeleteFunc(got, func(_ verify.Kind, n int) bool { return n == 0 })
	if !maps.Equal(got, want) {
		b, _ := json.MarshalIndent(r.Problems, "", "  ")
		t.Errorf("counts = %v, want %v; problems:\n%s", got, want, b)
	}
}

// TestVerifyAndRepair damages a cache pushed by nixpush in each way the
// issue lists, checks Verify names each by kind, repairs, and checks that
// the cache is whole and substitutes into a fresh store.
func TestVerifyAndRepair(t *testing.T) {
	f := pushtest.New(t)
	ctx := t.Context()
	refs := f.Nix.Build(t, nixtest.WithReference("verify")) // [dep, top]
	dep, top := refs[0], refs[1]
	truncated := f.AddFile(t, "truncated", "a NAR to cut short")
	deleted := f.AddFile(t, "deleted", "a NAR to delete")
	flipped := f.AddFile(t, "flipped", "a NAR with one byte changed")
	untrusted := f.AddFile(t, "untrusted", "signed by someone else")
	f.Push(t, f.Key, top, truncated, deleted, flipped)
	otherKey, _ := pushtest.Keygen(t, "other-cache-1")
	f.Push(t, otherKey, untrusted)

	trusted := verify.Options{TrustedKeys: []string{f.Pub}}
	if r := runVerify(t, f.Cache, trusted); r.NarInfos != 6 || len(r.Problems) != 1 || r.Problems[0].Path != untrusted {
		t.Fatalf("freshly pushed cache: %d narinfos, problems %+v; want only the untrusted path", r.NarInfos, r.Problems)
	}
	if r := runVerify(t, f.Cache, verify.Options{}); !r.Whole() || len(r.Problems) != 0 {
		t.Fatalf("freshly pushed cache, no trusted keys: problems %+v", r.Problems)
	}

	// The damage.
	nar := f.NARFile(t, truncated)
	if err := os.Truncate(nar, 10); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.NARFile(t, deleted)); err != nil {
		t.Fatal(err)
	}
	flip(t, f.NARFile(t, flipped))
	depNAR := f.NARFile(t, dep) // becomes an orphan with its narinfo gone
	if err := os.Remove(f.NarInfoFile(dep)); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(f.Dir, "nar", "0000000000000000000000000000000000000000000000000000.nar.zst")
	if err := os.WriteFile(stray, []byte("no narinfo points here"), 0o644); err != nil {
		t.Fatal(err)
	}

	progressCalls, lastDone, lastTotal := 0, 0, 0
	opts := trusted
	opts.Progress = func(done, total int) { progressCalls++; lastDone, lastTotal = done, total }
	r := runVerify(t, f.Cache, opts)
	checkCounts(t, r, map[verify.Kind]int{
		verify.NARSize: 1, verify.MissingNAR: 1, verify.MissingReference: 1,
		verify.UntrustedSignature: 1, verify.OrphanNAR: 2,
	})
	if r.Whole() {
		t.Error("a damaged cache is reported whole")
	}
	if progressCalls != 5 || lastDone != 5 || lastTotal != 5 {
		t.Errorf("progress: %d calls, last (%d, %d); want 5 calls ending at (5, 5)", progressCalls, lastDone, lastTotal)
	}
	byKind := map[verify.Kind]verify.Problem{}
	for _, p := range r.Problems {
		byKind[p.Kind] = p
	}
	for kind, path := range map[verify.Kind]string{verify.NARSize: truncated, verify.MissingNAR: deleted,
		verify.MissingReference: dep, verify.UntrustedSignature: untrusted} {
		if byKind[kind].Path != path {
			t.Errorf("%s problem names %q, want %s", kind, byKind[kind].Path, path)
		}
	}
	if p := byKind[verify.MissingReference]; p.Detail != "referenced by "+top {
		t.Errorf("missing reference detail %q, want it to name the referrer", p.Detail)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}

	// Full also reads the flipped byte.
	opts.Full = true
	full := runVerify(t, f.Cache, opts)
	checkCounts(t, full, map[verify.Kind]int{
		verify.NARSize: 1, verify.MissingNAR: 1, verify.MissingReference: 1,
		verify.UntrustedSignature: 1, verify.OrphanNAR: 2, verify.CorruptNAR: 1,
	})

	// Closures only: what the closures of the paths asked for lack.
	missingPath := f.AddFile(t, "never-pushed", "not in the cache")
	closures := runVerify(t, f.Cache, verify.Options{TrustedKeys: []string{f.Pub}, Paths: []string{top, deleted, missingPath}})
	checkCounts(t, closures, map[verify.Kind]int{
		verify.MissingReference: 1, verify.MissingNAR: 1, verify.MissingPath: 1,
	})

	// Repair: delete what is broken, push again, verify, substitute.
	wantRepair := []string{dep, deleted, flipped, truncated, untrusted}
	slices.Sort(wantRepair)
	if got := full.Repair(); !slices.Equal(got, wantRepair) {
		t.Errorf("Repair() = %q, want %q", got, wantRepair)
	}
	push, unrepairable, err := verify.PrepareRepair(ctx, f.Cache, &full, func(p string) bool { return p != untrusted })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(unrepairable, []string{untrusted}) || len(push) != 4 {
		t.Errorf("PrepareRepair: push %q, unrepairable %q", push, unrepairable)
	}
	if _, err := os.Stat(f.NarInfoFile(untrusted)); err != nil {
		t.Errorf("the narinfo of a path that cannot be pushed again was deleted: %v", err)
	}
	f.Push(t, f.Key, push...)
	after := runVerify(t, f.Cache, verify.Options{TrustedKeys: []string{f.Pub}, Full: true})
	// NARs are named by content (uploader.ContentNARKey), and an object
	// under that name is named again only when it holds the very bytes
	// of the upload: dep's intact NAR is taken back; the damaged objects
	// of the truncated and flipped paths are not, and are orphans now,
	// beside the one planted: garbage for gc.
	checkCounts(t, after, map[verify.Kind]int{verify.UntrustedSignature: 1, verify.OrphanNAR: 3})
	if newDep := f.NARFile(t, dep); newDep != depNAR {
		t.Errorf("dep's narinfo names %s, not its intact NAR %s", newDep, depNAR)
	}
	for _, p := range []string{truncated, flipped} {
		if _, err := os.Stat(f.NARFile(t, p)); err != nil {
			t.Errorf("%s's NAR is not back: %v", p, err)
		}
	}

	// All of it, the untrusted path included, once it is pushed again too.
	push, _, err = verify.PrepareRepair(ctx, f.Cache, &after, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Push(t, f.Key, push...)
	if r := runVerify(t, f.Cache, trusted); !r.Whole() {
		t.Errorf("cache not whole after repair: %+v", r.Problems)
	}
	f.Substitute(t, top, truncated, deleted, flipped, untrusted)
}

// flip changes one byte in the middle of a file, keeping its size.
func flip(t *testing.T, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyNixWrittenCache checks caches written by Nix itself (NARs
// named by FileHash, each compression Nix writes) fully: nothing to report.
// Then narinfos that lie or do not parse are reported, while one with a
// field Nix does not know is fine.
func TestVerifyNixWrittenCache(t *testing.T) {
	f := pushtest.New(t)
	secFile, _, pub := nixtest.Keygen(t, "nix-cache-1")
	p := f.AddFile(t, "by-nix", "pushed by nix copy")
	for _, compression := range []string{"xz", "bzip2", "none", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			url := "file://" + dir + "?compression=" + compression + "&secret-key=" + secFile
			if _, _, err := f.Nix.Run(t, "nix", "copy", "--to", url, p); err != nil {
				t.Fatal(err)
			}
			c, err := filecache.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			r := runVerify(t, c, verify.Options{TrustedKeys: []string{pub}, Full: true})
			if len(r.Problems) != 0 || r.NarInfos != 1 || r.NARs != 1 || r.Unchecked != 0 {
				t.Errorf("report of a cache Nix wrote: %+v", r)
			}
		})
	}

	// Damaged narinfos, in nixpush's cache.
	good := f.AddFile(t, "good", "fine")
	f.Push(t, f.Key, good)
	text, err := os.ReadFile(f.NarInfoFile(good))
	if err != nil {
		t.Fatal(err)
	}
	// A field Nix does not know is ignored, as Nix ignores it.
	if err := os.WriteFile(f.NarInfoFile(good), append(text, "FutureField: 1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	// Under another path's key.
	liar := filepath.Join(f.Dir, "00000000000000000000000000000000.narinfo")
	if err := os.WriteFile(liar, text, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(f.Dir, "11111111111111111111111111111111.narinfo")
	if err := os.WriteFile(garbage, []byte("<html>not found</html>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runVerify(t, f.Cache, verify.Options{TrustedKeys: []string{f.Pub}})
	checkCounts(t, r, map[verify.Kind]int{verify.BadNarInfo: 2})
	push, unrepairable, err := verify.PrepareRepair(t.Context(), f.Cache, &r, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The liar names good as its path: pushing good again is harmless.
	if !slices.Equal(push, []string{good}) || !slices.Equal(unrepairable, []string{filepath.Base(garbage)}) {
		t.Errorf("PrepareRepair: push %q, unrepairable %q", push, unrepairable)
	}
	for _, file := range []string{liar, garbage} {
		if _, err := os.Stat(file); !os.IsNotExist(err) {
			t.Errorf("%s not deleted by PrepareRepair (%v)", filepath.Base(file), err)
		}
	}
}
