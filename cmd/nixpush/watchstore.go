package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"nixpush/cache/gc"
	"nixpush/metrics"
	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/watcher"
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
		Args:  noArgs,
		RunE:  withSignals(c.run),
	}
	fs := cmd.Flags()
	c.flags.add(fs, 20, "info")
	fs.BoolVar(&c.backfill, "backfill", false, "on first start, queue every path valid now (default: only paths registered from now on)")
	fs.DurationVar(&c.poll, "poll-interval", 10*time.Second, "safety poll of the Nix DB, in case file events are lost")
	fs.DurationVar(&c.keepDone, "keep-done", 72*time.Hour, "how long done and skipped rows stay in the queue")
	fs.StringVar(&c.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (PORT alone means 127.0.0.1:PORT); off when empty")
	fs.DurationVar(&c.unhealthyAfter, "unhealthy-after", 10*time.Minute, "/healthz fails once the cache has been failing this long")
	fs.DurationVar(&c.gcEvery, "gc-every", 0, "collect garbage in each cache this often, as nixpush gc --delete with the gc flags below (0: never)")
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
	for _, to := range c.flags.to { // bad flags fail now, not once the store exists
		if _, err := c.flags.settings(to); err != nil {
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
		c.backfill = true
	}
	ps, err := c.flags.openAll(ctx, log, openOptions{daemon: true})
	if err != nil {
		return err
	}
	defer ps.Close()
	var reg *metrics.Registry
	if c.metricsAddr != "" {
		reg = metrics.NewRegistry()
	}
	sd := notifier{log: log}
	shutdown := c.flags.drain.shutdownTimeout
	g, gctx := errgroup.WithContext(ctx)
	// Ready once every cache's watcher is in place.
	var ready sync.WaitGroup
	ready.Add(len(ps))
	g.Go(func() error { ready.Wait(); sd.ready(); return nil })
	for _, p := range ps {
		w, err := c.start(ctx, p, reg, ready.Done)
		if err != nil {
			return err
		}
		g.Go(func() error { return w.Run(gctx) })
		g.Go(func() error { return p.drainer.Run(gctx, false) })
		g.Go(func() error { return housekeeping(gctx, p.queue, c.keepDone, p.log) })
		if c.gcEvery > 0 {
			g.Go(func() error { return c.collectEvery(gctx, p, p.drainer.Metrics) })
		}
	}
	g.Go(func() error { sd.watchdog(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("stopping: letting uploads in flight finish", zap.Duration("shutdown_timeout", shutdown))
		sd.stopping(shutdown)
		return nil
	})
	if reg != nil {
		g.Go(func() error {
			if err := reg.Serve(gctx, c.metricsAddr, c.unhealthyAfter); err != nil {
				return fmt.Errorf("serve metrics on %s: %w", c.metricsAddr, err)
			}
			return nil
		})
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

// start readies one cache's half of the daemon: orphans requeued, metrics
// labelled by the cache, and a watcher resuming from the mark saved in
// the cache's queue.
func (c *watchStoreCommand) start(ctx context.Context, p *pipeline, reg *metrics.Registry, ready func()) (*watcher.Watcher, error) {
	q := p.queue
	// Rows a crashed run left uploading go back to pending.
	if n, err := q.RecoverOrphans(ctx); err != nil {
		return nil, err
	} else if n > 0 {
		p.log.Info("requeued uploads interrupted by a crash", zap.Int("count", n))
	}
	var m *metrics.Metrics
	if reg != nil {
		m = reg.ForCache(p.url.Identity(), q)
	}
	p.drainer.Metrics = m
	m.WatchProgress(func() (bool, time.Time) {
		busy, started := p.drainer.Busy()
		return busy, later(started, time.Unix(0, p.uploader.Stats.Moved.Load()))
	})
	mark, err := watcher.SavedMark(ctx, q, p.store.MaxID, c.backfill)
	if err != nil {
		return nil, err
	}
	w := p.watcher(watcher.SavingMark(q), mark)
	w.Metrics, w.Ready, w.Poll = m, ready, c.poll
	p.log.Info("watching", zap.String("store", p.store.RealStoreDir()), zap.String("cache", p.url.Identity()),
		zap.String("queue", queueFile(p.stateDir, p.url.Identity())))
	return w, nil
}

// housekeeping prunes old rows and requeues rows of processes that died,
// once an hour (and once at start).
func housekeeping(ctx context.Context, q *queue.Queue, keepDone time.Duration, log *zap.Logger) error {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if n, err := q.Prune(ctx, time.Now().Add(-keepDone)); err != nil {
			log.Warn("prune queue", zap.Error(err))
		} else if n > 0 {
			log.Info("pruned finished rows", zap.Int("count", n))
		}
		if _, err := q.RecoverOrphans(ctx); err != nil {
			log.Warn("recover orphaned rows", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// collectEvery runs gc --delete on the pipeline's cache every --gc-every,
// first after one interval. A failed run is logged and tried again at the
// next one: gc is housekeeping, never a reason to stop pushing.
func (c *watchStoreCommand) collectEvery(ctx context.Context, p *pipeline, m *metrics.Metrics) error {
	opts, err := c.gc.options(c.flags.store, true)
	if err != nil {
		return err
	}
	tick := time.NewTicker(c.gcEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		res, err := gc.Collect(ctx, p.cache, opts)
		if err != nil {
			if ctx.Err() == nil {
				p.log.Error("scheduled gc failed", zap.Error(err))
			}
			continue
		}
		p.uploader.Forget(res.Paths...) // this machine's next push asks again
		m.Collected(len(res.Paths), res.Bytes)
		p.log.Info("scheduled gc", zap.Int("paths", len(res.Paths)), zap.Int("nars", len(res.NARs)),
			zap.Int64("bytes", res.Bytes), zap.Int("kept_paths", res.KeptPaths))
		if len(res.Damaged) > 0 {
			p.log.Error("paths pushed during gc lost their NAR: run nixpush verify --repair", zap.Strings("paths", res.Damaged))
		}
	}
}
