package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

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
	cmd.RunE = withSignals(func(cmd *cobra.Command, paths []string) error {
		if failed == (len(paths) > 0) {
			return usageError("retry takes either --failed or store paths")
		}
		files, err := selectQueues(stateDir, to)
		if err != nil {
			return err
		}
		total := 0
		for _, f := range files {
			n, err := retryIn(cmd.Context(), f, failed, paths)
			if err != nil {
				return err
			}
			total += n
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "requeued %d paths; a running watch-store (or nixpush push --drain) uploads them\n", total)
		return nil
	})
	return cmd
}

// retryIn requeues in one queue: all failed rows, or those of the paths
// that the queue has.
func retryIn(ctx context.Context, file string, failed bool, paths []string) (int, error) {
	q, err := queue.OpenFast(file)
	if err != nil {
		return 0, err
	}
	defer q.Close()
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
	}
	return q.Requeue(ctx, present)
}
