package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Throttle is the schedule of a request a server throttled (429, S3's
// 503 SlowDown): full jitter (each wait is uniform between 0 and the
// step, which doubles from Initial up to Max), never less than the
// server's Retry-After, for up to Elapsed in all. Throttling is the
// server saying "not so fast", not a failure: these waits spend none of
// a path's --max-attempts. A server that throttles every try for ten
// minutes is down, not busy, and the request then fails as any other.
var Throttle = Policy{Initial: 100 * time.Millisecond, Max: 20 * time.Second, Elapsed: 10 * time.Minute}

// throttled marks an answer that said "slow down".
type throttled struct {
	err   error
	after time.Duration // the server's Retry-After, 0 when it named none
}

func (e *throttled) Error() string             { return e.err.Error() }
func (e *throttled) Unwrap() error             { return e.err }
func (e *throttled) RetryAfter() time.Duration { return e.after }
func (e *throttled) Is(target error) bool      { return target == ErrThrottled }

// ErrThrottled is what errors.Is finds in an error marked Throttled.
var ErrThrottled = errors.New("throttled")

// Throttled marks err as a throttled answer, with the server's
// Retry-After (0: none given). A backend marks it where it classifies the
// answer; WhileThrottled waits it out.
func Throttled(err error, retryAfter time.Duration) error {
	if err == nil {
		return nil
	}
	return &throttled{err: err, after: retryAfter}
}

// IsThrottled reports whether err was marked Throttled.
func IsThrottled(err error) bool { return errors.Is(err, ErrThrottled) }

// RetryAfter is the Retry-After an error carries (marked Throttled, or an
// error of its own with a RetryAfter method), 0 when none.
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryAfter()
	}
	return 0
}

// step is the bound of the wait after the n-th throttled answer (n from
// 0): Initial doubled n times, at most Max.
func (p Policy) step(n int) time.Duration {
	d := p.Initial
	for range n {
		if p.Max > 0 && d >= p.Max {
			break
		}
		d *= 2
	}
	if p.Max > 0 {
		d = min(d, p.Max)
	}
	return d
}

// ThrottleWait is the wait after the n-th throttled answer in a row (n
// from 0): full jitter (AWS's term: uniform from 0 to the step, so many
// clients throttled at once come back spread out, where Delay's ±50 %
// would bunch them); with a Retry-After, that much and
// then a jittered part of the step more, so the many requests one answer
// held back do not all come back in the same millisecond.
func (p Policy) ThrottleWait(n int, retryAfter time.Duration) time.Duration {
	jitter := time.Duration(rand.Int64N(int64(p.step(n)) + 1))
	if retryAfter > 0 {
		return retryAfter + jitter
	}
	return jitter
}

// WhileThrottled calls op until it returns anything but a throttled
// answer, waiting ThrottleWait between calls. Once Elapsed is spent, the
// last answer is returned unmarked, as an ordinary (transient) failure
// that says how long the server throttled; if ctx ends first, the last
// answer joined with ctx's error.
func (p Policy) WhileThrottled(ctx context.Context, op func() error) error {
	start := time.Now()
	for n := 0; ; n++ {
		err := op()
		var t *throttled
		if !errors.As(err, &t) {
			return err
		}
		wait := p.ThrottleWait(n, t.after)
		if p.Elapsed > 0 && time.Since(start)+wait > p.Elapsed {
			return fmt.Errorf("throttled for %v, %d answers in a row: %w", time.Since(start).Round(time.Second), n+1, t.err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return errors.Join(err, ctx.Err())
		case <-timer.C:
		}
	}
}

// ParseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3); 0 when absent or unreadable. S3 servers
// may send X-Amz-Retry-After in milliseconds instead.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			return time.Duration(min(s, int64(time.Hour/time.Second))) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return min(t.Sub(now), time.Hour)
		}
	}
	if v := strings.TrimSpace(h.Get("X-Amz-Retry-After")); v != "" {
		if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
			return min(time.Duration(ms)*time.Millisecond, time.Hour)
		}
	}
	return 0
}
