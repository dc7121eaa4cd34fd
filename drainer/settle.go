package drainer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"nixpush/queue"
	"nixpush/retry"
)

// settle records a batch's outcomes, retrying until they land: a row left
// uploading by a live process that no longer works on it would never be
// retried by anyone (orphan recovery only takes rows of dead processes),
// and a push waiting for it would wait forever. It gives up when ctx ends
// (shutdown), or, for a run that must end (push, watch-exec), after
// giveUp; then it hands the rows back if it can, and returns the error so
// the run stops with it. The rows' uploads are done: what is lost is only
// the record, and a later run finds the paths in the cache.
func (d *Drainer) settle(ctx context.Context, outcomes []queue.Outcome, now time.Time, giveUp time.Duration) error {
	start := time.Now()
	for attempt := 1; ; attempt++ {
		_, err := d.Queue.Settle(context.WithoutCancel(ctx), outcomes, now)
		if err == nil {
			if attempt > 1 {
				d.Log.Info("queue writes recovered", zap.Int("attempts", attempt))
				d.Metrics.QueueFailing(time.Time{})
			}
			return nil
		}
		if attempt == 1 {
			d.Log.Error("record outcomes failed, retrying", zap.Error(err))
			d.Metrics.QueueFailing(start)
		}
		d.Metrics.Failed("queue_write")
		if errors.Is(err, queue.ErrCorrupt) || (giveUp > 0 && time.Since(start) > giveUp) {
			return d.giveBack(fmt.Errorf("record outcomes: %w", err))
		}
		select {
		case <-ctx.Done():
			return d.giveBack(fmt.Errorf("record outcomes: %w", err))
		case <-time.After(retry.LocalWrites.Delay(attempt)):
		}
	}
}

// giveBack returns this process's claimed rows to pending, so another
// process can take them; if even that fails they stay claimed until this
// process exits, when orphan recovery takes them.
func (d *Drainer) giveBack(cause error) error {
	if n, err := d.Queue.ReleaseClaims(context.Background()); err != nil {
		d.Log.Error("give back claimed rows", zap.Error(err))
	} else if n > 0 {
		d.Log.Warn("gave claimed rows back to the queue", zap.Int("count", n))
	}
	return cause
}

// queueTrouble decides what a failed queue read or claim means for Run:
// a lock held by another process is waited out; damage stops the drainer
// with health failing, whatever the run (the daemon then exits in the way
// its unit does not restart: a restart cannot repair the file); other
// errors (a full disk) are retried by the daemon and end a run that must
// end. It returns the error Run should stop with, or nil to go on.
func (d *Drainer) queueTrouble(ctx context.Context, err error, untilEmpty bool) error {
	switch {
	case ctx.Err() != nil:
		return nil
	case errors.Is(err, queue.ErrBusy):
		d.Log.Warn("queue locked by another process, waiting", zap.Error(err))
		return nil
	case errors.Is(err, queue.ErrCorrupt):
		d.Log.Error("queue damaged: nothing more is pushed until it is replaced", zap.Error(err))
		d.Metrics.QueueDamaged(err.Error())
		return err
	case untilEmpty:
		return err
	}
	d.Log.Warn("queue read failed, retrying", zap.Error(err))
	return nil
}
