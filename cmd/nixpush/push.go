package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/uploader"
)

const pushUsage = `[flags] PATH...   (or paths on stdin, e.g. nix-store -qR ./result | nixpush push --to ...)`

// runPush enqueues the missing part of the paths' closures in the cache's
// queue and drains exactly those items: the same pipeline as the daemon,
// so a push cut short by a crash is finished by the next watch-store (or
// push --drain).
func runPush(ctx context.Context, args []string) error {
	fs := newFlagSet("push", pushUsage)
	var tf targetFlags
	var lf logFlags
	var df drainFlags
	var drainAll bool
	tf.add(fs)
	df.add(fs, 3)
	fs.BoolVar(&drainAll, "drain", false, "push everything waiting in the cache's queue (left by an interrupted push, watch-exec or enqueue)")
	lf.add(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	args = fs.Args()
	if len(args) == 0 && !drainAll {
		if term.IsTerminal(int(os.Stdin.Fd())) {
			return &exitError{code: 2, err: errors.New("push needs store paths as arguments or on stdin")}
		}
		if args, err = readPaths(os.Stdin); err != nil {
			return err
		}
		if len(args) == 0 {
			return &exitError{code: 2, err: errors.New("no store paths on stdin")}
		}
	}

	// Paths are checked before tf.open creates the cache, so a bad one
	// fails with nothing written.
	closure, err := resolveClosure(ctx, tf.store, args)
	if err != nil {
		return err
	}
	t, err := tf.open(ctx, log)
	if err != nil {
		return err
	}
	defer t.store.Close()
	var plan uploader.Plan
	if len(closure) > 0 {
		if plan, err = t.uploader.Plan(ctx, closure, t.filter); err != nil {
			return err
		}
	}

	q, err := openQueue(ctx, df.stateDir, t.identity, false)
	if err != nil {
		return err
	}
	defer q.Close()
	var only []string
	for _, info := range plan.Upload {
		only = append(only, info.Path)
	}
	if _, err := q.Requeue(ctx, only); err != nil {
		return err
	}
	if drainAll {
		only = nil
	}
	total := len(plan.Upload)
	if drainAll {
		st, err := q.Status(ctx, time.Now())
		if err != nil {
			return err
		}
		total = st.Counts[queue.Pending] + st.Counts[queue.Uploading]
	}
	if total == 0 {
		printSummary(&t.uploader.Stats, plan, 0)
		return nil
	}
	var onlyFn func() []string
	if !drainAll {
		onlyFn = func() []string { return only }
	}
	d := df.drainer(t, q, onlyFn, log)
	stop := startProgress(&t.uploader.Stats, total)
	runErr := d.Run(ctx, true)
	stop()
	if runErr != nil {
		return runErr
	}
	unfinished, err := unfinishedItems(q, only, drainAll)
	if err != nil {
		return err
	}
	printSummary(&t.uploader.Stats, plan, len(unfinished))
	explainUnfinished(unfinished, df.stateDir, t.identity)
	if ctx.Err() != nil {
		return &exitError{code: 130, err: fmt.Errorf("interrupted; paths not pushed stay queued in %s: nixpush watch-store or nixpush push --drain finishes them", df.stateDir)}
	}
	if len(unfinished) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d paths not pushed (nixpush status shows why; nixpush retry --failed after fixing the cause)", len(unfinished))}
	}
	return nil
}

// unfinishedItems lists the items of the given paths that did not end up
// done or skipped; with no paths, the problems of the whole queue (a
// push --drain).
func unfinishedItems(q *queue.Queue, only []string, wholeQueue bool) ([]queue.Item, error) {
	ctx := context.Background()
	if wholeQueue {
		st, err := q.Status(ctx, time.Now())
		if err != nil {
			return nil, err
		}
		return append(st.RecentFailures, st.PendingErrors...), nil
	}
	if len(only) == 0 {
		return nil, nil
	}
	items, err := q.Get(ctx, only)
	if err != nil {
		return nil, err
	}
	var out []queue.Item
	for _, p := range only {
		if it, ok := items[p]; ok && it.State != queue.Done && it.State != queue.Skipped {
			out = append(out, it)
		}
	}
	return out, nil
}

// explainUnfinished prints what was not pushed and how to finish it.
func explainUnfinished(items []queue.Item, stateDir, cache string) {
	failed := false
	for _, it := range items {
		fmt.Fprintf(os.Stderr, "nixpush: %s %s: %s\n", it.State, it.Path, oneLine(it.LastError))
		failed = failed || it.State == queue.Failed
	}
	if len(items) > 0 {
		fmt.Fprintf(os.Stderr, "nixpush: they stay queued in %s: nixpush watch-store or nixpush push --drain --to %s pushes pending ones", stateDir, cache)
		if failed {
			fmt.Fprint(os.Stderr, "; failed ones need nixpush retry --failed first")
		}
		fmt.Fprintln(os.Stderr)
	}
}

// readPaths reads whitespace-separated paths, as nix-store -qR prints them.
func readPaths(r io.Reader) ([]string, error) {
	var paths []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		paths = append(paths, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read paths from stdin: %w", err)
	}
	return paths, nil
}

// resolveClosure maps arguments to store paths and reads their closure:
// a non-store path or a path the DB does not know is an error.
func resolveClosure(ctx context.Context, storeRoot string, args []string) ([]*nixstore.PathInfo, error) {
	if len(args) == 0 {
		return nil, nil
	}
	store, err := nixstore.Open(storeRoot)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	roots := make([]string, 0, len(args))
	for _, a := range args {
		p, err := store.Resolve(a)
		if err != nil {
			return nil, err
		}
		roots = append(roots, p)
	}
	return store.Closure(ctx, roots)
}

func printSummary(s *uploader.Stats, plan uploader.Plan, failed int) {
	var b strings.Builder
	fmt.Fprintf(&b, "pushed %d paths, %s (%s uncompressed), skipped %d already present, %d upstream, %d filtered",
		s.Paths.Load(), mib(s.Bytes.Load()), mib(s.NARBytes.Load()), plan.Present, plan.Upstream, plan.Filtered)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	fmt.Fprintln(os.Stderr, b.String())
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
