package pipeline_test

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"nixpush/internal/nixtest"
	"nixpush/metrics"
	"nixpush/pipeline"
	"nixpush/queue"
)

// TestDaemonStopsOnDamagedQueue: a queue file cut short under the running
// daemon stops it with the damage (cmd/ exits 78 on it), and the metrics,
// which outlive the daemon's stop, say so: nixpush_queue_damaged 1 and
// /healthz 503 with the reason.
func TestDaemonStopsOnDamagedQueue(t *testing.T) {
	w := newWorld(t)
	cfg := w.config(t, t.TempDir())
	cfg.Daemon, cfg.Metrics = true, metrics.NewRegistry()
	p := open(t, cfg)
	addr := serveMetrics(t, cfg.Metrics)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() {
		done <- p.WatchStore(ctx, pipeline.WatchOptions{Poll: time.Second, Ready: func() { close(ready) }})
	}()
	<-ready
	file := pipeline.QueueFile(w.stateDir, cfg.Caches[0].URL.Identity())
	checkpoint(t, file) // the pages leave the -wal for the file, as in a daemon running a while
	if err := os.Truncate(file, 0); err != nil {
		t.Fatal(err)
	}
	w.nix.Build(t, nixtest.FibChain("damaged", 1))

	select {
	case err := <-done:
		if !errors.Is(err, queue.ErrCorrupt) {
			t.Fatalf("the daemon stopped with %v, want the queue's damage", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon is still running 20 s after its queue file was cut short")
	}
	code, body := get(t, "http://"+addr+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "queue_damaged") || !strings.Contains(body, "move the file away") {
		t.Errorf("/healthz: %d %s, want 503 saying the queue is damaged and what to do", code, body)
	}
	if _, m := get(t, "http://"+addr+"/metrics"); !regexp.MustCompile(`(?m)^nixpush_queue_damaged\{[^}]*\} 1$`).MatchString(m) {
		t.Errorf("/metrics lacks nixpush_queue_damaged 1:\n%s", m)
	}
}

// serveMetrics serves r on a free port until the test ends.
func serveMetrics(t *testing.T, r *metrics.Registry) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { defer close(served); _ = r.Serve(ctx, addr, time.Hour) }()
	t.Cleanup(func() { cancel(); <-served })
	waitFor(t, "metrics on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// checkpoint moves every page of a queue's -wal into its file, beside the
// connections that have it open, as SQLite's automatic checkpoints do.
func checkpoint(t *testing.T, file string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, frames, moved int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &moved); err != nil || busy != 0 {
		t.Fatalf("checkpoint %s: busy %d, %v", file, busy, err)
	}
}
