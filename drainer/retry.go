package drainer

import (
	"errors"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"nixpush/metrics"
)

// RetryPolicy spaces the attempts of one path: capped exponential growth
// with jitter, so a fleet recovering from an outage does not retry in step.
type RetryPolicy struct {
	Initial time.Duration // delay after the first failure
	Max     time.Duration // cap on the interval; jitter spreads each delay ±50 % around it
}

// DefaultRetry retries after ~2 s, then ~4 s, ... up to ~10 min.
var DefaultRetry = RetryPolicy{Initial: 2 * time.Second, Max: 10 * time.Minute}

// Delay is the wait before attempt number attempt+1, given attempt
// failures so far. The queue stores only the attempt count, so the
// exponential schedule is replayed from it.
func (p RetryPolicy) Delay(attempt int) time.Duration {
	b := p.newBackOff()
	d := b.NextBackOff()
	for i := 1; i < attempt && d < p.Max; i++ {
		d = b.NextBackOff()
	}
	return d
}

func (p RetryPolicy) newBackOff() *backoff.ExponentialBackOff {
	if p.Initial <= 0 {
		p = DefaultRetry
	}
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxInterval(p.Max),
		backoff.WithMaxElapsedTime(0),
	)
}

// isPermanent reports errors classified where they arose as never
// succeeding on retry (backoff.Permanent).
func isPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}

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
		o.policy = DefaultRetry.newBackOff()
		o.metrics.CacheFailing(now)
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
