package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// workspace is the cached setup under -work: a private Nix store holding
// the inputs, and a signing key. Building it takes a minute; a re-run
// reuses whatever is still valid and rebuilds only what is missing.
//
//	WORK/root/          the store (nix-store --store WORK/root)
//	WORK/key.sec|pub    binary cache signing key
//	WORK/src/           the small paths' sources (the copy of GOROOT goes once added)
//	WORK/inputs.json    the inputs' store paths (manifest below)
//	WORK/runs/          scratch of the timed runs, emptied as they end
type workspace struct {
	Dir    string
	Root   string
	SecKey string
	inputs map[string]*Input
	later  []string // run outputs to delete when the suite ends
}

// deleteLater keeps a run's output until the suite ends. Deleting
// thousands of files between runs makes ext4 slower to allocate inodes
// for the next run (it skips recently deleted ones), which would charge
// one tool for the cleanup of another.
func (w *workspace) deleteLater(dir string) { w.later = append(w.later, dir) }

// deleteNow removes what deleteLater kept.
func (w *workspace) deleteNow() {
	for _, d := range w.later {
		removeAll(d)
	}
	w.later = nil
}

// Input is one set of store paths the tools push.
type Input struct {
	Name    string   `json:"name"`
	Paths   []string `json:"paths"`    // logical /nix/store paths
	NARSize int64    `json:"nar_size"` // sum over Paths, as Nix records it
	Files   int      `json:"files"`    // regular files and symlinks
	// DumpSource is the one filesystem tree whose NAR the machine-limit
	// pipeline dumps: the store path itself, or for many small paths the
	// directory they were added from (the same bytes in one NAR).
	DumpSource string `json:"dump_source"`
	// LimitSize is the zstd -3 size of DumpSource's NAR, measured by
	// the warm-up.
	LimitSize int64 `json:"-"`
}

// manifestVersion changes whenever the inputs' recipe does, so an old
// work dir is rebuilt rather than silently measuring something else.
const manifestVersion = 1

type manifest struct {
	Version int               `json:"version"`
	Inputs  map[string]*Input `json:"inputs"`
}

// openWorkspace creates or reuses the store and key under dir.
func openWorkspace(ctx context.Context, dir string) (*workspace, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	w := &workspace{Dir: abs, Root: filepath.Join(abs, "root"), SecKey: filepath.Join(abs, "key.sec")}
	// Scratch left by an interrupted run is of no use to anyone.
	removeAll(w.runsDir())
	for _, d := range []string{w.Dir, filepath.Join(w.Dir, "src"), w.runsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create work dir: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(w.Root, "nix", "var", "nix", "db", "db.sqlite")); err != nil {
		logf("setup: creating store %s", w.Root)
		if _, err := w.nix(ctx, "nix-store", "--store", w.Root, "--init"); err != nil {
			return nil, fmt.Errorf("init store: %w", err)
		}
	}
	if _, err := os.Stat(w.SecKey); err != nil {
		logf("setup: generating signing key")
		pub := filepath.Join(w.Dir, "key.pub")
		if _, err := w.nix(ctx, "nix-store", "--store", w.Root,
			"--generate-binary-cache-key", "nixpush-bench-1", w.SecKey, pub); err != nil {
			return nil, fmt.Errorf("generate signing key: %w", err)
		}
	}
	w.inputs = w.loadManifest()
	return w, nil
}

func (w *workspace) runsDir() string { return filepath.Join(w.Dir, "runs") }

// newScratch returns an empty directory for one timed run.
func (w *workspace) newScratch(name string) (string, error) {
	d, err := os.MkdirTemp(w.runsDir(), name+"-")
	if err != nil {
		return "", fmt.Errorf("create scratch dir: %w", err)
	}
	return d, nil
}

// nix runs an untimed Nix command with a throwaway home.
func (w *workspace) nix(ctx context.Context, name string, args ...string) (string, error) {
	home, err := w.newScratch("home")
	if err != nil {
		return "", err
	}
	defer removeAll(home)
	return runCmd(ctx, "", cleanEnv(home), name, args...)
}

// Real maps a logical store path to its file in the workspace store.
func (w *workspace) Real(path string) string { return filepath.Join(w.Root, path) }

// input returns the named input, building it with make when the manifest
// lacks it or Nix no longer knows all its paths.
func (w *workspace) input(ctx context.Context, name string, make func(ctx context.Context) (*Input, error)) (*Input, error) {
	if in := w.inputs[name]; in != nil && w.valid(ctx, in) {
		logf("setup: reusing input %s (%d paths)", name, len(in.Paths))
		return in, nil
	}
	logf("setup: building input %s", name)
	in, err := make(ctx)
	if err != nil {
		return nil, fmt.Errorf("build input %s: %w", name, err)
	}
	in.Name = name
	if in.NARSize, err = w.narSize(ctx, in.Paths); err != nil {
		return nil, err
	}
	w.inputs[name] = in
	if err := w.saveManifest(); err != nil {
		return nil, err
	}
	return in, nil
}

// valid reports whether Nix still has every path of in and its dump
// source still exists.
func (w *workspace) valid(ctx context.Context, in *Input) bool {
	if len(in.Paths) == 0 {
		return false
	}
	if _, err := os.Stat(in.DumpSource); err != nil {
		return false
	}
	n, err := w.narSize(ctx, in.Paths)
	return err == nil && n == in.NARSize
}

// narSize sums the NAR sizes Nix records; it fails if a path is invalid.
func (w *workspace) narSize(ctx context.Context, paths []string) (int64, error) {
	out, err := w.nix(ctx, "nix-store", append([]string{"--store", w.Root, "-q", "--size"}, paths...)...)
	if err != nil {
		return 0, fmt.Errorf("query NAR sizes: %w", err)
	}
	var sum int64
	fields := strings.Fields(out)
	if len(fields) != len(paths) {
		return 0, fmt.Errorf("query NAR sizes: got %d sizes for %d paths", len(fields), len(paths))
	}
	for _, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("query NAR sizes: %q: %w", f, err)
		}
		sum += n
	}
	return sum, nil
}

// addToStore runs one nix-store --add for all srcs (it takes many) and
// returns the store paths in the order of srcs.
func (w *workspace) addToStore(ctx context.Context, srcs ...string) ([]string, error) {
	out, err := w.nix(ctx, "nix-store", append([]string{"--store", w.Root, "--add"}, srcs...)...)
	if err != nil {
		return nil, fmt.Errorf("add to store: %w", err)
	}
	paths := strings.Fields(out)
	if len(paths) != len(srcs) {
		return nil, fmt.Errorf("add to store: %d paths printed for %d sources", len(paths), len(srcs))
	}
	return paths, nil
}

func (w *workspace) manifestFile() string { return filepath.Join(w.Dir, "inputs.json") }

// loadManifest returns the recorded inputs, or none if the file is
// missing, unreadable or from another recipe version.
func (w *workspace) loadManifest() map[string]*Input {
	var m manifest
	b, err := os.ReadFile(w.manifestFile())
	if err != nil || json.Unmarshal(b, &m) != nil || m.Version != manifestVersion || m.Inputs == nil {
		return map[string]*Input{}
	}
	return m.Inputs
}

// saveManifest writes the manifest atomically (temp file + rename).
func (w *workspace) saveManifest() error {
	b, err := json.MarshalIndent(manifest{Version: manifestVersion, Inputs: w.inputs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	tmp := w.manifestFile() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.Rename(tmp, w.manifestFile()); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// removeAll deletes a tree, first making its directories writable (store
// paths copied with cp -a or Nix's own files may be read-only).
func removeAll(dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		logf("warning: remove %s: %v", dir, err)
	}
}

// countFiles counts the non-directories under root.
func countFiles(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("count files: %w", err)
	}
	return n, nil
}
