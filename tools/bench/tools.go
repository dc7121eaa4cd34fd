package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// tool is one contender: a way of getting an input's NARs compressed,
// hashed and (except for the machine limit) signed into a fresh cache.
// Run does one timed run in fresh directories and removes them after.
type tool interface {
	Name() string
	Run(ctx context.Context, w *workspace, in *Input) (Sample, error)
}

// nixpushTool is `nixpush push` to a file:// cache, zstd as nix copy
// uses it, with a fresh --state-dir (queue) and cache every run.
// extra flags make a variant (Name says which).
type nixpushTool struct {
	bin   string
	extra []string
}

func (t nixpushTool) Name() string {
	if len(t.extra) > 0 {
		return "nixpush push " + strings.Join(t.extra, " ")
	}
	return "nixpush push"
}

func (t nixpushTool) Run(ctx context.Context, w *workspace, in *Input) (Sample, error) {
	scratch, err := w.newScratch("nixpush")
	if err != nil {
		return Sample{}, err
	}
	w.deleteLater(scratch)
	cache := filepath.Join(scratch, "cache")
	args := append([]string{"push",
		"--store", w.Root,
		"--to", "file://" + cache + "?compression=zstd",
		"--signing-key", w.SecKey,
		"--state-dir", filepath.Join(scratch, "state"),
	}, append(slices.Clone(t.extra), in.Paths...)...)
	s, _, err := measure(ctx, t.bin, args, cleanEnv(filepath.Join(scratch, "home")))
	if err != nil {
		return Sample{}, err
	}
	s.Output, err = cacheOutput(cache, len(in.Paths))
	return s, err
}

// nixCopyTool is the reference: `nix --store ROOT copy --to
// file://DIR?compression=zstd&secret-key=SEC`, fresh DIR and fresh
// XDG_CACHE_HOME every run so it cannot skip paths it remembers.
type nixCopyTool struct{}

func (nixCopyTool) Name() string { return "nix copy" }

func (nixCopyTool) Run(ctx context.Context, w *workspace, in *Input) (Sample, error) {
	scratch, err := w.newScratch("nixcopy")
	if err != nil {
		return Sample{}, err
	}
	w.deleteLater(scratch)
	cache := filepath.Join(scratch, "cache")
	args := append([]string{"--store", w.Root, "copy",
		"--to", "file://" + cache + "?compression=zstd&secret-key=" + w.SecKey,
	}, in.Paths...)
	s, _, err := measure(ctx, "nix", args, cleanEnv(filepath.Join(scratch, "home")))
	if err != nil {
		return Sample{}, err
	}
	s.Output, err = cacheOutput(cache, len(in.Paths))
	return s, err
}

// limitTool is the machine's own limit: the unavoidable work (serialise,
// compress at zstd's default level on every core, hash) done by the
// fastest tools there are, with no per-path work and nothing written.
type limitTool struct{}

func (limitTool) Name() string { return "limit: dump | zstd -T0 -3 | sha256sum" }

// limitScript is run by bash with the tree to dump as $1. nix-store
// --dump reads the filesystem path it is given and ignores --store, so
// it gets the physical path.
const limitScript = `nix-store --dump "$1" | zstd -T0 -3 -q | `

func (limitTool) Run(ctx context.Context, w *workspace, in *Input) (Sample, error) {
	s, _, err := runLimit(ctx, w, in, "sha256sum")
	s.Output = in.LimitSize
	return s, err
}

// runLimit runs the dump | zstd pipeline on in.DumpSource, ending in sink.
func runLimit(ctx context.Context, w *workspace, in *Input, sink string) (Sample, string, error) {
	home, err := w.newScratch("limit")
	if err != nil {
		return Sample{}, "", err
	}
	defer removeAll(home)
	args := []string{"-o", "pipefail", "-c", limitScript + sink, "bash", in.DumpSource}
	return measure(ctx, "bash", args, cleanEnv(home))
}

// warmUp brings an input into the page cache untimed, as every timed run
// after it will find it. It first dumps DumpSource through the limit
// pipeline, which also measures the zstd -3 size (in.LimitSize), and
// returns that dump's wall time: much slower than the timed limit runs
// means the input was cold. Then it reads every file of the store paths
// (for many small paths DumpSource is not them) and the Nix DB.
func warmUp(ctx context.Context, w *workspace, in *Input) (time.Duration, error) {
	s, out, err := runLimit(ctx, w, in, "wc -c")
	if err != nil {
		return 0, fmt.Errorf("warm up %s: %w", in.Name, err)
	}
	if in.LimitSize, err = strconv.ParseInt(strings.TrimSpace(out), 10, 64); err != nil {
		return 0, fmt.Errorf("warm up %s: wc -c printed %q", in.Name, out)
	}
	files := []string{filepath.Join(w.Root, "nix", "var", "nix", "db", "db.sqlite")}
	for _, p := range in.Paths {
		files = append(files, w.Real(p))
	}
	for _, f := range files {
		if err := readTree(f); err != nil {
			return 0, fmt.Errorf("warm up %s: %w", in.Name, err)
		}
	}
	return s.Wall, nil
}

// readTree reads every regular file under root once.
func readTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
}
