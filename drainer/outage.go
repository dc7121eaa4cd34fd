package drainer

import (
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"nixpush/metrics"
	"nixpush/retry"
)

// outage pauses the whole drainer while the cache keeps failing, so that
// an unreachable cache costs one attempt per backoff interval rather than
// one per queued path, and logs one line per interval instead of a flood.
type outage struct {
	mu      sync.Mutex
	log     *zap.Logger
	metrics *metrics.Metrics
	since   time.Time // zero when the cache works
	until   time.Time // no claims before this
	policy  *backoff.ExponentialBackOff
	errors  int
}

func (o *outage) paused(now time.Time) bool { return now.Before(o.pausedUntil()) }

func (o *outage) pausedUntil() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.until
}

// failed records a transient failure and returns the end of the pause.
func (o *outage) failed(now time.Time, err error) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errors++
	if now.Before(o.until) {
		return o.until // already paused: this one was in flight
	}
	if o.since.IsZero() {
		o.since = now
		// A stalled request failed when its server last moved a byte,
		// a timeout before it was noticed: health counts from then.
		var stall interface{ FailingSince() time.Time }
		if errors.As(err, &stall) && !stall.FailingSince().IsZero() && stall.FailingSince().Before(now) {
			o.since = stall.FailingSince()
		}
		o.policy = retry.Paths.BackOff()
		o.metrics.CacheFailing(o.since)
	}
	o.until = now.Add(o.policy.NextBackOff())
	o.log.Error("cache failing, pausing uploads",
		zap.Error(err), zap.Duration("failing_for", now.Sub(o.since)),
		zap.Int("errors", o.errors), zap.Time("next_try", o.until))
	return o.until
}

func (o *outage) succeeded() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.since.IsZero() {
		return
	}
	o.log.Info("cache recovered", zap.Duration("after", time.Since(o.since)), zap.Int("errors", o.errors))
	o.metrics.CacheFailing(time.Time{})
	o.since, o.until, o.errors = time.Time{}, time.Time{}, 0
}
