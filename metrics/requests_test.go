package metrics

import "testing"

// TestRequestMetrics: a cache's requests by kind, its throttled answers
// and its server's limit show on /metrics; a backend that does not count
// shows none of them.
func TestRequestMetrics(t *testing.T) {
	m := New(openQueue(t))
	if got := gather(t, m); got[`nixpush_cache_throttled_total`] != 0 {
		t.Fatalf("throttling shown before a probe: %v", got)
	}
	m.WatchRequests(func() (Requests, bool) {
		return Requests{ByKind: map[string]int64{"put": 7, "head": 3}, Throttled: 2, Limit: 48}, true
	})
	got := gather(t, m)
	for series, want := range map[string]float64{
		`nixpush_cache_requests_total{kind="put"}`:  7,
		`nixpush_cache_requests_total{kind="head"}`: 3,
		`nixpush_cache_throttled_total`:             2,
		`nixpush_cache_request_limit`:               48,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	m.WatchRequests(func() (Requests, bool) { return Requests{}, false })
	if _, ok := gather(t, m)[`nixpush_cache_throttled_total`]; ok {
		t.Error("a backend that does not count shows throttling")
	}
}
