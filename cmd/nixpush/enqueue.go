package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nix-community/go-nix/pkg/storepath"

	"nixpush/nixstore"
)

// runEnqueue records store paths in a cache's queue and returns: Nix's
// post-build-hook runs it after every build, so it must be quick and must
// never claim success without having recorded the paths. A watch-store
// daemon (or push --drain) uploads them.
func runEnqueue(ctx context.Context, args []string) error {
	fs := newFlagSet("enqueue", "--to CACHE-URL [PATH...]   (and/or $OUT_PATHS, as a post-build-hook)")
	var stateDir, to, storeRoot string
	fs.StringVar(&to, "to", "", "cache URL the paths are for (selects the queue)")
	fs.StringVar(&storeRoot, "store", "/", "root of the local Nix store (to find $DRV_PATH's outputs)")
	addStateDirFlag(fs, &stateDir)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if to == "" {
		return &exitError{code: 2, err: errors.New("--to is required: it selects the cache's queue")}
	}
	u, err := parseCacheURL(to)
	if err != nil {
		return err
	}
	paths := append(strings.Fields(os.Getenv("OUT_PATHS")), fs.Args()...)
	if drv := os.Getenv("DRV_PATH"); len(paths) == 0 && drv != "" {
		outs, err := derivationOutputs(ctx, storeRoot, drv)
		if err != nil {
			return err
		}
		paths = outs
	}
	if len(paths) == 0 {
		return &exitError{code: 2, err: errors.New("no paths: give them as arguments or in $OUT_PATHS")}
	}
	// Checked by form only: opening the Nix DB here would slow every build.
	for _, p := range paths {
		if _, err := storepath.FromAbsolutePath(p); err != nil || !strings.HasPrefix(p, nixstore.StoreDir+"/") {
			return fmt.Errorf("%s is not a store path", p)
		}
	}
	q, err := openQueue(ctx, stateDir, cacheIdentity(u), false)
	if err != nil {
		return err
	}
	defer q.Close()
	if _, err := q.Enqueue(ctx, paths); err != nil {
		return err
	}
	return nil
}

// derivationOutputs looks up a derivation's outputs in the Nix DB, for
// Nix versions that leave $OUT_PATHS empty.
func derivationOutputs(ctx context.Context, root, drv string) ([]string, error) {
	store, err := nixstore.Open(root)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	return store.DerivationOutputs(ctx, drv)
}
