// Package drainer empties the queue into the cache: it claims queued
// paths, pushes each one's closure through the uploader, and records the
// outcome. It is the one place where failures are retried: transient ones
// come back later with capped, jittered exponential backoff (the next
// attempt time is stored in the queue, so a restart honours it), permanent
// ones fail at once, and nothing is dropped without a recorded reason.
package drainer

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/uploader"
)

// Drainer runs the queue → uploader → cache half of the pipeline.
type Drainer struct {
	Queue       *queue.Queue
	Uploader    *uploader.Uploader
	Filter      uploader.Filter
	Jobs        int           // paths processed at once
	MaxAttempts int           // transient failures before a path is failed
	Only        []string      // when set, drain just these paths (push, watch-exec)
	Log         *zap.Logger
	Retry       RetryPolicy
	// ShutdownTimeout bounds how long uploads in flight may run on after
	// ctx ends; what does not finish goes back to pending.
	ShutdownTimeout time.Duration

	wake    chan struct{}
	outage  outage
	initOne sync.Once
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
		if d.Jobs < 1 {
			d.Jobs = 1
		}
		if d.MaxAttempts < 1 {
			d.MaxAttempts = 1
		}
		d.outage.log = d.Log
	})
}

// Run drains until ctx ends or, with untilEmpty, until no item it may
// claim is pending or uploading. Items in flight when ctx ends get
// ShutdownTimeout to finish; the rest are returned to pending.
func (d *Drainer) Run(ctx context.Context, untilEmpty bool) error {
	d.init()
	// Uploads run on their own context so a shutdown lets them finish.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		if d.ShutdownTimeout > 0 {
			time.AfterFunc(d.ShutdownTimeout, cancelWork)
		} else {
			cancelWork()
		}
	})
	defer stop()

	slots := make(chan struct{}, d.Jobs)
	var wg sync.WaitGroup
	defer wg.Wait()
	done := make(chan struct{}, d.Jobs)
	for ctx.Err() == nil {
		free := d.Jobs - len(slots)
		var items []queue.Item
		if free > 0 && !d.outage.paused(time.Now()) {
			var err error
			items, err = d.Queue.Claim(ctx, free, time.Now(), d.Only)
			if err != nil {
				return err
			}
		}
		for _, it := range items {
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				d.process(work, it)
				<-slots
				done <- struct{}{}
			}()
		}
		if len(items) > 0 {
			continue
		}
		if untilEmpty && len(slots) == 0 {
			if empty, err := d.empty(ctx); err != nil || empty {
				return err
			}
		}
		if err := d.wait(ctx, done); err != nil {
			return err
		}
	}
	return nil
}

// wait sleeps until an upload finishes, new work is signalled, the next
// retry falls due, an outage pause ends, or ctx ends.
func (d *Drainer) wait(ctx context.Context, done <-chan struct{}) error {
	until := time.Now().Add(time.Minute)
	if next, ok, err := d.Queue.NextDue(ctx); err != nil {
		return err
	} else if ok && next.Before(until) {
		until = next
	}
	if p := d.outage.pausedUntil(); p.After(time.Now()) && p.Before(until) {
		until = p
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-done:
	case <-d.wake:
	case <-t.C:
	}
	return nil
}

// empty reports whether nothing this drainer may take is left to do.
func (d *Drainer) empty(ctx context.Context) (bool, error) {
	if len(d.Only) == 0 {
		st, err := d.Queue.Status(ctx, time.Now())
		if err != nil {
			return false, err
		}
		return st.Counts[queue.Pending]+st.Counts[queue.Uploading] == 0, nil
	}
	items, err := d.Queue.Get(ctx, d.Only)
	if err != nil {
		return false, err
	}
	for _, it := range items {
		if it.State == queue.Pending || it.State == queue.Uploading {
			return false, nil
		}
	}
	return true, nil
}

// process pushes one claimed item's closure and records what happened.
func (d *Drainer) process(ctx context.Context, it queue.Item) {
	log := d.Log.With(zap.String("path", it.Path))
	bytes, err := d.push(ctx, it.Path)
	now := time.Now()
	// The outcome is recorded even when shutdown has cancelled ctx.
	q := context.WithoutCancel(ctx)
	var rerr error
	switch {
	case err == nil:
		d.outage.succeeded()
		rerr = d.Queue.Complete(q, it.Path, bytes, now)
	case errors.Is(err, errSkip):
		log.Info("skipped", zap.String("reason", err.Error()))
		rerr = d.Queue.Skip(q, it.Path, err.Error(), now)
	case ctx.Err() != nil:
		// Shut down mid-upload: not the path's fault, so no attempt counts.
		rerr = d.Queue.Unclaim(q, it.Path)
	case isPermanent(err):
		log.Error("push failed permanently", zap.Error(err))
		rerr = d.Queue.Fail(q, it.Path, err.Error(), now)
	case it.Attempts+1 >= d.MaxAttempts:
		log.Error("push failed, giving up", zap.Int("attempts", it.Attempts+1), zap.Error(err))
		rerr = d.Queue.Fail(q, it.Path, err.Error(), now)
	default:
		next := now.Add(d.Retry.Delay(it.Attempts + 1))
		if p := d.outage.failed(now, err); p.After(next) {
			next = p
		}
		rerr = d.Queue.Retry(q, it.Path, err.Error(), next)
	}
	if rerr != nil && !errors.Is(rerr, queue.ErrNotClaimed) {
		log.Error("record outcome", zap.Error(rerr))
	}
}

// errSkip marks outcomes where there is nothing to upload.
var errSkip = errors.New("skipped")

type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }
func (e skipError) Is(t error) bool { return t == errSkip }

// push uploads the closure of one path and returns the compressed bytes
// written for the path itself (0 if it was already there).
func (d *Drainer) push(ctx context.Context, path string) (int64, error) {
	st := d.Uploader.Store
	info, err := st.QueryPathInfo(ctx, path)
	if errors.Is(err, nixstore.ErrNotValid) {
		return 0, skipError{"no longer valid in the Nix store (garbage-collected?)"}
	}
	if err != nil {
		return 0, err
	}
	if r := d.Filter.Check(info); r != uploader.Keep {
		return 0, skipError{"filtered: " + r.String()}
	}
	closure, err := st.Closure(ctx, []string{path})
	if errors.Is(err, nixstore.ErrNotValid) {
		return 0, skipError{"closure no longer valid in the Nix store (garbage-collected?)"}
	}
	if err != nil {
		return 0, err
	}
	plan, err := d.Uploader.Plan(ctx, closure, d.Filter)
	if err != nil {
		return 0, err
	}
	bytes, errs := d.Uploader.Upload(ctx, plan.Upload)
	for _, err := range errs {
		var pe *uploader.PathError
		if errors.As(err, &pe) && pe.Path == path && errors.Is(err, uploader.ErrGone) {
			return 0, skipError{uploader.ErrGone.Error()}
		}
		return 0, err // the first failure explains the item's
	}
	return bytes, nil
}
