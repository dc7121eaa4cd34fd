package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"nixpush/nixstore"
	"nixpush/uploader"
	"nixpush/watcher"
)

// exitCodePushFailed is watch-exec's exit code, with --fail-on-push-error,
// when the command succeeded but some of what it built was not pushed.
const exitCodePushFailed = 86

// watchExecCommand runs a command and pushes every path that becomes
// valid while it runs: the watcher starts at the DB's current mark,
// uploads overlap the build, and after the command exits nixpush waits
// (bounded) for the rest before exiting with the command's code.
type watchExecCommand struct {
	stderr                     io.Writer
	flags                      pipelineFlags
	drainTimeout, stallTimeout time.Duration
	failOnPushError            bool
}

func newWatchExecCommand() *cobra.Command {
	c := &watchExecCommand{}
	cmd := &cobra.Command{
		Use:   "watch-exec --to CACHE-URL [flags] -- COMMAND [ARGS...]",
		Short: "run a command, push what it builds, wait, exit with its code",
		// Signals are the child's while it runs: no withSignals here.
		RunE: c.run,
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything from COMMAND on is the command's
	c.flags.add(fs, 3, "warn")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", time.Hour, "after the command exits, how long to wait for its paths to be pushed")
	fs.DurationVar(&c.stallTimeout, "no-progress-timeout", 5*time.Minute, "stop waiting when no path was pushed for this long")
	fs.BoolVar(&c.failOnPushError, "fail-on-push-error", false, fmt.Sprintf("exit %d when the command succeeded but a path was not pushed", exitCodePushFailed))
	return cmd
}

func (c *watchExecCommand) run(cmd *cobra.Command, argv []string) error {
	if len(argv) == 0 {
		_ = cmd.Usage()
		return usageError("watch-exec needs a command to run (after --)")
	}
	stderr := cmd.ErrOrStderr()
	c.stderr = stderr
	log, err := c.flags.log.logger(stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr

	// Everything that can fail is checked before the command starts.
	ctx := cmd.Context()
	for _, to := range c.flags.to {
		if _, err := c.flags.settings(to); err != nil {
			return err
		}
	}
	if len(c.flags.to) == 0 {
		return usageError("--to is required (e.g. --to file:///srv/cache)")
	}
	run := &watchExecRun{cmd: c, log: log}
	open := func() error {
		var err error
		run.ps, err = c.flags.openAll(ctx, log, openOptions{only: run.paths})
		return err
	}
	// A command that creates its store (nix-build --store NEW) starts
	// before the store exists: then everything it registers is its own.
	createsStore := !nixstore.DBExists(c.flags.store)
	var mark int64
	if !createsStore {
		if err := open(); err != nil {
			return err
		}
		defer run.ps.Close()
		if mark, err = run.ps[0].store.MaxID(ctx); err != nil {
			return err
		}
	}

	// After the command exits, a signal stops the wait for uploads (what
	// is left stays queued); a second one exits at once.
	afterChild, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	child, err := startChild(argv, stdio{in: cmd.InOrStdin(), out: cmd.OutOrStdout(), err: stderr}, stopWaiting)
	if err != nil {
		return err
	}
	if createsStore {
		untilExit, stop := context.WithCancel(ctx)
		go func() { <-child.done; stop() }()
		store, err := nixstore.WaitOpen(untilExit, c.flags.store, 100*time.Millisecond)
		stop()
		if err != nil && !nixstore.DBExists(c.flags.store) {
			// The command ended without creating the store: nothing to push.
			return child.exitAs()
		}
		if store != nil {
			store.Close()
		}
		if err := open(); err != nil {
			child.kill()
			return err
		}
		defer run.ps.Close()
	}
	return run.watch(ctx, afterChild, child, mark)
}

// watchExecRun is one watch-exec: the pipelines of its caches and the
// paths its command registered.
type watchExecRun struct {
	cmd  *watchExecCommand
	log  *zap.Logger
	ps   pipelines
	mu   sync.Mutex
	mine []string
}

// paths is the drainers' claim filter: the command's paths only.
func (r *watchExecRun) paths() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.mine)
}

// add is a watcher sink feeding every cache's queue (rows only: a daemon
// sharing a queue owns its saved mark).
func (r *watchExecRun) Add(ctx context.Context, paths []string, mark int64) error {
	for _, p := range r.ps {
		if err := watcher.RowsOnly(p.queue).Add(ctx, paths, mark); err != nil {
			return err
		}
	}
	return nil
}

// watch pushes while the command runs, then waits (bounded) for the rest.
func (r *watchExecRun) watch(ctx, afterChild context.Context, child *child, mark int64) error {
	c := r.cmd
	w := r.ps[0].watcher(r, mark)
	w.Poll = 2 * time.Second
	w.Enqueued = func(paths []string) {
		r.mu.Lock()
		r.mine = append(r.mine, paths...)
		r.mu.Unlock()
		for _, p := range r.ps {
			p.drainer.Wake()
		}
	}
	// While the command runs, new paths are found and pushed at once.
	during, stopDuring := context.WithCancel(ctx)
	defer stopDuring()
	var wg sync.WaitGroup
	var pipelineErr error
	var errOnce sync.Once
	wg.Add(1 + len(r.ps))
	go func() { defer wg.Done(); _ = w.Run(during) }()
	for _, p := range r.ps {
		go func() {
			defer wg.Done()
			if err := p.drainer.Run(during, false); err != nil {
				errOnce.Do(func() { pipelineErr = err })
				stopDuring()
			}
		}()
	}
	select {
	case <-child.done:
	case <-during.Done():
		child.kill()
		wg.Wait()
		return fmt.Errorf("push pipeline failed, command stopped: %w", pipelineErr)
	}
	stopDuring()
	wg.Wait()
	code := child.exitCode()

	// Then: the last registrations, and a bounded wait for the uploads of
	// every cache at once.
	if err := w.Scan(ctx); err != nil {
		return &exitError{code: code, err: fmt.Errorf("find paths built by the command: %w", err)}
	}
	errs := make([]error, len(r.ps))
	notPushed := make([]int, len(r.ps))
	for i, p := range r.ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notPushed[i], errs[i] = r.drain(afterChild, p)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return &exitError{code: code, err: err}
	}
	if slices.Max(notPushed) > 0 && c.failOnPushError && code == 0 {
		return &exitError{code: exitCodePushFailed}
	}
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// drain waits for one cache's uploads of the command's paths, bounded by
// --drain-timeout and --no-progress-timeout, and reports.
func (r *watchExecRun) drain(afterChild context.Context, p *pipeline) (notPushed int, err error) {
	c := r.cmd
	w := io.Writer(c.stderr)
	if len(r.ps) > 1 {
		w = &linePrefixer{w: c.stderr, prefix: p.url.Identity() + ": "}
	}
	drainCtx, cancel := context.WithTimeout(afterChild, c.drainTimeout)
	defer cancel()
	go cancelOnStall(drainCtx, cancel, &p.uploader.Stats, c.stallTimeout, p.log)
	if err := p.drainer.Run(drainCtx, true); err != nil {
		return 0, err
	}
	mine := r.paths()
	unfinished, err := unfinishedItems(p.queue, mine, false)
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "nixpush: pushed %d paths, %s, of %d new paths; %d not pushed\n",
		p.uploader.Stats.Paths.Load(), mib(p.uploader.Stats.Bytes.Load()), len(mine), len(unfinished))
	explainUnfinished(w, unfinished, p.stateDir, p.url.Identity())
	return len(unfinished), nil
}

// cancelOnStall cancels the drain when no path has been pushed for stall.
func cancelOnStall(ctx context.Context, cancel context.CancelFunc, s *uploader.Stats, stall time.Duration, log *zap.Logger) {
	last := s.Paths.Load()
	t := time.NewTicker(stall)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := s.Paths.Load()
		if now == last {
			log.Warn("no path pushed for a while, giving up waiting", zap.Duration("no_progress_timeout", stall))
			cancel()
			return
		}
		last = now
	}
}
