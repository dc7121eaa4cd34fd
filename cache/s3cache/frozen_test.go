package s3cache_test

import (
	"bytes"
	"context"
	"net/url"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// stalledWithin fails the test unless err is a transient stall that came
// at most about timeout after since: the watch sees a stall between
// timeout and 1.25 × timeout after the last progress, and nothing else
// (an abort on the same dead link, a second part) may add to it.
func stalledWithin(t *testing.T, what string, err error, since time.Time, timeout time.Duration) {
	t.Helper()
	wantStalled(t, what, err)
	if took, limit := time.Since(since), timeout*5/4+500*time.Millisecond; took > limit {
		t.Errorf("%s failed %v after the fault, want at most %v (--http-timeout %v)", what, took.Round(time.Millisecond), limit, timeout)
	}
}

// viaProxy is a cache whose requests go through a toxiproxy in front of s.
func viaProxy(t *testing.T, s *servertest.Versitygw, cfg s3cache.Config) (*s3cache.Cache, *servertest.Proxy) {
	t.Helper()
	x := servertest.StartToxiproxy(t)
	px, err := x.Proxy(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	u := s.URL("")
	q := u.Query()
	q.Set("endpoint", px.Addr)
	u.RawQuery = q.Encode()
	c, err := s3cache.New(t.Context(), &url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: u.RawQuery}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, px
}

// TestDeadLink puts a proxy between nixpush and the server that stops
// passing bytes mid-part: the upload fails about the timeout later (not
// after a fixed wait for the response), and the abort that follows does
// not wait on the same dead link again.
func TestDeadLink(t *testing.T) {
	servertest.RequireToxiproxy(t)
	s := servertest.StartVersitygw(t)
	const timeout = time.Second
	c, px := viaProxy(t, s, s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2, Timeout: timeout})
	var dead time.Time
	err := within(t, "Put over a dead link", time.Minute, func() error {
		return c.Put(t.Context(), "nar/x.nar", &stopAfter{n: 40 << 20, stop: func() {
			if err := px.Stall(servertest.Upstream, 0); err != nil {
				t.Error(err)
			}
			dead = time.Now()
		}}, cache.TypeNAR)
	})
	stalledWithin(t, "Put over a dead link", err, dead, timeout)
}

// TestSlowLinkIsProgress sends a body through a link slower than the
// socket buffers can hide: after the last byte is handed to the kernel,
// megabytes still drain for longer than the timeout. Bytes the peer
// acknowledges are progress, so the upload succeeds.
func TestSlowLinkIsProgress(t *testing.T) {
	servertest.RequireToxiproxy(t)
	if testing.Short() {
		t.Skip("takes about 4 s")
	}
	s := servertest.StartVersitygw(t)
	const timeout = time.Second
	c, px := viaProxy(t, s, s3cache.Config{PartSize: 16 << 20, Timeout: timeout})
	if err := px.Bandwidth(1 << 20); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := c.Put(ctx, "nar/slow.nar", bytes.NewReader(make([]byte, 4<<20)), cache.TypeNAR); err != nil {
		t.Fatalf("4 MiB at 1 MiB/s with --http-timeout %v: %v (after %v)", timeout, err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("4 MiB at 1 MiB/s in %v", time.Since(start).Round(time.Millisecond))
}
