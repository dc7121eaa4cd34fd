package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"nixpush/queue"
)

func runRetry(ctx context.Context, args []string) error {
	fs := newFlagSet("retry", "--failed | PATH...")
	var stateDir, to string
	var failed bool
	addStateDirFlag(fs, &stateDir)
	fs.StringVar(&to, "to", "", "only the queue of this cache")
	fs.BoolVar(&failed, "failed", false, "requeue every failed path")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	paths := fs.Args()
	if failed == (len(paths) > 0) {
		return &exitError{code: 2, err: errors.New("retry takes either --failed or store paths")}
	}
	files, err := selectQueues(stateDir, to)
	if err != nil {
		return err
	}
	total := 0
	for _, f := range files {
		n, err := retryIn(ctx, f, failed, paths)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Fprintf(os.Stderr, "requeued %d paths; a running watch-store (or nixpush push --drain) uploads them\n", total)
	return nil
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
