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

// loggedTree builds a tree (executable, symlink, nested dir) and says so
// on stdout and stderr, so it has both a listing and a build log worth
// comparing.
const loggedTree = `derivation {
  name = "logged-tree"; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" "export PATH=/usr/bin:/bin; echo building; echo warning >&2; mkdir -p $out/bin $out/share/empty; printf '#!/bin/sh\n' > $out/bin/run; chmod +x $out/bin/run; ln -s bin/run $out/link; : > $out/share/empty-file" ];
}`

// TestListingAndLogMatchNix pushes a built path with PutListing and
// PutBuildLog and compares the objects with what `nix copy
// ?write-nar-listing=1` and `nix store copy-log` write; then real Nix reads
// the log back from the cache.
func TestListingAndLogMatchNix(t *testing.T) {
	key, _, _, _ := keygen(t, "extras-1")
	s := nixtest.NewStore(t)
	out := s.Build(t, loggedTree)[0]
	st := openStore(t, s)
	info, err := st.QueryPathInfo(t.Context(), out)
	if err != nil || info.Deriver == "" {
		t.Fatalf("QueryPathInfo(%s) = %+v, %v; want a deriver", out, info, err)
	}

	fc, dir := newFileCache(t)
	u := uploader.New(st, fc, uploader.DefaultCompression, []signature.SecretKey{key}, 1, zaptest.NewLogger(t))
	push(t, u, out)
	var listing bytes.Buffer
	if err := st.DumpNARWithListing(&bytes.Buffer{}, &listing, out); err != nil {
		t.Fatal(err)
	}
	if err := uploader.PutListing(t.Context(), fc, out, listing.Bytes()); err != nil {
		t.Fatal(err)
	}
	if ok, err := uploader.PutBuildLog(t.Context(), fc, st, info.Deriver); !ok || err != nil {
		t.Fatalf("PutBuildLog(%s) = %v, %v", info.Deriver, ok, err)
	}

	ref := t.TempDir()
	if _, _, err := s.Run(t, "nix", "copy", "--to", "file://"+ref+"?write-nar-listing=1&compression=none", out); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Run(t, "nix", "store", "copy-log", "--to", "file://"+ref, out); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{cache.ListingKey(out), cache.BuildLogKey(info.Deriver)} {
		want, err := os.ReadFile(filepath.Join(ref, key))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got  %q\n want %q", key, got, want)
		}
	}

	// `nix log` asks the cache for log/<deriver> of the path's narinfo.
	logOut, _, err := nixtest.Command(t, "nix", "log", "--store", "file://"+dir, out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logOut, "building\n") || !strings.Contains(logOut, "warning\n") {
		t.Errorf("nix log from the cache printed %q", logOut)
	}
}

func TestPutBuildLogMissing(t *testing.T) {
	s := nixtest.NewStore(t)
	fc, dir := newFileCache(t)
	drv := "/nix/store/00000000000000000000000000000000-never-built.drv"
	if ok, err := uploader.PutBuildLog(t.Context(), fc, openStore(t, s), drv); ok || err != nil {
		t.Fatalf("PutBuildLog without a log = %v, %v; want false, nil", ok, err)
	}
	for _, f := range cacheFiles(t, dir) {
		if strings.HasPrefix(f, "log/") {
			t.Errorf("cache holds %s after PutBuildLog without a log", f)
		}
	}
}
