package retry

import (
	"testing"
	"time"
)

// TestRetryDelay: the schedule replayed from the attempt count grows
// exponentially from Initial, with ±50 % jitter, and its interval stops
// growing at Max (so a delay stays within 1.5 × Max).
func TestRetryDelay(t *testing.T) {
	p := Paths
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
