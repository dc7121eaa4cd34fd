package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"nixpush/cache"
	"nixpush/nixstore"
	"nixpush/pipeline"
	"nixpush/retry"
	"nixpush/uploader"
)

// copyLogCommand is `nixpush copy-log --to URL PATH...`: Nix's `nix store
// copy-log`, for the build logs of paths already in a cache (a push skips
// those, with their logs).
type copyLogCommand struct {
	to      string
	store   string
	force   bool
	network networkFlags
}

func newCopyLogCommand() *cobra.Command {
	c := &copyLogCommand{}
	cmd := &cobra.Command{
		Use:   "copy-log --to URL PATH...   (or paths on stdin, e.g. nix-store -qR ./result | nixpush copy-log --to ...)",
		Short: "upload the build logs of paths (their derivations') to a cache, as nix store copy-log",
		RunE:  withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringVar(&c.to, "to", "", "cache URL")
	fs.StringVar(&c.store, "store", "/", "root of the local Nix store, as Nix's --store ROOT")
	fs.BoolVar(&c.force, "force", false, "upload every log, also those the cache has")
	c.network.add(fs)
	return cmd
}

func (c *copyLogCommand) run(cmd *cobra.Command, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	u, err := cacheURLFlag(c.to)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return usageError("copy-log needs store paths as arguments or on stdin")
		}
		if args, err = readPaths(cmd.InOrStdin()); err != nil {
			return err
		}
		if len(args) == 0 {
			return usageError("no store paths on stdin")
		}
	}
	store, err := nixstore.Open(c.store)
	if err != nil {
		return err
	}
	defer store.Close()
	paths, err := pipeline.ResolvePaths(store, args)
	if err != nil {
		return err
	}
	// A .drv names itself; an output, the derivation that built it.
	var drvs []string
	for _, p := range paths {
		drv := p
		if !strings.HasSuffix(p, ".drv") {
			info, err := store.QueryPathInfo(ctx, p)
			if err != nil {
				return err
			}
			if drv = info.Deriver; drv == "" {
				fmt.Fprintf(stderr, "nixpush: %s has no deriver (added, not built): no log\n", p)
				continue
			}
		}
		drvs = append(drvs, drv)
	}
	slices.Sort(drvs)
	drvs = slices.Compact(drvs)
	cc, err := c.network.openCache(ctx, u)
	if err != nil {
		return err
	}
	defer cache.Close(cc)
	res, err := uploader.CopyLogs(ctx, cache.WithRetry(cc, retry.Reads), store, drvs, c.force)
	for _, drv := range res.NoLog {
		fmt.Fprintf(stderr, "nixpush: no build log of %s in this store\n", drv)
	}
	fmt.Fprintf(stderr, "copied %d build logs, %d already in the cache, %d not in this store\n", res.Copied, res.Present, len(res.NoLog))
	return err
}
