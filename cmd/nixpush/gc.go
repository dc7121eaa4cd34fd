package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"nixpush/cache"
	"nixpush/cache/gc"
	"nixpush/cache/location"
	"nixpush/pipeline"
)

// gcCommand is `nixpush gc --to URL`: it keeps the closures of what the
// user says to keep (recent narinfos, --keep paths, pins) and deletes the
// rest, safely beside running pushers (see package cachegc). Dry run
// unless --delete.
type gcCommand struct {
	to       []string
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
	setGroup(fs, groupGC, "keep-days", "keep", "keep-from", "max-size", "grace")
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
		Example: `  nixpush gc --to s3://fleet-cache --keep-days 30                 # what would go, and how many bytes
  nixpush gc --to s3://fleet-cache --keep-days 30 --delete        # delete it
  nixpush gc --to file:///srv/cache --keep ./result --max-size 50000000000`,
		Args: noArgs,
		RunE: withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&c.to, "to", nil, "cache URL (repeat it to collect in several caches)")
	fs.StringVar(&c.store, "store", "/", "root of the local Nix store (to resolve --keep ./result)")
	setGroup(fs, groupCache, "to", "store")
	addStateDirFlag(fs, &c.stateDir) // its memo of the cache forgets what gc deletes
	c.gc.add(fs)
	fs.BoolVar(&c.delete, "delete", false, "delete; without it, only print what would go")
	fs.BoolVar(&c.asJSON, "json", false, "print the result as JSON on stdout")
	setGroup(fs, groupGC, "delete")
	setGroup(fs, groupOutput, "json")
	c.network.add(fs)
	return cmd
}

func (c *gcCommand) run(cmd *cobra.Command, _ []string) error {
	urls, err := cacheURLFlags(c.to)
	if err != nil {
		return err
	}
	opts, err := c.gc.options(c.store, c.delete)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range urls {
		if err := c.collect(cmd, u, opts, len(urls) > 1); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// collect runs gc in one cache; with several, its lines name it.
func (c *gcCommand) collect(cmd *cobra.Command, u *location.URL, opts gc.Options, label bool) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	if label && !c.asJSON {
		out = &linePrefixer{w: out, prefix: u.Identity() + ": "}
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
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		printGC(out, res)
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
	fmt.Fprintf(w, "%s %s, %s, %s, %s: %s; kept %s (%s) from %s\n",
		verb, plural(len(r.Paths), "path"), plural(len(r.NARs), "NAR"), plural(len(r.Logs), "log"), plural(len(r.Realisations), "realisation"),
		mib(r.Bytes), plural(r.KeptPaths, "path"), mib(r.KeptBytes), plural(r.Roots, "root"))
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
