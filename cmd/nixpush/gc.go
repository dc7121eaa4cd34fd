package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"nixpush/cachegc"
)

// gcCommand is `nixpush gc --to URL`: it keeps the closures of what the
// user says to keep (recent narinfos, --keep paths, pins) and deletes the
// rest, safely beside running pushers (see package cachegc). Dry run
// unless --delete.
type gcCommand struct {
	to       string
	network  networkFlags
	store    string
	keepDays int
	keep     []string
	keepFrom string
	maxSize  int64
	grace    time.Duration
	delete   bool
	asJSON   bool
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
	fs.IntVar(&c.keepDays, "keep-days", 30, "keep the closures of narinfos written within this many days")
	fs.StringArrayVar(&c.keep, "keep", nil, "keep the closure of this store path (repeatable)")
	fs.StringVar(&c.keepFrom, "keep-from", "", "keep the closures of the store paths listed in this file (e.g. a release's closure)")
	fs.Int64Var(&c.maxSize, "max-size", 0, "keep only the newest kept-by-age closures that fit in this many bytes (0: no limit)")
	fs.DurationVar(&c.grace, "grace", time.Hour, "never delete anything written this recently (pushers at work)")
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
	keep := c.keep
	if c.keepFrom != "" {
		listed, err := readPathsFile(c.keepFrom)
		if err != nil {
			return err
		}
		keep = append(keep, listed...)
	}
	if len(keep) > 0 {
		if keep, err = resolvePaths(c.store, keep); err != nil {
			return err
		}
	}
	cache, err := u.Open(ctx, c.network.options())
	if err != nil {
		return err
	}
	if cl, ok := cache.(io.Closer); ok {
		defer cl.Close()
	}
	res, err := cachegc.Collect(ctx, cache, cachegc.Options{
		KeepDays: c.keepDays, Keep: keep, MaxSize: c.maxSize, Grace: c.grace, Delete: c.delete,
	})
	if err != nil {
		return err
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

func printGC(w io.Writer, r cachegc.Result) {
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
	fmt.Fprintf(w, "%s %d paths, %d NARs, %d logs, %d realisations: %s; kept %d paths (%s) from %d roots\n",
		verb, len(r.Paths), len(r.NARs), len(r.Logs), len(r.Realisations), mib(r.Bytes), r.KeptPaths, mib(r.KeptBytes), r.Roots)
	if !r.Deleted && len(r.Paths)+len(r.NARs) > 0 {
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
