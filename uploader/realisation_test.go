package uploader_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/internal/nixtest"
	"nixpush/uploader"
)

// caChain is two content-addressed derivations, b built from a and
// referring to it at run time.
const (
	caChain    = nixtest.CAChain
	caFeatures = nixtest.CAFeatures
)

// buildCAChain builds caChain in s, signed by Nix with secFile unless it is
// empty, and returns the outputs [a, b].
func buildCAChain(t *testing.T, s *nixtest.Store, secFile string) []string {
	t.Helper()
	args := []string{"--no-out-link", "--option", "experimental-features", caFeatures, "-E", caChain}
	if secFile != "" {
		args = append(args, "--option", "secret-key-files", secFile)
	}
	out, _, err := s.Run(t, "nix-build", args...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

// TestRealisationDocMatchesNix compares RealisationDoc with the .doi files
// `nix copy` writes: from a store where Nix signed the realisations at
// build time (the DB's signatures come through as they are), and from a
// store where it did not (RealisationDoc signs with the same key and must
// give the same bytes, so fingerprint and signature format are Nix's).
func TestRealisationDocMatchesNix(t *testing.T) {
	key, secFile, _, _ := keygen(t, "ca-test-1")
	signedStore, unsignedStore := nixtest.NewStore(t), nixtest.NewStore(t)
	outs := buildCAChain(t, signedStore, secFile)
	if got := buildCAChain(t, unsignedStore, ""); strings.Join(got, " ") != strings.Join(outs, " ") {
		t.Fatalf("the CA chain has other outputs in a second store: %v, %v", got, outs)
	}
	cacheDir := t.TempDir()
	if _, _, err := signedStore.Run(t, "nix", "copy", "--option", "experimental-features", caFeatures,
		"--impure", "--to", "file://"+cacheDir, "--expr", caChain, "b"); err != nil {
		t.Fatal(err)
	}
	nixDocs, err := filepath.Glob(filepath.Join(cacheDir, "realisations", "*.doi"))
	if err != nil || len(nixDocs) != 2 {
		t.Fatalf("nix copy wrote realisations %v (%v), want 2", nixDocs, err)
	}

	for _, tc := range []struct {
		name  string
		store *nixtest.Store
		keys  []signature.SecretKey
	}{
		{"signed by Nix", signedStore, nil},
		{"signed here", unsignedStore, []signature.SecretKey{key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, tc.store)
			compared := 0
			for _, out := range outs {
				rs, err := st.QueryRealisations(t.Context(), out)
				if err != nil || len(rs) == 0 {
					t.Fatalf("QueryRealisations(%s) = %v, %v", out, rs, err)
				}
				for _, r := range rs {
					want, err := os.ReadFile(filepath.Join(cacheDir, cache.RealisationKey(r)))
					if os.IsNotExist(err) {
						continue // the resolved derivation's: nix copy skips it
					}
					if err != nil {
						t.Fatal(err)
					}
					got, err := cache.RealisationDoc(r, tc.keys)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Contains(want, []byte(`"signatures":["ca-test-1:`)) {
						t.Errorf("Nix's %s is not signed, so the comparison proves little: %s", r.ID, want)
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s:\n got  %s\n want %s", r.ID, got, want)
					}
					compared++
				}
			}
			if compared != len(nixDocs) {
				t.Errorf("compared %d realisations, nix copy wrote %d", compared, len(nixDocs))
			}
		})
	}
}

// TestRealisationsSubstitute pushes the CA chain with the uploader and its
// realisations with RealisationDoc, then builds the same expression in a
// fresh store with ca-derivations: Nix must substitute both outputs, not
// build them.
func TestRealisationsSubstitute(t *testing.T) {
	key, _, _, pub := keygen(t, "ca-test-1")
	s := nixtest.NewStore(t)
	outs := buildCAChain(t, s, "")
	st := openStore(t, s)
	fc, dir := newFileCache(t)
	u := uploader.New(st, fc, uploader.DefaultCompression, []signature.SecretKey{key}, 2, zaptest.NewLogger(t))
	push(t, u, outs[1])
	for _, out := range outs {
		if n, err := uploader.PutRealisations(t.Context(), fc, st, out, u.Keys); err != nil || n == 0 {
			t.Fatalf("PutRealisations(%s) = %d, %v", out, n, err)
		}
	}

	fresh := &nixtest.Store{Root: filepath.Join(t.TempDir(), "fresh")}
	_, stderr, err := fresh.Run(t, "nix-build", "--no-out-link", "--option", "experimental-features", caFeatures,
		"--option", "substituters", "file://"+dir, "--option", "trusted-public-keys", pub,
		"-E", "("+caChain+").b")
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range outs {
		if !strings.Contains(stderr, "copying path '"+out+"' from") {
			t.Errorf("%s was not substituted:\n%s", out, stderr)
		}
	}
	if strings.Contains(stderr, "building '") {
		t.Errorf("the fresh store built instead of substituting:\n%s", stderr)
	}
}

// TestRealisationsNoneWithoutCA: a store that never used ca-derivations has
// no Realisations table, and its paths have no realisations.
func TestRealisationsNoneWithoutCA(t *testing.T) {
	s := nixtest.NewStore(t)
	p := addFile(t, s, "plain", "x")
	rs, err := openStore(t, s).QueryRealisations(t.Context(), p)
	if err != nil || len(rs) != 0 {
		t.Fatalf("QueryRealisations = %v, %v; want none", rs, err)
	}
}
