package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"nixpush/metrics"
	"nixpush/nixstore"
	"nixpush/pipeline"
)

// watchStoreCommand is the daemon: watcher → queue → drainer, forever.
type watchStoreCommand struct {
	flags                          pipelineFlags
	backfill                       bool
	poll, keepDone, unhealthyAfter time.Duration
	metricsAddr                    string
	gcEvery                        time.Duration
	gc                             gcFlags
}

func newWatchStoreCommand() *cobra.Command {
	c := &watchStoreCommand{}
	cmd := &cobra.Command{
		Use:   "watch-store --to CACHE-URL [flags]",
		Short: "push every path that becomes valid, forever (the daemon)",
		Example: `  nixpush watch-store --to file:///srv/cache --signing-key /etc/nixpush/key.sec
  nixpush watch-store --to s3://fleet-cache?region=eu-west-1 --signing-key key.sec --metrics-addr 9464
  nixpush watch-store --config /etc/nixpush/config.toml    # as the systemd unit runs it`,
		Args: noArgs,
		RunE: withSignals(c.run),
	}
	fs := cmd.Flags()
	c.flags.add(fs, 20, "info")
	fs.BoolVar(&c.backfill, "backfill", false, "on first start, queue every path valid now (default: only paths registered from now on)")
	fs.DurationVar(&c.poll, "poll-interval", 10*time.Second, "safety poll of the Nix DB, in case file events are lost")
	fs.DurationVar(&c.keepDone, "keep-done", 72*time.Hour, "how long done and skipped rows stay in the queue")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (PORT alone means 127.0.0.1:PORT); off when empty")
	fs.DurationVar(&c.unhealthyAfter, "unhealthy-after", 10*time.Minute, "/healthz fails once the cache has been failing this long")
	fs.DurationVar(&c.gcEvery, "gc-every", 0, "collect garbage in each cache this often, as nixpush gc --delete with the gc flags below (0: never)")
	setGroup(fs, groupDaemon, "backfill", "poll-interval", "keep-done", "metrics-addr", "unhealthy-after")
	setGroup(fs, groupGC, "gc-every")
	c.gc.add(fs)
	return cmd
}

func (c *watchStoreCommand) run(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	log, err := c.flags.log.logger(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer log.Sync()                //nolint:errcheck // stderr
	cfg, err := c.flags.config(log) // bad flags fail now, not once the store exists
	if err != nil {
		return err
	}
	opts := pipeline.WatchOptions{Backfill: c.backfill, Poll: c.poll, KeepDone: c.keepDone, GCEvery: c.gcEvery}
	if c.gcEvery > 0 {
		if opts.GC, err = c.gc.options(c.flags.store, true); err != nil {
			return err
		}
	}
	if !nixstore.DBExists(c.flags.store) {
		// A store that does not exist yet (a machine being set up): wait
		// for Nix to create it; everything registered in it is new.
		log.Info("waiting for the Nix DB to be created", zap.String("store", c.flags.store))
		store, err := nixstore.WaitOpen(ctx, c.flags.store, time.Second)
		if err != nil {
			return nil
		}
		store.Close()
		opts.Backfill = true
	}
	cfg.Daemon = true
	in := interruptOf(ctx)
	cfg.Abort = in.abort
	if c.metricsAddr != "" {
		cfg.Metrics = metrics.NewRegistry()
		cfg.Metrics.BuildInfo(buildInfo())
	}
	p, err := pipeline.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	in.waitingFor(func() string { return inFlight(p, c.flags.drain.shutdownTimeout) })
	sd := notifier{log: log}
	opts.Ready = sd.ready
	shutdown := c.flags.drain.shutdownTimeout
	g, gctx := errgroup.WithContext(ctx)
	// Metrics outlive the pipeline's stop: while uploads in flight finish,
	// /healthz still says why the daemon is stopping (a damaged queue).
	serving, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	g.Go(func() error { defer stopServing(); return p.WatchStore(gctx, opts) })
	g.Go(func() error { sd.watchdog(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("stopping: letting uploads in flight finish", zap.Duration("shutdown_timeout", shutdown))
		sd.stopping(shutdown)
		return nil
	})
	if cfg.Metrics != nil {
		g.Go(func() error {
			if err := cfg.Metrics.Serve(serving, c.metricsAddr, c.unhealthyAfter); err != nil {
				return fmt.Errorf("serve metrics on %s: %w", c.metricsAddr, err)
			}
			return nil
		})
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}
