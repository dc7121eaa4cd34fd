package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"nixpush/uploader"
	"nixpush/watcher"
)

// exitCodePushFailed is watch-exec's exit code, with --fail-on-push-error,
// when the command succeeded but some of what it built was not pushed.
const exitCodePushFailed = 86

// runWatchExec runs a command and pushes every path that becomes valid
// while it runs: the watcher starts at the DB's current mark, uploads
// overlap the build, and after the command exits nixpush waits (bounded)
// for the rest before exiting with the command's code.
func runWatchExec(_ context.Context, args []string) error {
	fs := newFlagSet("watch-exec", "--to CACHE-URL [flags] -- COMMAND [ARGS...]")
	fs.SetInterspersed(false) // everything from COMMAND on is the command's
	var tf targetFlags
	var lf logFlags
	var df drainFlags
	var drainTimeout, stallTimeout time.Duration
	var failOnPushError bool
	tf.add(fs)
	df.add(fs, 3)
	fs.DurationVar(&drainTimeout, "drain-timeout", time.Hour, "after the command exits, how long to wait for its paths to be pushed")
	fs.DurationVar(&stallTimeout, "no-progress-timeout", 5*time.Minute, "stop waiting when no path was pushed for this long")
	fs.BoolVar(&failOnPushError, "fail-on-push-error", false, fmt.Sprintf("exit %d when the command succeeded but a path was not pushed", exitCodePushFailed))
	lf.add(fs, "warn")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return &exitError{code: 2, err: errors.New("watch-exec needs a command to run (after --)")}
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr

	// Everything that can fail is checked before the command starts.
	ctx := context.Background()
	t, err := tf.open(ctx, log)
	if err != nil {
		return err
	}
	defer t.store.Close()
	q, err := openQueue(ctx, df.stateDir, t.identity, false)
	if err != nil {
		return err
	}
	defer q.Close()

	var mu sync.Mutex
	var mine []string
	d := df.drainer(t, q, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(mine)
	}, log)
	w := &watcher.Watcher{
		Store: t.store, Queue: q, Poll: 2 * time.Second, Log: log.Named("watcher"),
		Keep: func(p string) bool { return t.filter.CheckName(p) == uploader.Keep },
		Enqueued: func(paths []string) {
			mu.Lock()
			mine = append(mine, paths...)
			mu.Unlock()
			d.Wake()
		},
	}
	if err := w.StartNow(ctx); err != nil {
		return err
	}

	// After the command exits, a signal stops the wait for uploads (what
	// is left stays queued); a second one exits at once.
	afterChild, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	c, err := startChild(argv, stopWaiting)
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
	case <-c.done:
	case <-during.Done():
		c.kill()
		wg.Wait()
		return fmt.Errorf("push pipeline failed, command stopped: %w", pipelineErr)
	}
	stopDuring()
	wg.Wait()
	code := c.exitCode()

	// Then: the last registrations, and a bounded wait for the uploads.
	if err := w.Scan(ctx); err != nil {
		return &exitError{code: code, err: fmt.Errorf("find paths built by the command: %w", err)}
	}
	drainCtx, cancel := context.WithTimeout(afterChild, drainTimeout)
	defer cancel()
	go cancelOnStall(drainCtx, cancel, &t.uploader.Stats, stallTimeout, log)
	if err := d.Run(drainCtx, true); err != nil {
		return &exitError{code: code, err: err}
	}
	unfinished, err := unfinishedItems(q, mine, false)
	if err != nil {
		return &exitError{code: code, err: err}
	}
	fmt.Fprintf(os.Stderr, "nixpush: pushed %d paths, %s, of %d new paths; %d not pushed\n",
		t.uploader.Stats.Paths.Load(), mib(t.uploader.Stats.Bytes.Load()), len(mine), len(unfinished))
	explainUnfinished(unfinished, df.stateDir, t.identity)
	if len(unfinished) > 0 && failOnPushError && code == 0 {
		return &exitError{code: exitCodePushFailed}
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
