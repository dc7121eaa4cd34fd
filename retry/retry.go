// Package retry is nixpush's one retry policy: capped exponential backoff
// with jitter (cenkalti/backoff), and the classification every layer uses
// to say an error can never succeed by retrying (Permanent) or was a
// server saying "slow down" (Throttled, waited out by WhileThrottled,
// never counted as a failure). The drainer
// schedules a path's attempts with it (persisted in the queue), the cache
// wrapper retries reads with it (cache.WithRetry), and the few loops that
// must retry a single call (recording outcomes on a full disk, aborting a
// multipart upload) take their spacing from it.
package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Policy spaces attempts: the first retry after about Initial, each next
// interval twice the last up to Max, each delay jittered ±50 % so many
// processes recovering from one outage do not retry in step.
type Policy struct {
	Initial time.Duration // delay after the first failure
	Max     time.Duration // cap on the interval (0: no cap)
	// Elapsed bounds how long Do keeps trying (0: until ctx ends).
	Elapsed time.Duration
	// Attempts bounds how many times Do calls op (0: no bound).
	Attempts int
}

// Schedules used across nixpush.
var (
	// Paths is a queued path's schedule: ~2 s, ~4 s, ... up to ~10 min,
	// for as many attempts as --max-attempts allows.
	Paths = Policy{Initial: 2 * time.Second, Max: 10 * time.Minute}
	// Reads is a single request to a cache (a narinfo, nix-cache-info, a
	// listing page): verify, gc and the pipeline's start read many, and
	// one network hiccup should not abort them. Ten attempts over about
	// 40 s (a minute at most): a count, so a person can be told "retry 2
	// of 9".
	Reads = Policy{Initial: 500 * time.Millisecond, Max: 15 * time.Second, Elapsed: time.Minute, Attempts: 10}
	// LocalWrites is a write to the local disk that must land (a batch's
	// outcomes on a full disk): soon at first, then every few seconds.
	LocalWrites = Policy{Initial: 200 * time.Millisecond, Max: 5 * time.Second}
)

// Delay is the wait before attempt number attempt+1, given attempt
// failures so far. Callers that store only the count (the queue) replay
// the schedule from it.
func (p Policy) Delay(attempt int) time.Duration {
	b := p.BackOff()
	d := b.NextBackOff()
	for i := 1; i < attempt && (p.Max == 0 || d < p.Max); i++ {
		d = b.NextBackOff()
	}
	return d
}

// BackOff returns a fresh schedule of p for one sequence of attempts
// (its Elapsed bound counts from now).
func (p Policy) BackOff() *backoff.ExponentialBackOff {
	opts := []backoff.ExponentialBackOffOpts{
		backoff.WithInitialInterval(p.Initial),
		backoff.WithMaxElapsedTime(p.Elapsed),
	}
	if p.Max > 0 {
		opts = append(opts, backoff.WithMaxInterval(p.Max))
	}
	return backoff.NewExponentialBackOff(opts...)
}

// Do calls op until it succeeds, fails permanently, ctx ends, or p's
// Elapsed or Attempts bound is reached; each retry is announced to ctx's
// listener (WithNotify). The error returned is op's last
// one, unwrapped from Permanent, so its class survives for the caller
// (cmd's exit codes read it); if ctx ends first, ctx's error joined with
// op's last.
func (p Policy) Do(ctx context.Context, op func() error) error {
	var b backoff.BackOff = p.BackOff()
	if p.Attempts > 0 {
		b = backoff.WithMaxRetries(b, uint64(p.Attempts-1))
	}
	var last error
	retries := 0
	err := backoff.RetryNotify(func() error {
		last = op()
		return last
	}, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		retries++
		Announce(ctx, Notice{Err: err, Retry: retries, Of: max(p.Attempts-1, 0), In: d})
	})
	if err == nil {
		return nil
	}
	if last == nil { // ctx ended before the first call
		return err
	}
	var perm *backoff.PermanentError
	if errors.As(last, &perm) {
		return last // keeps its class: IsPermanent(Do(...)) holds
	}
	if ctx.Err() != nil && !errors.Is(last, ctx.Err()) {
		return errors.Join(last, ctx.Err())
	}
	return last
}

// Permanent marks err as one no retry can fix (refused credentials, a
// missing bucket, a bad key, a NAR hash mismatch, a full disk).
func Permanent(err error) error { return backoff.Permanent(err) }

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent where it arose.
func IsPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}
