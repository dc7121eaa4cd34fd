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
	"nixpush/pipeline"
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
	asJSON   bool
}

func newPushCommand() *cobra.Command {
	c := &pushCommand{}
	cmd := &cobra.Command{
		Use:   "push [flags] PATH...   (or paths on stdin, e.g. nix-store -qR ./result | nixpush push --to ...)",
		Short: "push store paths and their closures to a cache",
		Example: `  nixpush push --to file:///srv/cache --signing-key mycache-1.sec ./result
  nix-store -qR ./result | nixpush push --to 'file:///srv/cache?compression=zstd&secret-key=mycache-1.sec'
  nixpush push --to s3://fleet-cache?region=eu-west-1 --to file:///srv/cache --signing-key key.sec ./result
  nixpush push --drain --to file:///srv/cache    # finish what an interrupted push left queued`,
		RunE: withSignals(c.run),
	}
	c.flags.add(cmd.Flags(), 3, "warn")
	cmd.Flags().BoolVar(&c.drainAll, "drain", false, "push everything waiting in the cache's queue (left by an interrupted push, watch-exec or enqueue)")
	cmd.Flags().BoolVar(&c.asJSON, "json", false, "print a summary per cache as JSON on stdout: paths, bytes, and requests sent by kind")
	setGroup(cmd.Flags(), groupQueue, "drain")
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

	cfg, err := c.flags.config(log)
	if err != nil {
		return err
	}
	// A .drv the user names is pushed with its closure (the derivations
	// and sources it names), as nix copy does: the .drv filter is for
	// paths found by watching, not for what a user asks for.
	cfg.Filter.IncludeDrv = cfg.Filter.IncludeDrv || namesDrv(args)
	cfg.Roots = args
	in := interruptOf(ctx)
	cfg.Abort = in.abort
	p, err := pipeline.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	in.waitingFor(func() string { return inFlight(p, cfg.ShutdownTimeout) })
	results, err := pushLanes(ctx, stderr, p, p.Closure, c.drainAll)
	if c.asJSON {
		if jerr := printPushJSON(cmd.OutOrStdout(), p, results); jerr != nil && err == nil {
			err = jerr
		}
	}
	return err
}

// pushLanes pushes a closure to every cache at once, so one that is down
// or slow does not hold back the others, and reports each: the core of
// push, shared by verify --repair.
func pushLanes(ctx context.Context, stderr io.Writer, p *pipeline.Pipeline, closure []*nixstore.PathInfo, drainAll bool) ([]pipeline.PushResult, error) {
	errs := make([]error, len(p.Lanes))
	results := make([]pipeline.PushResult, len(p.Lanes))
	var wg sync.WaitGroup
	for i, l := range p.Lanes {
		w := stderr
		if label := p.Label(l); label != "" {
			w = &linePrefixer{w: stderr, prefix: label + ": "}
		}
		o := pipeline.PushOptions{DrainAll: drainAll}
		if len(p.Lanes) == 1 { // several bars would mix on one terminal
			o.Started = func(total int, narBytes int64) func() { return startProgress(stderr, l.Uploader, total, narBytes) }
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = report(ctx, w, l, closure, o)
			if label := p.Label(l); errs[i] != nil && label != "" {
				errs[i] = fmt.Errorf("%s: %w", label, errs[i])
			}
		}()
	}
	wg.Wait()
	return results, errors.Join(errs...)
}

// inFlight says what a stopping push waits for: "up to 30s for 2 uploads
// in flight (foo 34%, bar 2%)", or "" when nothing is in flight.
func inFlight(p *pipeline.Pipeline, timeout time.Duration) string {
	var names []string
	for _, l := range p.Lanes {
		for _, t := range l.Uploader.InFlight() {
			names = append(names, flightLabel(t))
		}
	}
	n := len(names)
	if n == 0 {
		return "for the queue to record what is done"
	}
	more := ""
	if n > 3 {
		names, more = names[:3], fmt.Sprintf(" and %d more", n-3)
	}
	return fmt.Sprintf("up to %s for %s in flight to finish (%s%s); what does not finish stays queued",
		timeout, plural(n, "upload"), strings.Join(names, ", "), more)
}

// report pushes to one lane and says what happened, once: the summary
// names what was not pushed and how to finish it; the error only says
// that the push failed or was interrupted.
func report(ctx context.Context, w io.Writer, l *pipeline.Lane, closure []*nixstore.PathInfo, o pipeline.PushOptions) (pipeline.PushResult, error) {
	res, err := l.Push(ctx, closure, o)
	if err != nil {
		return res, err
	}
	printSummary(w, res.Stats, res.Plan, res.Unfinished)
	if res.Total == 0 {
		explainFiltered(w, res.Plan)
		return res, nil
	}
	explainUnfinished(w, res.Unfinished, l.StateDir, l.URL.Identity())
	if ctx.Err() != nil {
		return res, &exitError{code: 130, err: errors.New("interrupted")}
	}
	if len(res.Unfinished) > 0 {
		return res, fmt.Errorf("%s not pushed", plural(len(res.Unfinished), "path"))
	}
	return res, nil
}

// explainUnfinished prints what was not pushed and how to finish it.
func explainUnfinished(w io.Writer, items []queue.Item, stateDir, cache string) {
	failed, pending := 0, 0
	for i, it := range items {
		if it.State == queue.Failed {
			failed++
		} else {
			pending++
		}
		// The first few say why; an interrupted push of 100,000 paths
		// would otherwise print a line for each.
		if i < unfinishedShown {
			why := oneLine(it.LastError)
			if why == "" {
				why = "not pushed yet (interrupted before its upload finished)"
			}
			fmt.Fprintf(w, "nixpush: %s %s: %s\n", it.State, it.Path, why)
		}
	}
	if len(items) > unfinishedShown {
		fmt.Fprintf(w, "nixpush: ... and %d more (nixpush status --to %s lists them)\n", len(items)-unfinishedShown, cache)
	}
	if len(items) > 0 {
		fmt.Fprintf(w, "nixpush: they stay queued in %s (%d pending, %d failed): nixpush watch-store or nixpush push --drain --to %s pushes pending ones",
			stateDir, pending, failed, cache)
		if failed > 0 {
			fmt.Fprint(w, "; failed ones need nixpush retry --failed after fixing the cause (nixpush status shows it)")
		}
		fmt.Fprintln(w)
	}
}

// unfinishedShown is how many unfinished paths a summary names.
const unfinishedShown = 10

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

// printSummary counts unfinished paths by their state in the queue, as
// status does: an interrupted path is pending, not failed.
func printSummary(w io.Writer, s *uploader.Stats, plan uploader.Plan, unfinished []queue.Item) {
	var b strings.Builder
	fmt.Fprintf(&b, "pushed %s, %s (%s uncompressed), skipped %d already present, %d upstream, %d filtered",
		plural(int(s.Paths.Load()), "path"), mib(s.Bytes.Load()), mib(s.NARBytes.Load()), plan.Present, plan.Upstream, plan.Filtered)
	counts := map[queue.State]int{}
	for _, it := range unfinished {
		counts[it.State]++
	}
	for _, st := range []queue.State{queue.Pending, queue.Uploading, queue.Failed} {
		if counts[st] > 0 {
			fmt.Fprintf(&b, ", %d %s", counts[st], st)
		}
	}
	fmt.Fprintln(w, b.String())
}
