package httpcache_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"nixpush/cache/httpcache"
)

// TestGetBodyStall: a server that stops sending a body halfway fails the
// read after Timeout with a transient error, instead of hanging verify,
// gc or doctor forever.
func TestGetBodyStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write([]byte(strings.Repeat("x", 1000)))
		w.(http.Flusher).Flush()
		<-release // never sends the rest
	}))
	defer srv.Close()
	defer close(release)
	c := newCache(t, srv.URL, httpcache.Config{Timeout: 300 * time.Millisecond})
	body, err := c.Get(t.Context(), "nar/x.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(body); done <- err }()
	select {
	case err := <-done:
		if err == nil || isPermanent(err) || !strings.Contains(err.Error(), "stalled") {
			t.Errorf("read of a stalled body = %v, want a transient stall error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read of a stalled body still hangs after 10 s")
	}
}
