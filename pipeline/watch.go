package pipeline

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"nixpush/cache/gc"
	"nixpush/drainer"
	"nixpush/queue"
	"nixpush/watcher"
)

// WatchOptions say how the daemon watches and keeps house.
type WatchOptions struct {
	// Backfill queues every path valid now on a first start (no mark
	// saved yet); otherwise only paths registered from now on.
	Backfill bool
	Poll     time.Duration // safety poll of the Nix DB, in case file events are lost
	KeepDone time.Duration // how long done and skipped rows stay in the queue
	// GCEvery, when positive, runs gc with GC in every cache this often.
	GCEvery time.Duration
	GC      gc.Options
	// Ready, when set, is called once the watcher is in place: from then
	// on no registration is missed.
	Ready func()
}

// WatchStore is the daemon: one watcher feeding every lane's queue (rows
// and the mark they reach, in one transaction per queue), each lane's
// drainer, housekeeping and scheduled gc, until ctx ends or one of them
// fails.
func (p *Pipeline) WatchStore(ctx context.Context, o WatchOptions) error {
	sink := &fanout{}
	for _, l := range p.Lanes {
		// Rows a crashed run left uploading go back to pending.
		if n, err := l.Queue.RecoverOrphans(ctx); err != nil {
			return p.errorf(l, err)
		} else if n > 0 {
			l.Log.Info("requeued uploads interrupted by a crash", zap.Int("count", n))
		}
		mark, err := watcher.SavedMark(ctx, l.Queue, p.Store.MaxID, o.Backfill)
		if err != nil {
			return p.errorf(l, err)
		}
		sink.add(l, watcher.SavingMark(l.Queue), mark)
		l.Log.Info("watching", zap.String("store", p.Store.RealStoreDir()), zap.String("cache", l.URL.Identity()),
			zap.String("queue", QueueFile(l.StateDir, l.URL.Identity())))
	}
	w := p.watcher(sink, slices.Min(sink.marks), o.Poll)
	w.Ready = o.Ready
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(gctx) })
	for _, l := range p.Lanes {
		g.Go(func() error { return l.Drainer.Run(gctx, drainer.Everything) })
		g.Go(func() error { return l.housekeeping(gctx, o.KeepDone) })
		if o.GCEvery > 0 {
			g.Go(func() error { return l.collectEvery(gctx, o.GCEvery, o.GC) })
		}
	}
	return g.Wait()
}

// watcher returns the one watcher of the pipeline's store feeding sink
// from mark, waking every lane's drainer when paths land.
func (p *Pipeline) watcher(sink watcher.Sink, mark int64, poll time.Duration) *watcher.Watcher {
	return &watcher.Watcher{
		Store: p.Store, Sink: sink, Mark: mark, Keep: p.passesNameFilter, Poll: poll,
		Log: p.log.Named("watcher"), Fatal: damaged,
		Enqueued: func([]string) {
			for _, l := range p.Lanes {
				l.Drainer.Wake()
			}
		},
		Detected: func(d time.Duration) {
			for _, l := range p.Lanes {
				l.Metrics.Detected(d)
			}
		},
	}
}

// fanout is the watcher's sink for every lane. Each lane's queue has its
// own mark: a batch at or below it is in that queue already (the watcher
// starts from the lowest mark, and a batch that failed in one queue is
// scanned again).
type fanout struct {
	lanes []*Lane
	sinks []watcher.Sink
	marks []int64
}

func (f *fanout) add(l *Lane, s watcher.Sink, mark int64) {
	f.lanes = append(f.lanes, l)
	f.sinks = append(f.sinks, s)
	f.marks = append(f.marks, mark)
}

func (f *fanout) Add(ctx context.Context, paths []string, mark int64) error {
	for i, s := range f.sinks {
		if mark <= f.marks[i] {
			continue
		}
		if err := s.Add(ctx, paths, mark); err != nil {
			f.lanes[i].checkDamage(err)
			return err
		}
		f.marks[i] = mark
	}
	return nil
}

// damaged reports errors of a damaged queue file: nothing this process
// does can get past them, so the daemon stops on them.
func damaged(err error) bool { return errors.Is(err, queue.ErrCorrupt) }

// checkDamage says so, at error level and in the lane's metrics
// (nixpush_queue_damaged, /healthz 503), when err is the queue's damage.
func (l *Lane) checkDamage(err error) {
	if damaged(err) {
		l.Log.Error("queue damaged: stopping; nothing more is pushed until it is replaced", zap.Error(err))
		l.Metrics.QueueDamaged(err.Error())
	}
}

// housekeeping prunes old rows and requeues rows of processes that died,
// once an hour (and once at start).
func (l *Lane) housekeeping(ctx context.Context, keepDone time.Duration) error {
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		n, err := l.Queue.Prune(ctx, time.Now().Add(-keepDone))
		if err == nil && n > 0 {
			l.Log.Info("pruned finished rows", zap.Int("count", n))
		}
		if err == nil {
			_, err = l.Queue.RecoverOrphans(ctx)
		}
		if damaged(err) {
			l.checkDamage(err)
			return err
		}
		if err != nil && ctx.Err() == nil {
			l.Log.Warn("queue housekeeping failed, trying again in an hour", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// collectEvery runs gc on the lane's cache every interval, first after
// one interval. A failed run is logged and tried again at the next one:
// gc is housekeeping, never a reason to stop pushing.
func (l *Lane) collectEvery(ctx context.Context, every time.Duration, opts gc.Options) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		res, err := gc.Collect(ctx, l.Cache, opts)
		if err != nil {
			if ctx.Err() == nil {
				l.Log.Error("scheduled gc failed", zap.Error(err))
			}
			continue
		}
		l.Uploader.Forget(res.Paths...) // this machine's next push asks again
		l.Metrics.Collected(len(res.Paths), res.Bytes)
		l.Log.Info("scheduled gc", zap.Int("paths", len(res.Paths)), zap.Int("nars", len(res.NARs)),
			zap.Int64("bytes", res.Bytes), zap.Int("kept_paths", res.KeptPaths))
		if len(res.Damaged) > 0 {
			l.Log.Error("paths pushed during gc lost their NAR: run nixpush verify --repair", zap.Strings("paths", res.Damaged))
		}
	}
}
