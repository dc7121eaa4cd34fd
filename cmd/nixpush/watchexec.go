package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

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
	log, err := c.flags.log.logger(stderr)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr

	// Everything that can fail is checked before the command starts.
	ctx := cmd.Context()
	var mu sync.Mutex
	var mine []string
	p, err := c.flags.open(ctx, log, openOptions{only: func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(mine)
	}})
	if err != nil {
		return err
	}
	defer p.Close()
	d := p.drainer
	mark, err := p.store.MaxID(ctx)
	if err != nil {
		return err
	}
	w := p.watcher(watcher.RowsOnly(p.queue), mark)
	w.Poll = 2 * time.Second
	w.Enqueued = func(paths []string) {
		mu.Lock()
		mine = append(mine, paths...)
		mu.Unlock()
		d.Wake()
	}

	// After the command exits, a signal stops the wait for uploads (what
	// is left stays queued); a second one exits at once.
	afterChild, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	child, err := startChild(argv, stdio{in: cmd.InOrStdin(), out: cmd.OutOrStdout(), err: stderr}, stopWaiting)
	if err != nil {
		return err
	}
	// While the command runs, new paths are found and pushed at once.
	during, stopDuring := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var pipelineErr error
	wg.Add(2)
	go func() { defer wg.Done(); _ = w.Run(during) }()
	go func() {
		defer wg.Done()
		if err := d.Run(during, false); err != nil {
			pipelineErr = err
			stopDuring()
		}
	}()
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

	// Then: the last registrations, and a bounded wait for the uploads.
	if err := w.Scan(ctx); err != nil {
		return &exitError{code: code, err: fmt.Errorf("find paths built by the command: %w", err)}
	}
	drainCtx, cancel := context.WithTimeout(afterChild, c.drainTimeout)
	defer cancel()
	go cancelOnStall(drainCtx, cancel, &p.uploader.Stats, c.stallTimeout, log)
	if err := d.Run(drainCtx, true); err != nil {
		return &exitError{code: code, err: err}
	}
	unfinished, err := unfinishedItems(p.queue, mine, false)
	if err != nil {
		return &exitError{code: code, err: err}
	}
	fmt.Fprintf(stderr, "nixpush: pushed %d paths, %s, of %d new paths; %d not pushed\n",
		p.uploader.Stats.Paths.Load(), mib(p.uploader.Stats.Bytes.Load()), len(mine), len(unfinished))
	explainUnfinished(stderr, unfinished, p.stateDir, p.url.Identity())
	if len(unfinished) > 0 && c.failOnPushError && code == 0 {
		return &exitError{code: exitCodePushFailed}
	}
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
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
