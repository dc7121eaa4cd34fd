package nixstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// writeOddNames adds names that Nix's JSON writer escapes differently from
// encoding/json: quotes, backslashes, every named and unnamed control
// byte, DEL, HTML characters, invalid UTF-8; and a symlink target with them.
func writeOddNames(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{
		"q\"uote", `back\slash`, "ctl\x01\x08\x0c\x1f\x7f", "tab\tnl\nlf\rcr",
		"<html>&amp;", "\xff\xfeinvalid", "\u2028sep",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a\"b\\c\x01\n<é>", filepath.Join(dir, "odd-link")); err != nil {
		t.Fatal(err)
	}
}

// TestNARListingMatchesNix compares DumpNARWithListing's listing with the
// .ls files `nix copy` writes with write-nar-listing=1, for a tricky tree, a
// single file and a lone symlink, and checks the NAR it dumps alongside.
func TestNARListingMatchesNix(t *testing.T) {
	s := nixtest.NewStore(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree)
	writeOddNames(t, tree)
	single := filepath.Join(t.TempDir(), "single")
	if err := os.WriteFile(single, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink("/nix/store/somewhere", link); err != nil {
		t.Fatal(err)
	}
	paths := []string{s.Add(t, tree), s.Add(t, single), s.Add(t, link)}

	cache := t.TempDir()
	if _, _, err := s.Run(t, "nix", append([]string{"copy", "--to",
		"file://" + cache + "?write-nar-listing=1&compression=none"}, paths...)...); err != nil {
		t.Fatal(err)
	}

	st := open(t, s)
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			hashPart, _, _ := strings.Cut(filepath.Base(p), "-")
			want, err := os.ReadFile(filepath.Join(cache, hashPart+".ls"))
			if err != nil {
				t.Fatal(err)
			}
			var nar, ls bytes.Buffer
			if err := st.DumpNARWithListing(&nar, &ls, p); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ls.Bytes(), want) {
				t.Errorf("listing differs from Nix's\n got  %q\n want %q", ls.Bytes(), want)
			}
			if !bytes.Equal(nar.Bytes(), s.Dump(t, p)) {
				t.Errorf("the NAR dumped with a listing differs from nix-store --dump")
			}
		})
	}
}
