package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/uploader"
)

// pushCommand is `nixpush push`: it enqueues the missing part of the
// paths' closures in the cache's queue and drains exactly those items,
// the same pipeline as the daemon, so a push cut short by a crash is
// finished by the next watch-store (or push --drain).
type pushCommand struct {
	flags    pipelineFlags
	drainAll bool
}

func newPushCommand() *cobra.Command {
	c := &pushCommand{}
	cmd := &cobra.Command{
		Use:   "push [flags] PATH...   (or paths on stdin, e.g. nix-store -qR ./result | nixpush push --to ...)",
		Short: "push store paths and their closures to a cache",
		RunE:  withSignals(c.run),
	}
	c.flags.add(cmd.Flags(), 3, "warn")
	cmd.Flags().BoolVar(&c.drainAll, "drain", false, "push everything waiting in the cache's queue (left by an interrupted push, watch-exec or enqueue)")
	return cmd
}

func (c *pushCommand) run(cmd *cobra.Command, args []string) error {
	ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
	log, err := c.flags.log.logger(stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	if len(args) == 0 && !c.drainAll {
		if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return usageError("push needs store paths as arguments or on stdin")
		}
		if args, err = readPaths(cmd.InOrStdin()); err != nil {
			return err
		}
		if len(args) == 0 {
			return usageError("no store paths on stdin")
		}
	}

	var closure []*nixstore.PathInfo
	ps, err := c.flags.openAll(ctx, log, openOptions{
		beforeWrite: func(store *nixstore.Store) (err error) {
			closure, err = resolveClosure(ctx, store, args)
			return err
		},
	})
	if err != nil {
		return err
	}
	defer ps.Close()
	// Each cache is pushed on its own, at once: one that is down or slow
	// does not hold back the others.
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		// A .drv the user names is pushed with its closure (the
		// derivations and sources it names), as nix copy does: the .drv
		// filter is for paths found by watching, not for what a user
		// asks for.
		if namesDrv(args) {
			p.uploader.Filter.IncludeDrv = true
		}
		w := stderr
		if len(ps) > 1 {
			p.progressOff = true
			w = &linePrefixer{w: stderr, prefix: p.url.Identity() + ": "}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = p.pushClosure(ctx, w, closure, c.drainAll); errs[i] != nil && len(ps) > 1 {
				errs[i] = fmt.Errorf("%s: %w", p.url.Identity(), errs[i])
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pushClosure enqueues what the cache lacks of a closure (what the memo
// trusts: uploader.Uploader.Plan), drains exactly those items (or, with
// drainAll, the whole queue) and reports: the core of push, shared by
// verify --repair.
func (p *pipeline) pushClosure(ctx context.Context, stderr io.Writer, closure []*nixstore.PathInfo, drainAll bool) error {
	var plan uploader.Plan
	var err error
	if len(closure) > 0 {
		if plan, err = p.uploader.Plan(ctx, closure); err != nil {
			return err
		}
	}
	var only []string
	for _, info := range plan.Upload {
		only = append(only, info.Path)
	}
	// Rows that a killed push left uploading go back to pending, so the
	// whole queue (push --drain, status) sees them.
	if _, err := p.queue.RecoverOrphans(ctx); err != nil {
		return err
	}
	if _, err := p.queue.Requeue(ctx, only); err != nil {
		return err
	}
	total := len(only)
	p.drainer.Only = func() []string { return only }
	if drainAll {
		st, err := p.queue.Status(ctx, time.Now())
		if err != nil {
			return err
		}
		total = st.Counts[queue.Pending] + st.Counts[queue.Uploading]
		p.drainer.Only, only = nil, nil
	}
	stats := &p.uploader.Stats
	if total == 0 {
		printSummary(stderr, stats, plan, 0)
		explainFiltered(stderr, plan)
		return nil
	}
	stop := func() {}
	if !p.progressOff {
		stop = startProgress(stderr, stats, total)
	}
	runErr := p.drainer.Run(ctx, true)
	stop()
	if runErr != nil {
		return runErr
	}
	unfinished, err := unfinishedItems(p.queue, only, drainAll)
	if err != nil {
		return err
	}
	printSummary(stderr, stats, plan, len(unfinished))
	explainUnfinished(stderr, unfinished, p.stateDir, p.url.Identity())
	if ctx.Err() != nil {
		return &exitError{code: 130, err: fmt.Errorf("interrupted; paths not pushed stay queued in %s: nixpush watch-store or nixpush push --drain finishes them", p.stateDir)}
	}
	if len(unfinished) > 0 {
		return fmt.Errorf("%d paths not pushed (nixpush status shows why; nixpush retry --failed after fixing the cause)", len(unfinished))
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
func explainUnfinished(w io.Writer, items []queue.Item, stateDir, cache string) {
	failed := false
	for _, it := range items {
		fmt.Fprintf(w, "nixpush: %s %s: %s\n", it.State, it.Path, oneLine(it.LastError))
		failed = failed || it.State == queue.Failed
	}
	if len(items) > 0 {
		fmt.Fprintf(w, "nixpush: they stay queued in %s: nixpush watch-store or nixpush push --drain --to %s pushes pending ones", stateDir, cache)
		if failed {
			fmt.Fprint(w, "; failed ones need nixpush retry --failed first")
		}
		fmt.Fprintln(w)
	}
}

// namesDrv reports whether the user named a .drv file.
func namesDrv(args []string) bool {
	for _, a := range args {
		if strings.HasSuffix(a, ".drv") {
			return true
		}
	}
	return false
}

// explainFiltered says, when filters left nothing of what the user named
// to push, which flag would push it.
func explainFiltered(w io.Writer, plan uploader.Plan) {
	if len(plan.Upload) > 0 || plan.Present > 0 || plan.Filtered+plan.Upstream == 0 {
		return
	}
	fmt.Fprintf(w, "nixpush: nothing pushed: every path was filtered out (.drv files: --include-drv; --exclude patterns; %d signed by an upstream key: --no-upstream-filter)\n", plan.Upstream)
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
func resolveClosure(ctx context.Context, store *nixstore.Store, args []string) ([]*nixstore.PathInfo, error) {
	if len(args) == 0 {
		return nil, nil
	}
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

func printSummary(w io.Writer, s *uploader.Stats, plan uploader.Plan, failed int) {
	var b strings.Builder
	fmt.Fprintf(&b, "pushed %d paths, %s (%s uncompressed), skipped %d already present, %d upstream, %d filtered",
		s.Paths.Load(), mib(s.Bytes.Load()), mib(s.NARBytes.Load()), plan.Present, plan.Upstream, plan.Filtered)
	if failed > 0 {
		fmt.Fprintf(&b, ", %d failed", failed)
	}
	fmt.Fprintln(w, b.String())
}
