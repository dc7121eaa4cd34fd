package main

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// TestPushSubstitutes pushes build outputs given as arguments (one through
// a ./result symlink) and has real Nix substitute them from the cache,
// trusting only the signing key.
func TestPushSubstitutes(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	fib := fibOutputs(t, s, "subst", 6)
	ref := s.Build(t, nixtest.WithReference("subst")) // [dep, top]
	sec, _, pub := nixtest.Keygen(t, "push-test-1")
	work := t.TempDir()
	// Like nix-build's ./result: a symlink to the logical /nix/store path,
	// which exists only under the store root.
	if err := os.Symlink(ref[1], filepath.Join(work, "result")); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(t.TempDir(), "cache")
	url := "file://" + cache

	args := append([]string{"--store", s.Root, "--to", url, "--signing-key", sec, "./result"}, fib...)
	// As a user runs it, where nix-build left ./result.
	cmd := binCmd(t, append([]string{"push", "--state-dir", filepath.Join(t.TempDir(), "state")}, args...)...)
	cmd.Dir = work
	r := runCmd(t, cmd, "")
	all := append(slices.Clone(fib), ref...) // dep comes in as top's reference
	sum := wantSuccess(t, r, len(all), 0, 0, 0)
	infos := checkCache(t, cache)
	if got := sortedKeys(infos); !slices.Equal(got, sortedCopy(all)) {
		t.Fatalf("narinfos in the cache: %q\nwant %q", got, sortedCopy(all))
	}
	var written []narInfo
	for _, p := range all {
		written = append(written, infos[p])
		if len(infos[p].sigs) != 1 || !strings.HasPrefix(infos[p].sigs[0], "push-test-1:") {
			t.Errorf("%s: Sig %q, want one by push-test-1", p, infos[p].sigs)
		}
	}
	wantSizes(t, sum, written)
	if got := infos[ref[1]].references; !slices.Contains(got, filepath.Base(ref[0])) {
		t.Errorf("narinfo of top: References %q lack dep", got)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	out, err := nixtest.Substitute(t, fresh, url, pub, append(slices.Clone(fib), ref[1])...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, url, all)
	sameNARs(t, s, fresh, all)

	// The signatures are what Nix trusts: another key gets nothing.
	_, _, otherPub := nixtest.Keygen(t, "push-test-2")
	fresh2 := filepath.Join(t.TempDir(), "fresh2")
	out, err = nixtest.Substitute(t, fresh2, url, otherPub, ref[1])
	if err == nil || !strings.Contains(out, "not signed by") {
		t.Errorf("Substitute trusting another key: err = %v, want a \"not signed by\" failure:\n%s", err, out)
	}
	for _, p := range ref {
		if _, err := os.Lstat(filepath.Join(fresh2, p)); err == nil {
			t.Errorf("%s was substituted without a trusted signature", p)
		}
	}
}

// TestPushStdinCompressions reads paths from stdin, as
// nix-store -qR ./result | nixpush push --to ... does, with each
// compression set either in the URL (as nix copy takes it) or by flag.
func TestPushStdinCompressions(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	fib := fibOutputs(t, s, "stdin", 3)
	ref := s.Build(t, nixtest.WithReference("stdin"))
	closure := s.Closure(t, append(slices.Clone(fib), ref[1])...)
	if len(closure) != len(fib)+2 {
		t.Fatalf("closure %q", closure)
	}
	stdin := strings.Join(closure, "\n") + "\n"
	sec, _, pub := nixtest.Keygen(t, "stdin-test-1")

	for _, tc := range []struct {
		name, method string
		query        string   // appended to the cache URL
		flags        []string // extra flags
	}{
		{name: "zstd in URL", method: "zstd", query: "?compression=zstd&secret-key=" + sec},
		{name: "xz by flag", method: "xz", flags: []string{"--compression", "xz", "--signing-key", sec}},
		{name: "none in URL", method: "none", query: "?compression=none&secret-key=" + sec},
		{name: "default", method: "zstd", query: "?secret-key=" + sec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cache := filepath.Join(t.TempDir(), "cache")
			url := "file://" + cache
			args := append([]string{"--store", s.Root, "--to", url + tc.query}, tc.flags...)
			r := pushMain(t, t.TempDir(), stdin, args...)
			sum := wantSuccess(t, r, len(closure), 0, 0, 0)
			infos := checkCache(t, cache)
			if got := sortedKeys(infos); !slices.Equal(got, sortedCopy(closure)) {
				t.Fatalf("narinfos in the cache: %q\nwant %q", got, sortedCopy(closure))
			}
			var written []narInfo
			for _, ni := range infos {
				written = append(written, ni)
				if ni.compression != tc.method {
					t.Errorf("%s: Compression %s, want %s", ni.file, ni.compression, tc.method)
				}
			}
			wantSizes(t, sum, written)

			fresh := filepath.Join(t.TempDir(), "fresh")
			out, err := nixtest.Substitute(t, fresh, url, pub, closure...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			wantSubstituted(t, out, url, closure)
			sameNARs(t, s, fresh, closure)
		})
	}
}

// TestPushFiltersAndIdempotence checks what push leaves out (.drv files,
// --exclude, paths an upstream cache signed) and that a second push of the
// same paths writes nothing.
func TestPushFiltersAndIdempotence(t *testing.T) {
	t.Parallel()
	s := nixtest.NewStore(t)
	ref := s.Build(t, nixtest.WithReference("filt")) // [dep, top]
	topDrv := deriver(t, s, ref[1])                  // closure: top.drv, dep.drv
	// Built paths are input-addressed, so Nix checks their signatures;
	// it would take content-addressed ones (nix-store --add) unsigned.
	upstream := s.Build(t, nixtest.FibChain("upstream", 0))[0]
	secret := s.Build(t, nixtest.FibChain("secret", 0))[0] // secret-fib-0
	plain := addDirs(t, s, smallDirs(t, "plain", 1)...)[0]
	// A path as cache.nixos.org would have it: signed by its key name.
	upSec, _, upPub := nixtest.Keygen(t, "cache.nixos.org-1")
	if _, _, err := s.Run(t, "nix", "store", "sign", "--key-file", upSec, upstream); err != nil {
		t.Fatal(err)
	}
	sec, _, pub := nixtest.Keygen(t, "filter-test-1")
	cache := filepath.Join(t.TempDir(), "cache")
	url := "file://" + cache
	state := t.TempDir()
	base := []string{"--store", s.Root, "--to", url, "--signing-key", sec}
	paths := []string{ref[1], upstream, secret, plain}

	// 5 paths: dep, top, plain pushed; upstream skipped; secret-fib-0
	// filtered. (A .drv the user names is pushed: TestPushNamedDrv.)
	filtered := append(slices.Clone(base), append([]string{"--exclude", "^secret-fib"}, paths...)...)
	wantSuccess(t, pushMain(t, state, "", filtered...), 3, 0, 1, 1)
	want := sortedCopy([]string{ref[0], ref[1], plain})
	if got := sortedKeys(checkCache(t, cache)); !slices.Equal(got, want) {
		t.Fatalf("narinfos after the filtered push: %q\nwant %q", got, want)
	}

	// Again: everything is there already, and nothing is rewritten.
	before := snapshot(t, cache)
	wantSuccess(t, pushMain(t, state, "", filtered...), 0, 3, 1, 1)
	if after := snapshot(t, cache); !maps.Equal(before, after) {
		t.Errorf("second push changed the cache:\nbefore %v\nafter  %v", before, after)
	}
	// A new state dir too: what is in the cache decides, not the queue.
	wantSuccess(t, pushMain(t, t.TempDir(), "", filtered...), 0, 3, 1, 1)
	if after := snapshot(t, cache); !maps.Equal(before, after) {
		t.Errorf("push with a fresh state dir changed the cache:\nbefore %v\nafter  %v", before, after)
	}

	// Without the filters the rest goes too: 2 drvs, upstream, secret-fib-0.
	all := append(slices.Clone(base), append([]string{"--include-drv", "--no-upstream-filter", topDrv}, paths...)...)
	wantSuccess(t, pushMain(t, state, "", all...), 4, 3, 0, 0)
	infos := checkCache(t, cache)
	drvs := s.Closure(t, topDrv)
	want = sortedCopy(append([]string{ref[0], ref[1], plain, upstream, secret}, drvs...))
	if got := sortedKeys(infos); !slices.Equal(got, want) {
		t.Fatalf("narinfos after the unfiltered push: %q\nwant %q", got, want)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	outputs := []string{ref[1], upstream, secret, plain}
	out, err := nixtest.Substitute(t, fresh, url, pub, outputs...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	wantSubstituted(t, out, url, append(outputs, ref[0]))
	// The upstream signature from the Nix DB is kept next to ours.
	out, err = nixtest.Substitute(t, filepath.Join(t.TempDir(), "fresh-up"), url, upPub, upstream)
	if err != nil {
		t.Fatalf("substitute %s trusting only the upstream key: %v\n%s", upstream, err, out)
	}
	// .drv files are copied as files (nix-store -r would build them).
	freshDrv := filepath.Join(t.TempDir(), "fresh-drv")
	_, stderr, err := nixtest.Command(t, "nix", "--store", freshDrv, "copy", "--from", url,
		"--derivation", topDrv, "--option", "trusted-public-keys", pub)
	t.Cleanup(func() { _ = filepath.WalkDir(freshDrv, makeDirWritable) })
	if err != nil {
		t.Fatal(err)
	}
	wantSubstituted(t, stderr, url, drvs)
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

// makeDirWritable lets t.TempDir's cleanup remove a store Nix made read-only.
func makeDirWritable(p string, d os.DirEntry, err error) error {
	if err == nil && d.IsDir() {
		_ = os.Chmod(p, 0o755)
	}
	return nil
}
