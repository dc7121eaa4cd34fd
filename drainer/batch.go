package drainer

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"nixpush/queue"
	"nixpush/retry"
	"nixpush/uploader"
)

// processBatch pushes the closures of claimed items and records every
// item's outcome in one commit. Its error is an outcome that could not be
// recorded by a run that must end (see settle).
func (d *Drainer) processBatch(ctx context.Context, items []queue.Item, mustEnd bool) error {
	start := time.Now()
	d.busy.Add(1)
	defer d.busy.Add(-1)
	d.started.Store(start.UnixNano())
	paths := make([]string, len(items))
	for i, it := range items {
		paths[i] = it.Path
	}
	errs := d.Uploader.Push(ctx, paths)
	d.Metrics.Uploaded(time.Since(start))
	now := time.Now()
	outcomes := make([]queue.Outcome, 0, len(items))
	for _, it := range items {
		outcomes = append(outcomes, d.outcome(ctx, it, errs[it.Path], now, mustEnd))
	}
	giveUp := time.Duration(0) // the daemon retries until it lands or stops
	if mustEnd {
		giveUp = max(d.ShutdownTimeout, time.Second)
	}
	return d.settle(ctx, outcomes, now, giveUp)
}

// outcome classifies one item's result. A run that must end (push,
// watch-exec) names its failed paths in its own summary: its log says
// them at info level, so a person does not read each error twice; the
// daemon's log is its only report, at error level.
func (d *Drainer) outcome(ctx context.Context, it queue.Item, r uploader.RootResult, now time.Time, mustEnd bool) queue.Outcome {
	o := queue.Outcome{Path: it.Path, ID: it.ID}
	reason := ""
	if r.Err != nil {
		// The row names the path already; keep just why.
		reason = r.Err.Error()
		var pe *uploader.PathError
		if errors.As(r.Err, &pe) && pe.Path == it.Path {
			reason = pe.Err.Error()
		}
	}
	path := zap.String("path", it.Path) // a field, not Log.With: that encodes it even for a path that logs nothing
	failedAt := d.Log.Error
	if mustEnd {
		failedAt = d.Log.Info
	}
	switch {
	case r.Err == nil && r.Skip == "":
		d.outage.succeeded()
		d.Metrics.Pushed(r.Bytes)
		o.State, o.Bytes = queue.Done, r.Bytes
	case r.Err == nil:
		d.Log.Info("skipped", path, zap.String("reason", r.Skip))
		o.State, o.Reason = queue.Skipped, r.Skip
	case ctx.Err() != nil:
		// Shut down mid-upload: not the path's fault, so no attempt counts.
		o.State = queue.Pending
	case retry.IsPermanent(r.Err):
		failedAt("push failed permanently", path, zap.Error(r.Err))
		d.Metrics.Failed("permanent")
		o.State, o.Reason, o.Attempt = queue.Failed, reason, true
	case it.Attempts+1 >= d.MaxAttempts:
		failedAt("push failed, giving up", path, zap.Int("attempts", it.Attempts+1), zap.Error(r.Err))
		d.Metrics.Failed("gave_up")
		o.State, o.Reason, o.Attempt = queue.Failed, reason, true
	default:
		d.Metrics.Failed("transient")
		next := now.Add(d.Retry.Delay(it.Attempts + 1))
		// A server that said when to come back (429/503 Retry-After) is
		// taken at its word when that is later than our own schedule.
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(r.Err, &ra) && now.Add(ra.RetryAfter()).After(next) {
			next = now.Add(ra.RetryAfter())
		}
		if p := d.outage.failed(now, r.Err); p.After(next) {
			next = p
		}
		o.State, o.Reason, o.Next, o.Attempt = queue.Pending, reason, next, true
	}
	return o
}
