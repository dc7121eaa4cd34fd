package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"nixpush/nixstore"
	"nixpush/pipeline"
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
		Example: `  nixpush watch-exec --to file:///srv/cache --signing-key key.sec -- nix-build -A hello
  nixpush watch-exec --to s3://ci-cache --signing-key key.sec --fail-on-push-error -- nix build .#checks`,
		// Signals are the child's while it runs: no withSignals here.
		RunE: c.run,
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything from COMMAND on is the command's
	c.flags.add(fs, 3, "warn")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", time.Hour, "after the command exits, how long to wait for its paths to be pushed")
	fs.DurationVar(&c.stallTimeout, "no-progress-timeout", 5*time.Minute, "stop waiting when no path was pushed for this long")
	fs.BoolVar(&c.failOnPushError, "fail-on-push-error", false, fmt.Sprintf("exit %d when the command succeeded but a path was not pushed", exitCodePushFailed))
	setGroup(fs, groupQueue, "drain-timeout", "no-progress-timeout", "fail-on-push-error")
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
	cfg, err := c.flags.config(log)
	if err != nil {
		return err
	}
	var p *pipeline.Pipeline
	open := func() (err error) {
		p, err = pipeline.Open(ctx, cfg)
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
		defer p.Close()
		if mark, err = p.Store.MaxID(ctx); err != nil {
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
		defer p.Close()
	}
	return c.watch(ctx, afterChild, p, child, mark)
}

// watch pushes while the command runs, then waits (bounded) for the rest.
func (c *watchExecCommand) watch(ctx, afterChild context.Context, p *pipeline.Pipeline, child *child, mark int64) error {
	run, err := p.StartExec(ctx, mark)
	if err != nil {
		child.kill()
		return err
	}
	// While the command runs, new paths are found and pushed at once.
	during, stopDuring := context.WithCancel(ctx)
	defer stopDuring()
	failed := make(chan error, 1)
	go func() { failed <- run.Watch(during) }()
	select {
	case <-child.done:
		stopDuring()
		<-failed // a failure now shows in the drain below
	case err := <-failed:
		child.kill()
		return fmt.Errorf("push pipeline failed, command stopped: %w", err)
	}
	code := child.exitCode()

	// Then: the last registrations, and a bounded wait for the uploads of
	// every cache at once.
	results, err := run.Finish(afterChild, c.drainTimeout, c.stallTimeout)
	if err != nil {
		return &exitError{code: code, err: err}
	}
	notPushed := 0
	for _, r := range results {
		w := io.Writer(c.stderr)
		if label := p.Label(r.Lane); label != "" {
			w = &linePrefixer{w: c.stderr, prefix: label + ": "}
		}
		stats := &r.Lane.Uploader.Stats
		fmt.Fprintf(w, "nixpush: pushed %s, %s, of %d new; %d not pushed\n",
			plural(int(stats.Paths.Load()), "path"), mib(stats.Bytes.Load()), r.New, len(r.Unfinished))
		explainUnfinished(w, r.Unfinished, r.Lane.StateDir, r.Lane.URL.Identity())
		notPushed = max(notPushed, len(r.Unfinished))
	}
	if notPushed > 0 && c.failOnPushError && code == 0 {
		return &exitError{code: exitCodePushFailed}
	}
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}
