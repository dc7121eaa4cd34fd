package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"nixpush/queue"
)

// TestNilMetricsRecordsNothing: components call a nil *Metrics when
// metrics are off; every method must be a no-op, not a panic.
func TestNilMetricsRecordsNothing(t *testing.T) {
	var m *Metrics
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("a nil *Metrics panicked: %v", r)
		}
	}()
	m.Pushed(123)
	m.Failed("transient")
	m.Detected(time.Second)
	m.Uploaded(time.Second)
	m.CacheFailing(time.Now())
	m.CacheFailing(time.Time{})
}

// openQueue opens a fresh queue in a temp dir.
func openQueue(t *testing.T) *queue.Queue {
	t.Helper()
	q, err := queue.Open(filepath.Join(t.TempDir(), "test.queue.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// gather returns every sample of the registry by series, as
// `name{label="value"}` or name.
func gather(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	families, err := m.registry.reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			var labels []string
			for _, l := range s.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			out[name] = value(f.GetType(), s)
		}
	}
	return out
}

// value is a sample's value; a histogram's is its count.
func value(typ dto.MetricType, s *dto.Metric) float64 {
	switch typ {
	case dto.MetricType_COUNTER:
		return s.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return s.GetGauge().GetValue()
	case dto.MetricType_HISTOGRAM:
		return float64(s.GetHistogram().GetSampleCount())
	}
	return s.GetUntyped().GetValue()
}

// TestQueueDepthPerState: nixpush_queue_items reports, at scrape time,
// how many rows of a real queue are in each state, every state included.
func TestQueueDepthPerState(t *testing.T) {
	ctx := context.Background()
	q := openQueue(t)
	m := New(q)

	want := map[queue.State]float64{}
	check := func(when string) {
		t.Helper()
		got := gather(t, m)
		for _, s := range queue.States {
			series := fmt.Sprintf("nixpush_queue_items{state=%q}", s)
			v, ok := got[series]
			if !ok {
				t.Errorf("%s: no %s", when, series)
			} else if v != want[s] {
				t.Errorf("%s: %s = %v, want %v", when, series, v, want[s])
			}
		}
	}
	check("empty queue")

	var paths []string
	for i := range 9 {
		paths = append(paths, fmt.Sprintf("/nix/store/%032d-metrics-%d", i, i))
	}
	if _, err := q.Enqueue(ctx, paths); err != nil {
		t.Fatal(err)
	}
	want[queue.Pending] = 9
	check("9 enqueued")

	now := time.Now()
	claimed, err := q.Claim(ctx, 6, now, queue.Everything)
	if err != nil || len(claimed) != 6 {
		t.Fatalf("claim 6: %d items, %v", len(claimed), err)
	}
	for i, it := range claimed {
		switch i {
		case 0, 1, 2:
			err = q.Complete(ctx, it.Path, 100, now)
		case 3:
			err = q.Fail(ctx, it.Path, "broken", now)
		case 4:
			err = q.Skip(ctx, it.Path, "gone", now)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	want = map[queue.State]float64{queue.Pending: 3, queue.Uploading: 1, queue.Done: 3, queue.Failed: 1, queue.Skipped: 1}
	check("after claims and outcomes")
}

// TestCounters: what the drainer and watcher record shows in the
// registry.
func TestCounters(t *testing.T) {
	m := New(openQueue(t))
	before := time.Now()
	m.Pushed(100)
	m.Pushed(250)
	m.Failed("transient")
	m.Failed("transient")
	m.Failed("permanent")
	m.Detected(30 * time.Millisecond)
	m.Uploaded(2 * time.Second)
	m.Uploaded(3 * time.Second)
	got := gather(t, m)
	for series, want := range map[string]float64{
		"nixpush_paths_pushed_total":               2,
		"nixpush_bytes_pushed_total":               350,
		`nixpush_failures_total{kind="transient"}`: 2,
		`nixpush_failures_total{kind="permanent"}`: 1,
		"nixpush_detection_latency_seconds":        1,
		"nixpush_upload_duration_seconds":          2,
	} {
		if got[series] != want {
			t.Errorf("%s = %v, want %v", series, got[series], want)
		}
	}
	if last := got["nixpush_last_success_timestamp_seconds"]; last < float64(before.Unix()) || last > float64(time.Now().Unix()+1) {
		t.Errorf("nixpush_last_success_timestamp_seconds = %v, want about %d", last, before.Unix())
	}
}

// health is one /healthz answer.
type health struct {
	code int
	body map[string]any
}

// serve runs m.Serve on a free port until the test ends and returns the
// base URL once it answers.
func serve(t *testing.T, m *Metrics, unhealthyAfter time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- m.Serve(ctx, addr, unhealthyAfter) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/metrics")
		if err == nil {
			resp.Body.Close()
			return base
		}
		select {
		case err := <-served:
			t.Fatalf("Serve returned before answering: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/metrics does not answer: %v", base, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getHealth(t *testing.T, base string) health {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	h := health{code: resp.StatusCode}
	if err := json.Unmarshal(b, &h.body); err != nil {
		t.Fatalf("/healthz body %q: %v", b, err)
	}
	return h
}

// TestHealthz: /healthz is 200 while the cache works or has failed for
// less than the threshold, 503 once it has failed for longer, and 200
// again when it recovers; the start of an outage is its first failure.
func TestHealthz(t *testing.T) {
	m := New(openQueue(t))
	base := serve(t, m, time.Minute)

	steps := []struct {
		name    string
		do      func()
		code    int
		failing float64 // cache_failing_for_seconds at least; -1: absent
	}{
		{"cache works", func() {}, 200, -1},
		{"failing for a moment", func() { m.CacheFailing(time.Now()) }, 200, 0},
		{"failures go on: the outage still started a moment ago", func() { m.CacheFailing(time.Now().Add(-time.Hour)) }, 200, 0},
		{"recovered", func() { m.CacheFailing(time.Time{}) }, 200, -1},
		{"failing for longer than the threshold", func() { m.CacheFailing(time.Now().Add(-2 * time.Minute)) }, 503, 120},
		{"a later failure keeps the outage's start", func() { m.CacheFailing(time.Now()) }, 503, 120},
		{"recovered again", func() { m.CacheFailing(time.Time{}) }, 200, -1},
	}
	for _, s := range steps {
		s.do()
		h := getHealth(t, base)
		healthy := s.code == 200
		secs, has := h.body["cache_failing_for_seconds"].(float64)
		switch {
		case h.code != s.code || h.body["healthy"] != healthy:
			t.Errorf("%s: /healthz %d %v, want %d healthy=%v", s.name, h.code, h.body, s.code, healthy)
		case s.failing < 0 && has:
			t.Errorf("%s: /healthz %v reports a failure", s.name, h.body)
		case s.failing >= 0 && (!has || secs < s.failing || secs > s.failing+60):
			t.Errorf("%s: /healthz %v, want cache_failing_for_seconds about %v", s.name, h.body, s.failing)
		}
	}
}

// TestServePortOnly: an address without a host listens on 127.0.0.1, and
// a port in use is an error, not a silent no-op.
func TestServePortOnly(t *testing.T) {
	m := New(openQueue(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = m.Serve(ctx, port, time.Minute)
	var opErr *net.OpError
	if !errors.As(err, &opErr) || !strings.Contains(err.Error(), "127.0.0.1:"+port) {
		t.Errorf("Serve on %s, which is in use on 127.0.0.1: %v, want a listen error for 127.0.0.1:%s", port, err, port)
	}
}

// TestHealthzExactThreshold: the outage's start is kept to the
// nanosecond, so /healthz does not fail early. The start is put just
// before a second boundary: rounded down to whole seconds it would look
// 1 s older than it is, past the 1.2 s threshold.
func TestHealthzExactThreshold(t *testing.T) {
	m := New(openQueue(t))
	base := serve(t, m, 1200*time.Millisecond)
	// 0.3-0.8 s into a second, rounding down would add 1.3-1.8 s.
	now := time.Now()
	for now.Nanosecond() < 300e6 || now.Nanosecond() >= 800e6 {
		time.Sleep(10 * time.Millisecond)
		now = time.Now()
	}
	since := time.Unix(now.Unix()-1, 999_000_000) // 0.3-0.8 s ago
	m.CacheFailing(since)
	h := getHealth(t, base)
	if h.code != 200 || h.body["healthy"] != true {
		t.Errorf("/healthz %d %v for a cache failing for %s, under the 1.2 s threshold",
			h.code, h.body, time.Since(since).Round(time.Millisecond))
	}
}
