// Package drainer empties the queue into the cache: it claims queued
// paths in batches, pushes their closures through the uploader, and
// records the outcomes. It is the one place where failures are retried:
// transient ones come back later with capped, jittered exponential backoff
// (the next attempt time is stored in the queue, so a restart honours it),
// permanent ones fail at once, and nothing is dropped without a recorded
// reason.
package drainer

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"nixpush/metrics"
	"nixpush/queue"
	"nixpush/retry"
	"nixpush/uploader"
)

// batchSize bounds how many items one claim takes. Batches share one
// closure query, one existence check per path and one commit of outcomes,
// which is what makes thousands of small paths cheap.
const batchSize = 256

// idleRecheck is how often an idle drainer looks at the queue for items
// added by other processes: one indexed query, negligible CPU.
const idleRecheck = 2 * time.Second

// parallelBatches lets the next batch start while the last uploads of the
// previous one finish, keeping every upload slot busy.
const parallelBatches = 2

// Pusher pushes the closures of store paths (an *uploader.Uploader).
type Pusher interface {
	Push(ctx context.Context, roots []string) map[string]uploader.RootResult
}

// Drainer runs the queue → uploader → cache half of the pipeline:
// claim, push, classify, settle.
type Drainer struct {
	Queue       *queue.Queue
	Uploader    Pusher
	MaxAttempts int // transient failures before a path is failed
	Log         *zap.Logger
	Retry       retry.Policy
	// ShutdownTimeout bounds how long uploads in flight may run on after
	// ctx ends; what does not finish goes back to pending.
	ShutdownTimeout time.Duration
	// Abort, when closed, cancels the uploads in flight at once, whatever
	// ShutdownTimeout says; their rows go back to pending.
	Abort   <-chan struct{}
	Metrics *metrics.Metrics // may be nil

	wake    chan struct{}
	outage  outage
	initOne sync.Once
	busy    atomic.Int32 // batches being pushed
	started atomic.Int64 // unix ns when the last batch started
}

// Busy reports whether batches are being pushed, and since when the last
// one started: with the uploader's byte progress, it tells a stalled
// upload from an idle daemon.
func (d *Drainer) Busy() (bool, time.Time) {
	return d.busy.Load() > 0, time.Unix(0, d.started.Load())
}

// Wake tells a waiting drainer that new items may be due.
func (d *Drainer) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Drainer) init() {
	d.initOne.Do(func() {
		d.wake = make(chan struct{}, 1)
		if d.MaxAttempts < 1 {
			d.MaxAttempts = 1
		}
		d.outage.log = d.Log
		d.outage.metrics = d.Metrics
	})
}

// Scope says which items a run may claim and when it ends.
type Scope struct {
	// Items are the run's: a push's or a watch-exec's own
	// (queue.NewScope), or queue.Everything.
	Items queue.Scope
	// UntilEmpty ends the run once none of its items is pending or
	// uploading; otherwise it runs until ctx ends (the daemon).
	UntilEmpty bool
	// Complete, when set, is closed once every item of the run is in the
	// queue: a push plans and enqueues its closure a part at a time while
	// the first parts upload, and until then an empty scope is not the
	// end.
	Complete <-chan struct{}
}

// complete reports whether every item of the scope is in the queue.
func (s Scope) complete() bool {
	if s.Complete == nil {
		return true
	}
	select {
	case <-s.Complete:
		return true
	default:
		return false
	}
}

// Everything is the daemon's scope: every item, until stopped.
var Everything = Scope{Items: queue.Everything}

// Run drains the items of scope until ctx ends or, with
// scope.UntilEmpty, until none is left. Batches in flight when ctx ends
// get ShutdownTimeout to finish; what they do not finish returns to
// pending.
func (d *Drainer) Run(ctx context.Context, scope Scope) error {
	untilEmpty := scope.UntilEmpty
	d.init()
	// Uploads run on their own context so a shutdown lets them finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(d.ShutdownTimeout, cancelWork) })
	defer stop()
	if d.Abort != nil {
		go func() {
			select {
			case <-d.Abort:
				cancelWork()
			case <-work.Done():
			}
		}()
	}

	running := 0
	done := make(chan error, parallelBatches)
	var failed error // a batch's outcomes could not be recorded
	finish := func(err error) {
		running--
		if err != nil && failed == nil {
			failed = err
		}
	}
	defer func() {
		for ; running > 0; running-- {
			<-done
		}
	}()
	for ctx.Err() == nil && failed == nil {
		if running == parallelBatches || d.outage.paused(time.Now()) {
			if batchDone, err := d.sleep(ctx, done, d.outage.pausedUntil()); batchDone {
				finish(err)
			}
			continue
		}
		items, err := d.Queue.Claim(ctx, batchSize, time.Now(), scope.Items)
		if err != nil {
			if err := d.queueTrouble(ctx, err, untilEmpty); err != nil {
				return err
			}
			if batchDone, err := d.sleep(ctx, done, time.Now().Add(idleRecheck)); batchDone {
				finish(err)
			}
			continue
		}
		if len(items) > 0 {
			running++
			go func() { done <- d.processBatch(work, items, untilEmpty) }()
			continue
		}
		next, ok, err := time.Time{}, false, error(nil)
		if untilEmpty && running == 0 && scope.complete() {
			var empty bool
			if empty, err = d.Queue.ScopeDone(ctx, scope.Items); err == nil && empty {
				return nil
			}
		}
		if err == nil {
			next, ok, err = d.Queue.NextDue(ctx)
		}
		if err != nil {
			if err := d.queueTrouble(ctx, err, untilEmpty); err != nil {
				return err
			}
		}
		if !ok || !next.After(time.Now()) || time.Until(next) > idleRecheck {
			// Nothing due soon, or due rows held by another process. Other
			// processes add work too (enqueue from a post-build-hook,
			// retry): look again shortly. A Wake or a finished batch
			// comes sooner.
			next = time.Now().Add(idleRecheck)
		}
		if batchDone, err := d.sleep(ctx, done, next); batchDone {
			finish(err)
		}
	}
	return failed
}

// stopped drops an error caused by the shutdown itself (a query cut short
// by the cancelled ctx): stopping is not a failure.
func stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sleep waits until a batch finishes (it then reports true, with the
// batch's error), new work is signalled, until passes, or ctx ends.
func (d *Drainer) sleep(ctx context.Context, done <-chan error, until time.Time) (batchDone bool, err error) {
	if until.IsZero() || until.Sub(time.Now()) > time.Minute {
		until = time.Now().Add(time.Minute)
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case err := <-done:
		return true, err
	case <-d.wake:
	case <-t.C:
	}
	return false, nil
}
