package nixtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-community/go-nix/pkg/nar"
	"github.com/nix-community/go-nix/pkg/nixbase32"
)

// Synthetic stores, for tests and the scale bench: N small valid paths in
// a layered DAG. Each path of layer L references two of layer L-1, every
// path of a layer is referenced from the next, and one top path
// references the whole last layer, so the top's closure is the whole
// store. Files are written and registered with nix-store --load-db, with
// real NAR hashes: Nix builds nothing, and 100,000 paths take seconds,
// not hours. (nix-store --register-validity refuses a store under
// another root.)

// SyntheticWidth is the width of a layer of a synthetic store made with
// width 0: 100,000 paths are then 100 layers deep.
const SyntheticWidth = 1000

// SyntheticPath is one path of a synthetic store: a regular file.
type SyntheticPath struct {
	Path    string
	Content []byte
	Refs    []string
}

// syntheticPath names path number i of a family (the paths added to a
// store later are another family).
func syntheticPath(family string, i int) string {
	h := sha256.Sum256(fmt.Appendf(nil, "nixpush scale %s %d", family, i))
	return fmt.Sprintf("/nix/store/%s-%s-%06d", nixbase32.EncodeToString(h[:20]), family, i)
}

// SyntheticLayout lays out n paths of family in layers of width (0:
// SyntheticWidth) above base (the paths its first layer references: none,
// or the top of a store it extends), and a top path, last, referencing
// the last layer, so its closure is all of them and base's.
func SyntheticLayout(family string, n, width int, base []string) []SyntheticPath {
	if width <= 0 {
		width = SyntheticWidth
	}
	entries := make([]SyntheticPath, n)
	below := base
	for start := 0; start < n-1; start += width {
		end := min(start+width, n-1)
		for i := start; i < end; i++ {
			e := SyntheticPath{Path: syntheticPath(family, i), Content: syntheticContent(family, i)}
			if len(below) > 0 {
				j := i - start
				e.Refs = uniq(below[(2*j)%len(below)], below[(2*j+1)%len(below)])
			}
			entries[i] = e
		}
		below = below[:0:0]
		for i := start; i < end; i++ {
			below = append(below, entries[i].Path)
		}
	}
	entries[n-1] = SyntheticPath{Path: syntheticPath(family, n-1), Content: syntheticContent(family, n-1), Refs: below}
	return entries
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

// syntheticContent is 100 B to 4 KiB of text, different for every path.
func syntheticContent(family string, i int) []byte {
	size := 100 + (i*7919)%(4096-100)
	line := fmt.Sprintf("%s path %d\n", family, i)
	return []byte(strings.Repeat(line, size/len(line)+1)[:size])
}

// WriteSynthetic writes entries' files into root's store and registers
// them; root must be an initialised store (nix-store --init).
func WriteSynthetic(ctx context.Context, root string, entries []SyntheticPath, env []string) error {
	var reg bytes.Buffer
	for _, e := range entries {
		file := filepath.Join(root, e.Path)
		if err := os.WriteFile(file, e.Content, 0o444); err != nil {
			return err
		}
		narHash, narSize, err := narOfFile(e.Content)
		if err != nil {
			return err
		}
		// nix-store --dump-db's format: path, hash, size, deriver,
		// number of references, references.
		fmt.Fprintf(&reg, "%s\n%s\n%d\n\n%d\n", e.Path, narHash, narSize, len(e.Refs))
		for _, r := range e.Refs {
			fmt.Fprintln(&reg, r)
		}
	}
	cmd := exec.CommandContext(ctx, "nix-store", "--store", root, "--load-db")
	cmd.Env = env
	cmd.Stdin = &reg
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nix-store --load-db: %w: %s", err, out)
	}
	return nil
}

// narOfFile is the sha256 (base16) and size of the NAR of a regular file.
func narOfFile(content []byte) (string, int64, error) {
	h := sha256.New()
	cw := &countWriter{w: h}
	bw := bufio.NewWriter(cw)
	w, err := nar.NewWriter(bw)
	if err != nil {
		return "", 0, err
	}
	if err := w.WriteHeader(&nar.Header{Path: "/", Type: nar.TypeRegular, Size: int64(len(content))}); err != nil {
		return "", 0, err
	}
	if _, err := w.Write(content); err != nil {
		return "", 0, err
	}
	if err := w.Close(); err != nil {
		return "", 0, err
	}
	if err := bw.Flush(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), cw.n, nil
}

type countWriter struct {
	w interface{ Write([]byte) (int, error) }
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Synthetic fills the store s with n synthetic paths in layers of width
// and returns them, the top (whose closure is all of them) last.
func (s *Store) Synthetic(t testing.TB, n, width int) []string {
	t.Helper()
	entries := SyntheticLayout("t", n, width, nil)
	if err := WriteSynthetic(t.Context(), s.Root, entries, Env(t)); err != nil {
		t.Fatal(err)
	}
	paths := make([]string, n)
	for i, e := range entries {
		paths[i] = e.Path
	}
	return paths
}
