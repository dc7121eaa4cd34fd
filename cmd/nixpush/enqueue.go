package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"nixpush/cache/location"
	"nixpush/nixstore"
	"nixpush/pipeline"
)

// enqueueCommand records store paths in a cache's queue and returns:
// Nix's post-build-hook runs it after every build, so it must be quick
// and must never claim success without having recorded the paths. A
// watch-store daemon (or push --drain) uploads them.
type enqueueCommand struct {
	stateDir, storeRoot string
	to                  []string
}

func newEnqueueCommand() *cobra.Command {
	c := &enqueueCommand{}
	cmd := &cobra.Command{
		Use:   "enqueue --to CACHE-URL [PATH...]   (and/or $OUT_PATHS, as a post-build-hook)",
		Short: "record paths ($OUT_PATHS) in the queue and return at once (post-build-hook)",
		RunE:  withSignals(c.run),
	}
	fs := cmd.Flags()
	fs.StringArrayVar(&c.to, "to", nil, "cache URL the paths are for (selects the queue; repeatable)")
	fs.StringVar(&c.storeRoot, "store", "/", "root of the local Nix store (to find $DRV_PATH's outputs)")
	setGroup(fs, groupCache, "to", "store")
	addStateDirFlag(fs, &c.stateDir)
	return cmd
}

func (c *enqueueCommand) run(cmd *cobra.Command, args []string) error {
	err := c.enqueue(cmd.Context(), args)
	// Run by Nix as its post-build-hook ($DRV_PATH set), a failure would
	// fail the user's build, which is worse than a path not queued: say
	// why on stderr (Nix shows it in the build's output) and exit 0. A
	// watch-store daemon finds every new path anyway.
	if drv := os.Getenv("DRV_PATH"); err != nil && drv != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "nixpush enqueue: post-build-hook for %s: nothing queued: %v (the build goes on; nixpush watch-store or nixpush push pushes its outputs)\n",
			quoteInput(drv), err)
		return nil
	}
	return err
}

func (c *enqueueCommand) enqueue(ctx context.Context, args []string) error {
	if len(c.to) == 0 {
		return usageError("--to is required: it selects the cache's queue")
	}
	var urls []*location.URL
	for _, to := range c.to {
		u, err := cacheURLFlag(to)
		if err != nil {
			return err
		}
		urls = append(urls, u)
	}
	paths := append(strings.Fields(os.Getenv("OUT_PATHS")), args...)
	if drv := os.Getenv("DRV_PATH"); len(paths) == 0 && drv != "" {
		outs, err := derivationOutputs(ctx, c.storeRoot, drv)
		if err != nil {
			return err
		}
		if len(outs) == 0 {
			return fmt.Errorf("the Nix DB records no outputs of %s", quoteInput(drv))
		}
		paths = outs
	}
	if len(paths) == 0 {
		return usageError("no paths: give them as arguments or in $OUT_PATHS")
	}
	// Checked by form only: opening the Nix DB here would slow every build.
	for _, p := range paths {
		if !isStorePath(p) {
			return fmt.Errorf("%s is not a store path", quoteInput(p))
		}
	}
	for _, u := range urls {
		if err := enqueueIn(ctx, c.stateDir, u.Identity(), paths); err != nil {
			return err
		}
	}
	return nil
}

func enqueueIn(ctx context.Context, stateDir, identity string, paths []string) error {
	q, err := pipeline.OpenQueue(ctx, stateDir, identity, false)
	if err != nil {
		return err
	}
	defer q.Close()
	_, err = q.Enqueue(ctx, paths)
	return err
}

// derivationOutputs looks up a derivation's outputs in the Nix DB, for
// Nix versions that leave $OUT_PATHS empty (2.8.0 does for every local
// build): a floating content-addressed derivation's by its realisations.
func derivationOutputs(ctx context.Context, root, drv string) ([]string, error) {
	store, err := nixstore.Open(root)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return store.DerivationOutputs(ctx, drv)
}
