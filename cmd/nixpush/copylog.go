package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"nixpush/cache"
	"nixpush/cache/location"
	"nixpush/nixstore"
	"nixpush/pipeline"
	"nixpush/retry"
	"nixpush/uploader"
)

// copyLogCommand is `nixpush copy-log --to URL PATH...`: Nix's `nix store
// copy-log`, for the build logs of paths already in a cache (a push skips
// those, with their logs).
type copyLogCommand struct {
	to      []string
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
	fs.StringArrayVar(&c.to, "to", nil, "cache URL (repeatable)")
	fs.StringVar(&c.store, "store", "/", "root of the local Nix store, as Nix's --store ROOT")
	fs.BoolVar(&c.force, "force", false, "upload every log, also those the cache has")
	c.network.add(fs)
	return cmd
}

func (c *copyLogCommand) run(cmd *cobra.Command, args []string) error {
	urls, err := cacheURLFlags(c.to)
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
	drvs, err := derivationsOf(cmd, store, args)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range urls {
		errs = append(errs, c.copyTo(cmd, u, store, drvs))
	}
	return errors.Join(errs...)
}

// derivationsOf maps paths to the derivations whose logs they need: a
// .drv names itself; an output, the derivation that built it.
func derivationsOf(cmd *cobra.Command, store *nixstore.Store, args []string) ([]string, error) {
	paths, err := pipeline.ResolvePaths(store, args)
	if err != nil {
		return nil, err
	}
	var drvs []string
	for _, p := range paths {
		drv := p
		if !strings.HasSuffix(p, ".drv") {
			info, err := store.QueryPathInfo(cmd.Context(), p)
			if err != nil {
				return nil, err
			}
			if drv = info.Deriver; drv == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "nixpush: %s has no deriver (added, not built): no log\n", p)
				continue
			}
		}
		drvs = append(drvs, drv)
	}
	slices.Sort(drvs)
	return slices.Compact(drvs), nil
}

// copyTo copies the logs of drvs to one cache and says what it did.
func (c *copyLogCommand) copyTo(cmd *cobra.Command, u *location.URL, store *nixstore.Store, drvs []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	cc, err := c.network.openCache(ctx, u)
	if err != nil {
		return err
	}
	defer cache.Close(cc)
	res, err := uploader.CopyLogs(ctx, cache.WithRetry(cc, retry.Reads), store, drvs, c.force)
	for _, drv := range res.NoLog {
		fmt.Fprintf(stderr, "nixpush: no build log of %s in this store\n", drv)
	}
	prefix := ""
	if len(c.to) > 1 {
		prefix = u.Identity() + ": "
	}
	fmt.Fprintf(stderr, "%scopied %d build logs, %d already in the cache, %d not in this store\n", prefix, res.Copied, res.Present, len(res.NoLog))
	return err
}
