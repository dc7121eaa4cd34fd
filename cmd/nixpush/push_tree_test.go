package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nixpush/internal/nixtest"
)

// TestPushLargeTree pushes one ~40 MB path of ~2,000 files (nested dirs,
// executables, symlinks, empty files and dirs), copies it back with
// nix copy into a fresh store and compares the tree with the original.
func TestPushLargeTree(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "tree-test-1")
	src := filepath.Join(t.TempDir(), "big-tree")
	makeTree(t, src, 2000, 40<<20)
	p := addDirs(t, e.store, src)[0]

	r := e.push("", p)
	sum := wantSuccess(t, r, 1, 0, 0, 0)
	infos := checkCache(t, e.cache)
	ni, ok := infos[p]
	if !ok || len(infos) != 1 {
		t.Fatalf("narinfos in the cache: %q, want only %s", sortedKeys(infos), p)
	}
	if ni.narSize < 36<<20 {
		t.Errorf("NarSize %d: the tree should serialise to about 40 MB", ni.narSize)
	}
	wantSizes(t, sum, []narInfo{ni})

	fresh := filepath.Join(t.TempDir(), "fresh")
	t.Cleanup(func() { _ = filepath.WalkDir(fresh, makeDirWritable) })
	_, stderr, err := nixtest.Command(t, "nix", "--store", fresh, "copy", "--from", e.url, p,
		"--option", "trusted-public-keys", e.pub)
	if err != nil {
		t.Fatal(err)
	}
	wantSubstituted(t, stderr, e.url, []string{p})
	want, got := treeOf(t, src), treeOf(t, filepath.Join(fresh, p))
	if len(want) < 2000 {
		t.Fatalf("source tree has %d entries", len(want))
	}
	for _, rel := range sortedKeys(want) {
		if g, ok := got[rel]; !ok {
			t.Errorf("%s: missing from the copy", rel)
		} else if g != want[rel] {
			t.Errorf("%s: copy is %s, original %s", rel, g, want[rel])
		}
	}
	for _, rel := range sortedKeys(got) {
		if _, ok := want[rel]; !ok {
			t.Errorf("%s: in the copy only", rel)
		}
	}
}

// makeTree writes about n entries holding about size bytes under dir:
// pseudo-random (incompressible) and text-like files, ~1 in 7
// executable, a few large files, symlinks (relative, absolute, dangling,
// to directories), empty files and empty directories, nested up to 4 deep.
func makeTree(t *testing.T, dir string, n, size int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	bytesSrc := rand.NewChaCha8([32]byte{7})
	dirs := []string{"."}
	var files []string
	// A quarter of the bytes in four large files.
	for i := range 4 {
		name := fmt.Sprintf("large-%d.bin", i)
		writeFile(t, filepath.Join(dir, name), randomBytes(bytesSrc, size/16), 0o644)
		files = append(files, name)
	}
	perFile := size * 3 / 4 / n
	for i := range n {
		parent := dirs[rng.IntN(len(dirs))]
		switch k := rng.IntN(20); {
		case k < 2 && strings.Count(parent, "/") < 4: // a new directory
			d := filepath.Join(parent, fmt.Sprintf("d%d", i))
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				t.Fatal(err)
			}
			dirs = append(dirs, d)
		case k < 3 && len(files) > 0: // a symlink
			var target string
			switch rng.IntN(4) {
			case 0:
				target = "/etc/hostname" // absolute, outside the store
			case 1:
				target = fmt.Sprintf("dangling-%d", i)
			case 2:
				target, _ = filepath.Rel(parent, dirs[rng.IntN(len(dirs))])
			default:
				target, _ = filepath.Rel(parent, files[rng.IntN(len(files))])
			}
			if err := os.Symlink(target, filepath.Join(dir, parent, fmt.Sprintf("l%d", i))); err != nil {
				t.Fatal(err)
			}
		default: // a file
			name := filepath.Join(parent, fmt.Sprintf("f%d", i))
			var data []byte
			switch rng.IntN(8) {
			case 0: // empty
			case 1, 2: // text-like: compresses, but not to nothing
				var b bytes.Buffer
				for b.Len() < perFile*2 {
					fmt.Fprintf(&b, "line %d of %s: %x\n", b.Len(), name, rng.Uint64())
				}
				data = b.Bytes()
			default:
				data = randomBytes(bytesSrc, rng.IntN(perFile*2)+1)
			}
			mode := os.FileMode(0o644)
			if rng.IntN(7) == 0 {
				mode = 0o755
			}
			writeFile(t, filepath.Join(dir, name), data, mode)
			files = append(files, name)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty-dir", "empty-sub"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// treeEntry is what a NAR keeps of a file: its type, the owner's execute
// bit, its contents or a symlink's target.
type treeEntry struct {
	kind string // "dir", "file", "exe" or "link"
	data string // contents (files) or target (links)
}

func (e treeEntry) String() string {
	if len(e.data) > 40 {
		return fmt.Sprintf("%s (%d bytes)", e.kind, len(e.data))
	}
	return fmt.Sprintf("%s %q", e.kind, e.data)
}

func treeOf(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	m := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var e treeEntry
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e = treeEntry{"link", target}
		case fi.IsDir():
			e = treeEntry{kind: "dir"}
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e = treeEntry{"file", string(b)}
			if fi.Mode()&0o100 != 0 {
				e.kind = "exe"
			}
		default:
			return fmt.Errorf("%s: unexpected mode %v", p, fi.Mode())
		}
		m[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
