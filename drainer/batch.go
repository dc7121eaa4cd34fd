package drainer

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"nixpush/nixstore"
	"nixpush/queue"
	"nixpush/uploader"
)

// processBatch pushes the closures of claimed items and records every
// item's outcome in one commit.
func (d *Drainer) processBatch(ctx context.Context, items []queue.Item) {
	start := time.Now()
	errs := d.pushBatch(ctx, items)
	d.Metrics.Uploaded(time.Since(start))
	now := time.Now()
	outcomes := make([]queue.Outcome, 0, len(items))
	for _, it := range items {
		outcomes = append(outcomes, d.outcome(ctx, it, errs[it.Path], now))
	}
	// Recorded even when shutdown has cancelled ctx.
	if _, err := d.Queue.Settle(context.WithoutCancel(ctx), outcomes, now); err != nil {
		d.Log.Error("record outcomes", zap.Error(err))
	}
}

// itemResult is what pushing did for one item.
type itemResult struct {
	bytes int64
	skip  string // why nothing needed uploading, or ""
	err   error
}

// pushBatch pushes the closures of all items together: one closure query,
// one plan, one upload, however many items share dependencies.
func (d *Drainer) pushBatch(ctx context.Context, items []queue.Item) map[string]itemResult {
	res := make(map[string]itemResult, len(items))
	paths := make([]string, len(items))
	for i, it := range items {
		paths[i] = it.Path
	}
	fail := func(err error) map[string]itemResult {
		for _, p := range paths {
			res[p] = itemResult{err: err}
		}
		return res
	}
	store := d.Uploader.Store
	valid, invalid, err := store.QueryValid(ctx, paths)
	if err != nil {
		return fail(err)
	}
	for _, p := range invalid {
		res[p] = itemResult{skip: "no longer valid in the Nix store (garbage-collected?)"}
	}
	var roots []string
	for _, info := range valid {
		if r := d.Filter.Check(info); r != uploader.Keep {
			res[info.Path] = itemResult{skip: "filtered: " + r.String()}
			continue
		}
		roots = append(roots, info.Path)
	}
	if len(roots) == 0 {
		return res
	}
	closure, err := store.Closure(ctx, roots)
	if errors.Is(err, nixstore.ErrNotValid) && len(roots) > 1 {
		// A dependency vanished between the two queries: sort it out one
		// item at a time.
		for _, r := range roots {
			one := d.pushBatch(ctx, []queue.Item{{Path: r}})
			res[r] = one[r]
		}
		return res
	}
	if err != nil {
		return fail(err)
	}
	plan, err := d.Uploader.Plan(ctx, closure, d.Filter)
	if err != nil {
		return fail(err)
	}
	uploaded := d.Uploader.Upload(ctx, plan.Upload)
	for _, p := range roots {
		r, ok := uploaded[p]
		if !ok {
			res[p] = itemResult{} // already in the cache
			continue
		}
		if errors.Is(r.Err, uploader.ErrGone) {
			res[p] = itemResult{skip: uploader.ErrGone.Error()}
			continue
		}
		res[p] = itemResult{bytes: int64(r.Bytes), err: r.Err}
	}
	return res
}

// outcome classifies one item's result.
func (d *Drainer) outcome(ctx context.Context, it queue.Item, r itemResult, now time.Time) queue.Outcome {
	o := queue.Outcome{Path: it.Path}
	reason := ""
	if r.err != nil {
		// The row names the path already; keep just why.
		reason = r.err.Error()
		var pe *uploader.PathError
		if errors.As(r.err, &pe) && pe.Path == it.Path {
			reason = pe.Err.Error()
		}
	}
	log := d.Log.With(zap.String("path", it.Path))
	switch {
	case r.err == nil && r.skip == "":
		d.outage.succeeded()
		d.Metrics.Pushed(r.bytes)
		o.State, o.Bytes = queue.Done, r.bytes
	case r.err == nil:
		log.Info("skipped", zap.String("reason", r.skip))
		o.State, o.Reason = queue.Skipped, r.skip
	case ctx.Err() != nil:
		// Shut down mid-upload: not the path's fault, so no attempt counts.
		o.State = queue.Pending
	case isPermanent(r.err):
		log.Error("push failed permanently", zap.Error(r.err))
		d.Metrics.Failed("permanent")
		o.State, o.Reason, o.Attempt = queue.Failed, reason, true
	case it.Attempts+1 >= d.MaxAttempts:
		log.Error("push failed, giving up", zap.Int("attempts", it.Attempts+1), zap.Error(r.err))
		d.Metrics.Failed("gave_up")
		o.State, o.Reason, o.Attempt = queue.Failed, reason, true
	default:
		d.Metrics.Failed("transient")
		next := now.Add(d.Retry.Delay(it.Attempts + 1))
		// A server that said when to come back (429/503 Retry-After) is
		// taken at its word when that is later than our own schedule.
		var ra interface{ RetryAfter() time.Duration }
		if errors.As(r.err, &ra) && now.Add(ra.RetryAfter()).After(next) {
			next = now.Add(ra.RetryAfter())
		}
		if p := d.outage.failed(now, r.err); p.After(next) {
			next = p
		}
		o.State, o.Reason, o.Next, o.Attempt = queue.Pending, reason, next, true
	}
	return o
}
