package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Requests is what a cache's backend has sent (cache.Requests, which this
// package does not import): requests by kind, throttled answers, and the
// bound of requests in flight its server's limiter holds now.
type Requests struct {
	ByKind    map[string]int64
	Throttled int64
	Limit     int
}

// WatchRequests gives the scrape a probe of the backend's request
// counts; ok is false for a backend that does not count (a directory).
func (m *Metrics) WatchRequests(probe func() (Requests, bool)) {
	if m != nil {
		m.requests.Store(&probe)
	}
}

var (
	requestsDesc = prometheus.NewDesc("nixpush_cache_requests_total",
		"Requests sent to the cache, by kind (put, part, post, get, head, list, delete), throttled ones included.", []string{"kind"}, nil)
	throttledDesc = prometheus.NewDesc("nixpush_cache_throttled_total",
		"Answers that asked to slow down (S3 503 SlowDown, 429): waited out and sent again, never counted as failures.", nil, nil)
	limitDesc = prometheus.NewDesc("nixpush_cache_request_limit",
		"Requests the process may have in flight to the cache's server now: lowered when it throttles, raised as answers come back clean.", nil, nil)
)

// requestCollector reports the probe's counts when scraped.
type requestCollector struct{ m *Metrics }

func (c requestCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- throttledDesc
	ch <- limitDesc
}

func (c requestCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.m.requests.Load()
	if p == nil {
		return
	}
	r, ok := (*p)()
	if !ok {
		return
	}
	for kind, n := range r.ByKind {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), kind)
	}
	ch <- prometheus.MustNewConstMetric(throttledDesc, prometheus.CounterValue, float64(r.Throttled))
	if r.Limit > 0 {
		ch <- prometheus.MustNewConstMetric(limitDesc, prometheus.GaugeValue, float64(r.Limit))
	}
}
