// Package metrics is what nixpush tells Prometheus and health checkers:
// queue depth per state (read from the queue at scrape time), paths and
// bytes pushed, failures by kind, detection and upload latencies, the last
// success, and whether the cache has been failing for too long.
package metrics

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nixpush/queue"
)

// Registry serves the metrics of every cache one process pushes to, each
// cache's series labelled cache="<its identity>", and one /healthz for all.
type Registry struct {
	reg    *prometheus.Registry
	mu     sync.Mutex
	caches map[string]*Metrics
}

// NewRegistry returns a Registry with the Go and process collectors.
func NewRegistry() *Registry {
	r := &Registry{reg: prometheus.NewRegistry(), caches: map[string]*Metrics{}}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// BuildInfo registers nixpush_build_info, 1 with the build's version,
// VCS revision and Go version as labels, as Prometheus' own exporters do:
// a fleet's dashboards can see which machine runs which build.
func (r *Registry) BuildInfo(version, revision, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nixpush_build_info", Help: "The nixpush build: version, VCS revision and Go version; always 1.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	r.reg.MustRegister(g)
}

// ForCache registers the collectors of one cache, whose queue is q.
func (r *Registry) ForCache(cache string, q *queue.Queue) *Metrics {
	m := newMetrics(r)
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"cache": cache}, r.reg)
	reg.MustRegister(m.collectors(q)...)
	r.mu.Lock()
	r.caches[cache] = m
	r.mu.Unlock()
	return m
}

// Metrics holds the collectors of one cache. A nil *Metrics is valid and
// records nothing, so components need no "metrics enabled?" checks.
type Metrics struct {
	registry         *Registry
	pushed           prometheus.Counter
	bytes            prometheus.CounterFunc
	failures         *prometheus.CounterVec
	detection        prometheus.Histogram
	upload           prometheus.Histogram
	lastSuccess      prometheus.Gauge
	queueDamaged     prometheus.Gauge
	gcPaths          prometheus.Counter
	gcBytes          prometheus.Counter
	gcLastRun        prometheus.Gauge
	failingSinceNano atomic.Int64 // unix ns, 0 while the cache works (whole seconds would fail /healthz up to 1 s early)
	queueFailingNano atomic.Int64 // unix ns, 0 while queue writes land
	damaged          atomic.Pointer[string]
	progress         atomic.Pointer[func() (busy bool, last time.Time)]
	sent             atomic.Pointer[func() int64] // bytes handed to the cache so far
	pushedBytes      atomic.Int64                 // without sent: bytes of pushed paths
	requests         atomic.Pointer[func() (Requests, bool)]
}

// New is the Metrics of a process with one cache, unlabelled; q is read
// at every scrape.
func New(q *queue.Queue) *Metrics {
	r := NewRegistry()
	m := newMetrics(r)
	r.reg.MustRegister(m.collectors(q)...)
	r.caches[""] = m
	return m
}

func newMetrics(r *Registry) *Metrics {
	m := &Metrics{registry: r}
	m.bytes = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "nixpush_bytes_pushed_total",
		Help: "Compressed NAR bytes sent to the cache, counted as they go (a large upload moves it all along; a retried upload counts again).",
	}, func() float64 {
		if f := m.sent.Load(); f != nil {
			return float64((*f)())
		}
		return float64(m.pushedBytes.Load())
	})
	m.pushed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nixpush_paths_pushed_total", Help: "Queued store paths pushed to the cache.",
	})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nixpush_failures_total", Help: "Failed push attempts, by kind (transient, permanent, gave_up).",
	}, []string{"kind"})
	m.detection = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nixpush_detection_latency_seconds", Help: "From a path's registration in the Nix DB to its row in the queue.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	})
	m.upload = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "nixpush_upload_duration_seconds", Help: "Time to push one batch of claimed paths.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 12),
	})
	m.lastSuccess = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nixpush_last_success_timestamp_seconds", Help: "When a path was last pushed.",
	})
	m.queueDamaged = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nixpush_queue_damaged", Help: "1 when the queue file is damaged and nothing is pushed until it is replaced.",
	})
	m.gcPaths = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nixpush_gc_collected_paths_total", Help: "Store paths whose narinfos the scheduled gc deleted.",
	})
	m.gcBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nixpush_gc_collected_bytes_total", Help: "Bytes of every object the scheduled gc deleted.",
	})
	m.gcLastRun = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nixpush_gc_last_run_timestamp_seconds", Help: "When the scheduled gc last completed.",
	})
	return m
}

// Collected records a completed gc run.
func (m *Metrics) Collected(paths int, bytes int64) {
	if m == nil {
		return
	}
	m.gcPaths.Add(float64(paths))
	m.gcBytes.Add(float64(bytes))
	m.gcLastRun.SetToCurrentTime()
}

func (m *Metrics) collectors(q *queue.Queue) []prometheus.Collector {
	return []prometheus.Collector{m.pushed, m.bytes, m.failures, m.detection, m.upload, m.lastSuccess, m.queueDamaged,
		m.gcPaths, m.gcBytes, m.gcLastRun,
		&queueCollector{q: q}, requestCollector{m}}
}

// Pushed records a path pushed with its compressed size.
func (m *Metrics) Pushed(bytes int64) {
	if m == nil {
		return
	}
	m.pushed.Inc()
	m.pushedBytes.Add(bytes)
	m.lastSuccess.SetToCurrentTime()
}

// WatchBytes gives nixpush_bytes_pushed_total its source: the bytes sent
// to the cache so far, read at every scrape, so the counter moves during
// an upload rather than when it ends.
func (m *Metrics) WatchBytes(sent func() int64) {
	if m != nil {
		m.sent.Store(&sent)
	}
}

// Failed records a failed attempt of the given kind.
func (m *Metrics) Failed(kind string) {
	if m != nil {
		m.failures.WithLabelValues(kind).Inc()
	}
}

// Detected records how long after registration a path was queued.
func (m *Metrics) Detected(d time.Duration) {
	if m != nil {
		m.detection.Observe(d.Seconds())
	}
}

// Uploaded records how long a batch took.
func (m *Metrics) Uploaded(d time.Duration) {
	if m != nil {
		m.upload.Observe(d.Seconds())
	}
}

// CacheFailing records whether the cache is failing, and since when.
func (m *Metrics) CacheFailing(since time.Time) {
	if m == nil {
		return
	}
	if since.IsZero() {
		m.failingSinceNano.Store(0)
	} else {
		m.failingSinceNano.CompareAndSwap(0, since.UnixNano())
	}
}

// QueueFailing records whether writes to the queue fail (a full disk),
// and since when.
func (m *Metrics) QueueFailing(since time.Time) {
	if m == nil {
		return
	}
	if since.IsZero() {
		m.queueFailingNano.Store(0)
	} else {
		m.queueFailingNano.CompareAndSwap(0, since.UnixNano())
	}
}

// QueueDamaged records that the queue file is damaged: /healthz fails at
// once with the reason, which says what to do.
func (m *Metrics) QueueDamaged(reason string) {
	if m == nil {
		return
	}
	m.damaged.Store(&reason)
	m.queueDamaged.Set(1)
}

// WatchProgress gives /healthz a probe of the uploads: whether any is
// under way, and when bytes last moved. Uploads in flight that move no
// byte for longer than unhealthyAfter make the daemon unhealthy, whatever
// the errors say (a frozen server produces none).
func (m *Metrics) WatchProgress(probe func() (busy bool, last time.Time)) {
	if m != nil {
		m.progress.Store(&probe)
	}
}

// health is /healthz's answer: the reasons the daemon is unhealthy, if any.
func (m *Metrics) health(now time.Time, unhealthyAfter time.Duration) (map[string]any, bool) {
	status := map[string]any{}
	healthy := true
	if since := m.failingSinceNano.Load(); since != 0 {
		failing := now.Sub(time.Unix(0, since))
		status["cache_failing_for_seconds"] = int(failing.Seconds())
		healthy = healthy && failing <= unhealthyAfter
	}
	if since := m.queueFailingNano.Load(); since != 0 {
		failing := now.Sub(time.Unix(0, since))
		status["queue_writes_failing_for_seconds"] = int(failing.Seconds())
		healthy = healthy && failing <= unhealthyAfter
	}
	if p := m.progress.Load(); p != nil {
		if busy, last := (*p)(); busy && !last.IsZero() && now.Sub(last) > unhealthyAfter {
			status["uploads_stalled_for_seconds"] = int(now.Sub(last).Seconds())
			healthy = false
		}
	}
	if d := m.damaged.Load(); d != nil {
		status["queue_damaged"] = *d
		healthy = false
	}
	status["healthy"] = healthy
	return status, healthy
}

// Serve serves /metrics and /healthz on addr ("PORT" alone means
// 127.0.0.1:PORT) until ctx ends. /healthz answers 503 once the cache or
// queue writes have been failing, or uploads in flight have moved no byte,
// for longer than unhealthyAfter, and at once when the queue is damaged.
func (m *Metrics) Serve(ctx context.Context, addr string, unhealthyAfter time.Duration) error {
	return m.registry.Serve(ctx, addr, unhealthyAfter)
}

// healthz is the status of every cache: healthy when all are. With one
// cache its fields are at the top level; with several, under "caches".
func (r *Registry) healthz(now time.Time, unhealthyAfter time.Duration) (map[string]any, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	all, healthy := map[string]any{}, true
	for name, m := range r.caches {
		st, ok := m.health(now, unhealthyAfter)
		healthy = healthy && ok
		if len(r.caches) == 1 {
			return st, ok
		}
		all[name] = st
	}
	return map[string]any{"healthy": healthy, "caches": all}, healthy
}

// Serve serves /metrics and /healthz for every cache; see Metrics.Serve.
func (r *Registry) Serve(ctx context.Context, addr string, unhealthyAfter time.Duration) error {
	if !strings.Contains(addr, ":") {
		addr = "127.0.0.1:" + addr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	// A queue that cannot be read (damaged) must not hide the metrics
	// that say so: what could be gathered is served.
	mux.Handle("/metrics", promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		status, healthy := r.healthz(time.Now(), unhealthyAfter)
		code := http.StatusOK
		if !healthy {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(status)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// queueCollector reports queue depth per state, read when scraped.
type queueCollector struct{ q *queue.Queue }

var depthDesc = prometheus.NewDesc("nixpush_queue_items", "Queue rows per state.", []string{"state"}, nil)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- depthDesc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.q.Status(context.Background(), time.Now())
	if err != nil {
		ch <- prometheus.NewInvalidMetric(depthDesc, err)
		return
	}
	for _, s := range queue.States {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.Counts[s]), string(s))
	}
}
