package drainer

import (
	"testing"
	"time"
)

// TestRetryDelay: the schedule replayed from the attempt count grows
// exponentially from Initial, with ±50 % jitter, and its interval stops
// growing at Max (so a delay stays within 1.5 × Max).
func TestRetryDelay(t *testing.T) {
	p := RetryPolicy{Initial: 2 * time.Second, Max: 10 * time.Minute}
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration // backoff's default jitter is ±50 %
	}{
		{1, 1 * time.Second, 3 * time.Second},
		{2, 1500 * time.Millisecond, 4500 * time.Millisecond},
		{3, 2250 * time.Millisecond, 6750 * time.Millisecond},
		{20, 5 * time.Minute, 15 * time.Minute},
		{100, 5 * time.Minute, 15 * time.Minute},
	} {
		for range 50 {
			if d := p.Delay(tc.attempt); d < tc.min || d > tc.max {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}

// TestOutagePausesOnceAndRecovers: during an outage the drainer pauses as
// a whole; failures while paused do not extend or re-log the pause, and a
// success ends it.
func TestOutagePausesOnceAndRecovers(t *testing.T) {
	o := outage{log: zapNop()}
	now := time.Now()
	until := o.failed(now, errTest)
	if !o.paused(now) || !until.After(now) {
		t.Fatalf("after a failure: paused %v until %s", o.paused(now), until)
	}
	if again := o.failed(now.Add(time.Millisecond), errTest); !again.Equal(until) {
		t.Fatalf("a failure while paused moved the pause from %s to %s", until, again)
	}
	o.succeeded()
	if o.paused(now) {
		t.Fatal("still paused after a success")
	}
}
