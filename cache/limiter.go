package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"nixpush/retry"
)

// Limiter bounds the requests a process has in flight to one server's
// bucket or host, and lowers the bound when the server throttles: the
// answer to S3's 503 SlowDown and to 429 is fewer requests at once, not
// more attempts. It lives here, beside the Cache interface, because every
// lane and command that talks to a bucket must share it (two --to URLs
// may name prefixes of one bucket; verify, gc and a push run in one
// process) while each backend only knows its own requests: LimiterFor
// hands out one per server identity, and the backends classify answers.
//
// The bound moves as TCP's congestion window does (AIMD): it starts out
// of the way (maxLimit), drops to three quarters of what was in flight at
// a throttled answer, and grows by one after each bound's worth of clean
// answers. Answers to requests sent before the last drop do not drop it
// again (one burst of throttling is one signal, not one per request in
// flight). A Retry-After holds every new request to the server until it
// has passed (at most maxPause), as the server asked.
type Limiter struct {
	mu      sync.Mutex
	limit   int
	flight  int
	epoch   uint64 // counts drops; a request remembers the epoch it began in
	clean   int    // clean answers since the bound last moved
	pause   time.Time
	changed chan struct{} // closed and replaced when a waiter may go

	throttled atomic.Int64
}

const (
	maxLimit = 1024
	maxPause = time.Minute
)

// NewLimiter returns a Limiter of its own (tests; servers not shared).
func NewLimiter() *Limiter {
	return &Limiter{limit: maxLimit, changed: make(chan struct{})}
}

var limiters sync.Map // identity → *Limiter

// LimiterFor is the process's one Limiter for the server named by id (an
// S3 endpoint and bucket, an HTTP host).
func LimiterFor(id string) *Limiter {
	l, _ := limiters.LoadOrStore(id, NewLimiter())
	return l.(*Limiter)
}

// Limit is the bound in force now.
func (l *Limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit
}

// Throttled counts the throttled answers seen.
func (l *Limiter) Throttled() int64 { return l.throttled.Load() }

// Do runs one request, op, within the bound, and again while its answer
// is throttled (op marks it with retry.Throttled), on retry.Throttle's
// schedule: see retry.Policy.WhileThrottled for when it gives up.
func (l *Limiter) Do(ctx context.Context, op func() error) error {
	return retry.Throttle.WhileThrottled(ctx, func() error { return l.Once(ctx, op) })
}

// Once runs one request within the bound and records its answer, but
// does not send it again: for a request whose body cannot be sent twice
// (a streamed NAR), the caller starts over.
func (l *Limiter) Once(ctx context.Context, op func() error) error {
	epoch, err := l.acquire(ctx)
	if err != nil {
		return err
	}
	err = op()
	l.release(epoch, err)
	return err
}

// acquire waits for room under the bound and for the end of a pause.
func (l *Limiter) acquire(ctx context.Context) (uint64, error) {
	for {
		l.mu.Lock()
		wait := time.Until(l.pause)
		if wait <= 0 && l.flight < l.limit {
			l.flight++
			epoch := l.epoch
			l.mu.Unlock()
			return epoch, nil
		}
		changed := l.changed
		l.mu.Unlock()
		var timer *time.Timer
		var fired <-chan time.Time
		if wait > 0 {
			timer = time.NewTimer(wait)
			fired = timer.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-fired:
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
}

// release records a request's answer and lets waiters in.
func (l *Limiter) release(epoch uint64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	inFlight := l.flight
	l.flight--
	switch {
	case retry.IsThrottled(err):
		l.throttled.Add(1)
		if epoch == l.epoch {
			l.limit = max(1, min(l.limit, inFlight)*3/4)
			l.epoch++
			l.clean = 0
		}
		if ra := min(retry.RetryAfter(err), maxPause); ra > 0 {
			if until := time.Now().Add(ra); until.After(l.pause) {
				l.pause = until
			}
		}
	case l.limit < maxLimit:
		// Any other answer, an error included, is not the server
		// asking for less.
		if l.clean++; l.clean >= l.limit {
			l.limit++
			l.clean = 0
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
}
