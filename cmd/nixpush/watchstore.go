package main

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"nixpush/metrics"
	"nixpush/queue"
	"nixpush/uploader"
	"nixpush/watcher"
)

// runWatchStore is the daemon: watcher → queue → drainer, forever.
func runWatchStore(ctx context.Context, args []string) error {
	fs := newFlagSet("watch-store", "--to CACHE-URL [flags]")
	var tf targetFlags
	var lf logFlags
	var df drainFlags
	var backfill bool
	var poll, keepDone, unhealthyAfter time.Duration
	var metricsAddr string
	tf.add(fs)
	df.add(fs, 20)
	fs.BoolVar(&backfill, "backfill", false, "on first start, queue every path valid now (default: only paths registered from now on)")
	fs.DurationVar(&poll, "poll-interval", 10*time.Second, "safety poll of the Nix DB, in case file events are lost")
	fs.DurationVar(&keepDone, "keep-done", 72*time.Hour, "how long done and skipped rows stay in the queue")
	fs.StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus /metrics and /healthz on this address (PORT alone means 127.0.0.1:PORT); off when empty")
	fs.DurationVar(&unhealthyAfter, "unhealthy-after", 10*time.Minute, "/healthz fails once the cache has been failing this long")
	lf.add(fs, "info")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := lf.logger()
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // stderr
	t, err := tf.open(ctx, log)
	if err != nil {
		return err
	}
	defer t.store.Close()
	q, err := openQueue(ctx, df.stateDir, t.identity, true)
	if err != nil {
		return err
	}
	defer q.Close()
	// Rows a crashed run left uploading go back to pending.
	if n, err := q.RecoverOrphans(ctx); err != nil {
		return err
	} else if n > 0 {
		log.Info("requeued uploads interrupted by a crash", zap.Int("count", n))
	}
	var m *metrics.Metrics
	if metricsAddr != "" {
		m = metrics.New(q)
	}
	d := df.drainer(t, q, nil, log)
	d.Metrics = m
	sd := notifier{log: log}
	w := &watcher.Watcher{
		Metrics:  m,
		Ready:    sd.ready,
		Store:    t.store,
		Queue:    q,
		Keep:     func(p string) bool { return t.filter.CheckName(p) == uploader.Keep },
		Poll:     poll,
		Log:      log.Named("watcher"),
		Enqueued: func([]string) { d.Wake() },
	}
	if err := w.Resume(ctx, backfill); err != nil {
		return err
	}
	log.Info("watching", zap.String("store", t.store.RealStoreDir()), zap.String("cache", t.identity),
		zap.String("queue", queueFile(df.stateDir, t.identity)))

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	g.Go(func() error { return d.Run(gctx, false) })
	g.Go(func() error { return housekeeping(gctx, q, keepDone, log) })
	g.Go(func() error { sd.watchdog(gctx); return nil })
	g.Go(func() error {
		<-gctx.Done()
		log.Info("stopping: letting uploads in flight finish", zap.Duration("shutdown_timeout", df.shutdownTimeout))
		sd.stopping(df.shutdownTimeout)
		return nil
	})
	if m != nil {
		g.Go(func() error {
			if err := m.Serve(gctx, metricsAddr, unhealthyAfter); err != nil {
				return fmt.Errorf("serve metrics on %s: %w", metricsAddr, err)
			}
			return nil
		})
	}
	err = g.Wait()
	log.Info("stopped")
	return err
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
