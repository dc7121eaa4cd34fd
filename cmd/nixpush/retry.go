package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nix-community/go-nix/pkg/storepath"
	"github.com/spf13/cobra"

	"nixpush/nixstore"
	"nixpush/queue"
)

func newRetryCommand() *cobra.Command {
	var stateDir string
	var to []string
	var failed bool
	cmd := &cobra.Command{
		Use:   "retry --failed | PATH...",
		Short: "requeue failed paths (--failed) or the given paths",
	}
	fs := cmd.Flags()
	addStateDirFlag(fs, &stateDir)
	fs.StringArrayVar(&to, "to", nil, "only the queue of this cache (repeatable)")
	fs.BoolVar(&failed, "failed", false, "requeue every failed path")
	setGroup(fs, groupCache, "to")
	cmd.RunE = withSignals(func(cmd *cobra.Command, args []string) error {
		if failed == (len(args) > 0) {
			return usageError("retry takes either --failed or store paths")
		}
		paths, err := storePathArgs(args)
		if err != nil {
			return err
		}
		files, err := selectQueues(stateDir, to)
		if err != nil {
			return err
		}
		total, found := 0, map[string]bool{}
		for _, f := range files {
			n, err := retryIn(cmd.Context(), f, failed, paths, found)
			if err != nil {
				return err
			}
			total += n
		}
		if total > 0 || failed || len(found) > 0 {
			already := ""
			if n := len(found) - total; n > 0 {
				already = fmt.Sprintf(" (%s pending and due already)", plural(n, "path"))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "requeued %s%s; a running watch-store (or nixpush push --drain) uploads them\n", plural(total, "path"), already)
		}
		var missing []string
		for _, p := range paths {
			if !found[p] {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not queued for any cache in %s: %s (nixpush push PATH queues and pushes a path)", stateDir, strings.Join(missing, ", "))
		}
		return nil
	})
	return cmd
}

// storePathArgs takes store paths, or links to them (./result), as
// Nix's own commands do; anything else is a usage error naming it.
func storePathArgs(args []string) ([]string, error) {
	out := make([]string, 0, len(args))
	for _, a := range args {
		p := a
		if !isStorePath(p) {
			if target, err := filepath.EvalSymlinks(a); err == nil && isStorePath(target) {
				p = target
			}
		}
		if !isStorePath(p) {
			return nil, usageError("%s is not a store path (%s/HASH-NAME)", quoteInput(a), nixstore.StoreDir)
		}
		out = append(out, p)
	}
	return out, nil
}

// isStorePath reports whether p has the form of a store path (it need
// not exist).
func isStorePath(p string) bool {
	_, err := storepath.FromAbsolutePath(p)
	return err == nil && strings.HasPrefix(p, nixstore.StoreDir+"/")
}

// retryIn requeues in one queue: all failed rows, or those of the paths
// that the queue has (marked in found). The file is checked first: a
// damaged index would answer "nothing to requeue".
func retryIn(ctx context.Context, file string, failed bool, paths []string, found map[string]bool) (int, error) {
	q, err := queue.OpenFast(file)
	if err != nil {
		return 0, err
	}
	defer q.Close()
	if err := q.Check(ctx); err != nil {
		return 0, err
	}
	if failed {
		return q.RetryFailed(ctx)
	}
	items, err := q.Get(ctx, paths)
	if err != nil {
		return 0, err
	}
	var present []string
	for p := range items {
		present = append(present, p)
		found[p] = true
	}
	return q.Requeue(ctx, present)
}
