package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Input names, also the keys of WORK/inputs.json.
const (
	largeTreeInput  = "large-tree"
	smallPathsInput = "small-paths"
)

// smallPathCount and the size range of each small path's content.
const (
	smallPathCount = 1000
	smallMinBytes  = 100
	smallMaxBytes  = 4096
)

// largeTree adds a copy of the Go toolchain (go env GOROOT: ~235 MB of
// NAR in ~15,000 files, a realistic mix of source, binaries and small
// files) to the store as one path named go-toolchain.
func (w *workspace) largeTree(ctx context.Context) (*Input, error) {
	return w.input(ctx, largeTreeInput, func(ctx context.Context) (*Input, error) {
		out, err := runCmd(ctx, "", nil, "go", "env", "GOROOT")
		if err != nil {
			return nil, err
		}
		goroot := strings.TrimSpace(out)
		// Copy first: the store path gets a name that says what it is, and
		// a GOROOT changing under us cannot make the add inconsistent.
		src := filepath.Join(w.Dir, "src", "go-toolchain")
		removeAll(src)
		defer removeAll(src)
		if _, err := runCmd(ctx, "", nil, "cp", "-a", goroot, src); err != nil {
			return nil, fmt.Errorf("copy GOROOT: %w", err)
		}
		files, err := countFiles(src)
		if err != nil {
			return nil, err
		}
		paths, err := w.addToStore(ctx, src)
		if err != nil {
			return nil, err
		}
		return &Input{Paths: paths, Files: files, DumpSource: w.Real(paths[0])}, nil
	})
}

// smallPaths adds 1,000 small paths (100 B–4 KB of text each; every
// fourth one a directory of a few files) in a single nix-store --add.
// The sources stay under WORK/src/small-paths: the machine-limit pipeline
// dumps that directory as one NAR.
func (w *workspace) smallPaths(ctx context.Context) (*Input, error) {
	return w.input(ctx, smallPathsInput, func(ctx context.Context) (*Input, error) {
		src := filepath.Join(w.Dir, "src", smallPathsInput)
		removeAll(src)
		srcs, err := writeSmallSources(src)
		if err != nil {
			return nil, err
		}
		files, err := countFiles(src)
		if err != nil {
			return nil, err
		}
		paths, err := w.addToStore(ctx, srcs...)
		if err != nil {
			return nil, err
		}
		return &Input{Paths: paths, Files: files, DumpSource: src}, nil
	})
}

// writeSmallSources writes the small paths' sources under dir and returns
// them in order. The content is deterministic (fixed seed), text-like so
// that it compresses somewhat, and unique per path.
func writeSmallSources(dir string) ([]string, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var srcs []string
	for i := range smallPathCount {
		name := filepath.Join(dir, fmt.Sprintf("small-%04d", i))
		size := smallMinBytes + rng.IntN(smallMaxBytes-smallMinBytes+1)
		var err error
		if i%4 == 3 {
			err = writeSmallDir(rng, name, i, size)
		} else {
			err = writeFile(name, smallText(rng, i, size))
		}
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, name)
	}
	return srcs, nil
}

// writeSmallDir splits size bytes over 2–4 files in a new directory.
func writeSmallDir(rng *rand.Rand, dir string, i, size int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write small sources: %w", err)
	}
	n := 2 + rng.IntN(3)
	for j := range n {
		part := size / n
		if j == n-1 {
			part = size - part*(n-1)
		}
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("part-%d.txt", j)), smallText(rng, i, part)); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return fmt.Errorf("write small sources: %w", err)
	}
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return fmt.Errorf("write small sources: %w", err)
	}
	return nil
}

var words = strings.Fields(`store path closure narinfo signature cache upload
	queue daemon compress hash derivation output reference build substitute
	zstd nix archive file directory symlink executable deadbeef 0x1f 42 1000`)

// smallText returns exactly size bytes of word salad starting with a line
// naming item i, so no two paths have the same content.
func smallText(rng *rand.Rand, i, size int) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "item %d\n", i)
	for b.Len() < size {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(8) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return []byte(b.String()[:size])
}
