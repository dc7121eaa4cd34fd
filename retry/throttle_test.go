package retry

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestThrottleWait: full jitter spreads waits from 0 to the step, which
// doubles up to Max; a Retry-After is a floor, never shortened.
func TestThrottleWait(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	var low bool
	for range 200 {
		d := p.ThrottleWait(0, 0)
		if d < 0 || d > 100*time.Millisecond {
			t.Fatalf("first wait %v, want within [0, 100ms]", d)
		}
		low = low || d < 20*time.Millisecond
		if d := p.ThrottleWait(10, 0); d > time.Second {
			t.Fatalf("wait %v beyond Max", d)
		}
		if d := p.ThrottleWait(3, 2*time.Second); d < 2*time.Second || d > 2800*time.Millisecond {
			t.Fatalf("wait with Retry-After 2s = %v, want 2s plus at most the step (800ms)", d)
		}
	}
	if !low {
		t.Error("no wait under a fifth of the step in 200: not full jitter")
	}
}

// TestWhileThrottled: throttled answers are waited out and the next
// answer returned; other errors end it at once; after Elapsed the last
// answer comes back unmarked, a failure like any other.
func TestWhileThrottled(t *testing.T) {
	p := Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Elapsed: 200 * time.Millisecond}
	calls := 0
	err := p.WhileThrottled(t.Context(), func() error {
		calls++
		if calls < 4 {
			return Throttled(errors.New("503 SlowDown"), 0)
		}
		return nil
	})
	if err != nil || calls != 4 {
		t.Fatalf("err %v after %d calls, want nil after 4", err, calls)
	}
	boom := errors.New("500")
	calls = 0
	if err := p.WhileThrottled(t.Context(), func() error { calls++; return boom }); err != boom || calls != 1 {
		t.Fatalf("a plain failure: %v after %d calls", err, calls)
	}
	err = p.WhileThrottled(t.Context(), func() error { return Throttled(errors.New("429"), 0) })
	if err == nil || IsThrottled(err) || !strings.Contains(err.Error(), "throttled for") {
		t.Fatalf("after Elapsed: %v, want an unmarked failure saying it was throttled", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := p.WhileThrottled(ctx, func() error { return Throttled(errors.New("429"), 50*time.Millisecond) }); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"1"}}, time.Second},
		{http.Header{"Retry-After": {now.Add(30 * time.Second).Format(http.TimeFormat)}}, 30 * time.Second},
		{http.Header{"Retry-After": {"soon"}}, 0},
		{http.Header{"X-Amz-Retry-After": {"250"}}, 250 * time.Millisecond},
		{http.Header{}, 0},
	} {
		if got := ParseRetryAfter(tc.h, now); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
	if RetryAfter(Throttled(errors.New("x"), 3*time.Second)) != 3*time.Second {
		t.Error("RetryAfter of a marked error")
	}
}
