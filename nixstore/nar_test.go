package nixstore_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// writeTree creates the files a NAR dump has to get exactly right: every
// node type, the executable bit, empty files and dirs, padding, names that
// sort differently bytewise than in a locale, and non-ASCII names.
func writeTree(t *testing.T, dir string) {
	t.Helper()
	big := make([]byte, 300_001) // several writes, odd length: padding
	r := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"exe", []byte("#!/bin/sh\necho hi\n"), 0o755},
		{"user-exe-only", []byte("x"), 0o744},
		{"plain", []byte("plain data"), 0o644},
		{"eight", []byte("12345678"), 0o644}, // no padding needed
		{"empty", nil, 0o644},
		{"empty-exe", nil, 0o755},
		{"big.bin", big, 0o644},
		{"nested/a/b/c/deep.txt", []byte("deep\n"), 0o644},
		{"ü", []byte("u-umlaut"), 0o644},
		{"日本/語.txt", []byte("nihongo"), 0o644},
		// Bytewise: "Apple" < "B" < "_x" < "a" < "a-b" < "a.b" < "a0" <
		// "a_b" < "b" < "~" < "é"; a locale would interleave cases and put
		// "é" next to "e".
		{"Apple", []byte("1"), 0o644},
		{"B", []byte("2"), 0o644},
		{"_x", []byte("3"), 0o644},
		{"a/inner", []byte("4"), 0o644}, // a dir sorting before its "a-" siblings
		{"a-b", []byte("5"), 0o644},
		{"a.b", []byte("6"), 0o644},
		{"a0", []byte("7"), 0o644},
		{"a_b", []byte("8"), 0o644},
		{"b", []byte("9"), 0o644},
		{"e", []byte("10"), 0o644},
		{"é", []byte("11"), 0o644},
		{"~", []byte("12"), 0o644},
		{".hidden", []byte("13"), 0o644},
		{"..dots", []byte("14"), 0o644},
		{"...", []byte("15"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil { // umask-proof
			t.Fatal(err)
		}
	}
	for _, d := range []string{"emptydir", "nested/emptydir", "日本/空"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := []struct{ name, target string }{
		{"abs-link", "/etc/passwd"},
		{"rel-link", "nested/a/b/c/deep.txt"},
		{"up-link", "../../../plain"},
		{"dangling", "does/not/exist"},
		{"dir-link", "nested"},
		{"store-link", "/nix/store/00000000000000000000000000000000-x"},
		{"日本/リンク", "../ü"},
	}
	for _, l := range links {
		if err := os.Symlink(l.target, filepath.Join(dir, filepath.FromSlash(l.name))); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDumpNARMatchesNix(t *testing.T) {
	s := nixtest.NewStore(t)
	tree := filepath.Join(t.TempDir(), "tree")
	writeTree(t, tree)
	dirPath := s.Add(t, tree)

	single := filepath.Join(t.TempDir(), "single-file")
	if err := os.WriteFile(single, []byte("just one file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	filePath := s.Add(t, single)

	link := filepath.Join(t.TempDir(), "top-link")
	if err := os.Symlink("/nix/store/somewhere", link); err != nil {
		t.Fatal(err)
	}
	linkPath := s.Add(t, link)

	drv := deriverOf(t, s, s.Build(t, nixtest.WithReference("nar"))[1])

	st := open(t, s)
	for _, p := range []string{dirPath, filePath, linkPath, drv} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want := s.Dump(t, p)
			var got bytes.Buffer
			if err := st.DumpNAR(&got, p); err != nil {
				t.Fatalf("DumpNAR(%s): %v", p, err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				i := 0
				for i < min(got.Len(), len(want)) && got.Bytes()[i] == want[i] {
					i++
				}
				t.Fatalf("DumpNAR(%s): %d bytes, nix-store --dump: %d bytes; first difference at offset %d:\n got  %q\n want %q",
					p, got.Len(), len(want), i,
					got.Bytes()[max(0, i-32):min(got.Len(), i+32)], want[max(0, i-32):min(len(want), i+32)])
			}
			info, err := st.QueryPathInfo(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(got.Bytes()); !bytes.Equal(sum[:], info.NarHash) {
				t.Errorf("sha256 of NAR = %x, PathInfo.NarHash = %x", sum, info.NarHash)
			}
			if uint64(got.Len()) != info.NarSize {
				t.Errorf("NAR length = %d, PathInfo.NarSize = %d", got.Len(), info.NarSize)
			}
		})
	}
}

func TestDumpNARMissingPath(t *testing.T) {
	s := nixtest.NewStore(t)
	st := open(t, s)
	p := "/nix/store/00000000000000000000000000000000-missing"
	var buf bytes.Buffer
	err := st.DumpNAR(&buf, p)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("DumpNAR of a missing path: err = %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("DumpNAR error %q does not name %s", err, p)
	}
}
