package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"nixpush/cache"
	"nixpush/cache/gc"
	"nixpush/pipeline"
)

// gcCommand is `nixpush gc --to URL`: it keeps the closures of what the
// user says to keep (recent narinfos, --keep paths, pins) and deletes the
// rest, safely beside running pushers (see package cachegc). Dry run
// unless --delete.
type gcCommand struct {
	to       string
	network  networkFlags
	store    string
	stateDir string
	gc       gcFlags
	delete   bool
	asJSON   bool
}

// gcFlags say what gc keeps; `gc` and `watch-store --gc-every` share them.
type gcFlags struct {
	keepDays int
	keep     []string
	keepFrom string
	maxSize  int64
	grace    time.Duration
}

func (g *gcFlags) add(fs *pflag.FlagSet) {
	fs.IntVar(&g.keepDays, "keep-days", 30, "keep the closures of narinfos written within this many days")
	fs.StringArrayVar(&g.keep, "keep", nil, "keep the closure of this store path (repeatable)")
	fs.StringVar(&g.keepFrom, "keep-from", "", "keep the closures of the store paths listed in this file (e.g. a release's closure)")
	fs.Int64Var(&g.maxSize, "max-size", 0, "keep only the newest kept-by-age closures that fit in this many bytes (0: no limit)")
	fs.DurationVar(&g.grace, "grace", gc.DefaultGrace, "never delete anything written this recently (pushers at work; 0: only what is written while gc runs)")
}

// options resolves the kept paths (./result links too) through the store.
func (g *gcFlags) options(storeRoot string, del bool) (gc.Options, error) {
	keep := g.keep
	if g.keepFrom != "" {
		listed, err := readPathsFile(g.keepFrom)
		if err != nil {
			return gc.Options{}, err
		}
		keep = append(keep, listed...)
	}
	if len(keep) > 0 {
		var err error
		if keep, err = resolvePaths(storeRoot, keep); err != nil {
			return gc.Options{}, err
		}
	}
	return gc.Options{KeepDays: g.keepDays, Keep: keep, MaxSize: g.maxSize, Grace: g.grace, Delete: del}, nil
}

func newGCCommand() *cobra.Command {
	c := &gcCommand{}
	cmd := &cobra.Command{
		Use:   "gc --to URL [--keep-days N] [--keep PATH]... [--delete]",
		Short: "delete what no kept closure needs from a server-less cache (dry run unless --delete)",
		Args:  noArgs,
		RunE:  withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringVar(&c.to, "to", "", "cache URL")
	fs.StringVar(&c.store, "store", "/", "root of the local Nix store (to resolve --keep ./result)")
	addStateDirFlag(fs, &c.stateDir) // its memo of the cache forgets what gc deletes
	c.gc.add(fs)
	fs.BoolVar(&c.delete, "delete", false, "delete; without it, only print what would go")
	fs.BoolVar(&c.asJSON, "json", false, "print the result as JSON on stdout")
	c.network.add(fs)
	return cmd
}

func (c *gcCommand) run(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	u, err := cacheURLFlag(c.to)
	if err != nil {
		return err
	}
	opts, err := c.gc.options(c.store, c.delete)
	if err != nil {
		return err
	}
	cc, err := c.network.openCache(ctx, u)
	if err != nil {
		return err
	}
	defer cache.Close(cc)
	res, err := gc.Collect(ctx, cc, opts)
	if err != nil {
		return err
	}
	if res.Deleted {
		if err := pipeline.ForgetCollected(ctx, c.stateDir, u.Identity(), res.Paths); err != nil {
			return fmt.Errorf("gc deleted %d paths but this machine's memo of the cache still lists them (push --recheck asks the cache again): %w", len(res.Paths), err)
		}
	}
	if c.asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printGC(cmd.OutOrStdout(), res)
	}
	if len(res.Damaged) > 0 {
		return fmt.Errorf("%d paths pushed during gc lost their NAR: run nixpush verify --repair --to %s", len(res.Damaged), u.Identity())
	}
	return nil
}

func printGC(w io.Writer, r gc.Result) {
	verb := "would delete"
	if r.Deleted {
		verb = "deleted"
	}
	for _, p := range r.Paths {
		fmt.Fprintf(w, "%s %s\n", verb, p)
	}
	for _, p := range r.MissingRoots {
		fmt.Fprintf(w, "kept root not in the cache: %s\n", p)
	}
	verbUploads := "would abort"
	if r.Deleted {
		verbUploads = "aborted"
	}
	for _, u := range r.Uploads {
		fmt.Fprintf(w, "%s idle multipart upload %s\n", verbUploads, u)
	}
	fmt.Fprintf(w, "%s %d paths, %d NARs, %d logs, %d realisations: %s; kept %d paths (%s) from %d roots\n",
		verb, len(r.Paths), len(r.NARs), len(r.Logs), len(r.Realisations), mib(r.Bytes), r.KeptPaths, mib(r.KeptBytes), r.Roots)
	if !r.Deleted && len(r.Paths)+len(r.NARs)+len(r.Uploads) > 0 {
		fmt.Fprintln(w, "dry run: nothing deleted; --delete to act")
	}
}

// readPathsFile reads whitespace-separated store paths from a file.
func readPathsFile(file string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read --keep-from: %w", err)
	}
	defer f.Close()
	var paths []string
	sc := bufio.NewScanner(f)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		paths = append(paths, sc.Text())
	}
	return paths, sc.Err()
}
