package httpcache_test

import (
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/httpcache"
)

// Failures to get any answer are transient: the drainer retries them.

func TestConnectionRefused(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c := newCache(t, "http://user:pw-refused@"+addr+"/", httpcache.Config{})
	ctx := t.Context()
	_, errExists := c.Exists(ctx, "k")
	_, errGet := c.Get(ctx, "k")
	errPut := c.Put(ctx, "k", strings.NewReader("v"), cache.TypeNarInfo)
	errStream := c.Put(ctx, "k", &patternReader{n: 1 << 20}, cache.TypeNAR)
	for _, err := range []error{errExists, errGet, errPut, errStream} {
		if !errors.Is(err, syscall.ECONNREFUSED) || isPermanent(err) || errors.Is(err, cache.ErrNotFound) {
			t.Errorf("error %v, want a transient connection refused", err)
		}
		if err != nil {
			wantNoSecret(t, "error", err.Error(), "pw-refused")
		}
	}
}

func TestDNSFailure(t *testing.T) {
	t.Parallel()
	c := newCache(t, "http://nonexistent.invalid/", httpcache.Config{})
	_, errExists := c.Exists(t.Context(), "k")
	errPut := c.Put(t.Context(), "k", &patternReader{n: 100}, cache.TypeNAR)
	for _, err := range []error{errExists, errPut} {
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) || isPermanent(err) {
			t.Errorf("error %v, want a transient DNS error", err)
		}
	}
}

// TestConnectionDropped: the server reads part of the body and hangs up.
func TestConnectionDropped(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		io.CopyN(io.Discard, r.Body, 1<<20)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		conn.(*net.TCPConn).SetLinger(0) // reset, not a clean close
		conn.Close()
	})
	c := newCache(t, srv.URL, httpcache.Config{})
	for _, body := range []io.Reader{&patternReader{n: 64 << 20}, strings.NewReader(strings.Repeat("x", 8<<20))} {
		err := c.Put(t.Context(), "nar/x.nar", body, cache.TypeNAR)
		if err == nil || isPermanent(err) || statusOf(err) != 0 {
			t.Errorf("Put to a server that hangs up = %v, want a transient network error", err)
		}
	}
	if _, err := c.Exists(t.Context(), "x.narinfo"); err == nil || isPermanent(err) {
		t.Errorf("Exists on a server that hangs up = %v, want a transient error", err)
	}
}

// TestSlowServer: a server reading the body slowly takes several times the
// timeout in all, but the upload makes progress and succeeds: Timeout
// bounds waiting, never a whole body.
func TestSlowServer(t *testing.T) {
	t.Parallel()
	const size, step = 96 << 20, 1 << 20
	got := make(chan int64, 1)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		var n int64
		for {
			m, err := io.CopyN(io.Discard, r.Body, step)
			n += m
			if err != nil {
				break
			}
			time.Sleep(40 * time.Millisecond)
		}
		got <- n
		w.WriteHeader(http.StatusCreated)
	})
	const timeout = 2 * time.Second
	c := newCache(t, srv.URL, httpcache.Config{Timeout: timeout})
	start := time.Now()
	if err := c.Put(t.Context(), "nar/slow.nar", &patternReader{n: size}, cache.TypeNAR); err != nil {
		t.Fatalf("Put to a slow server: %v", err)
	}
	if n := <-got; n != size {
		t.Errorf("server got %d bytes, want %d", n, size)
	}
	if el := time.Since(start); el < timeout {
		t.Errorf("upload took %v, less than the %v timeout: the test proves nothing", el, timeout)
	}
}

// TestStalledServer: a server that stops reading fails the upload after
// Timeout without progress instead of hanging it forever.
func TestStalledServer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	t.Cleanup(func() { close(release) }) // before srv.Close, which waits for handlers
	c := newCache(t, srv.URL, httpcache.Config{Timeout: 300 * time.Millisecond})
	done := make(chan error, 1)
	go func() { done <- c.Put(t.Context(), "nar/stall.nar", &patternReader{n: 1 << 40}, cache.TypeNAR) }()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() || isPermanent(err) {
			t.Errorf("Put to a stalled server = %v, want a transient timeout", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Put to a stalled server still hangs after 30s")
	}
}

// TestEarlyAnswer: a 2xx before the body was read cannot mean the object
// was stored.
func TestEarlyAnswer(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	c := newCache(t, srv.URL, httpcache.Config{})
	if err := c.Put(t.Context(), "nar/x.nar", &patternReader{n: 1 << 30}, cache.TypeNAR); err == nil || isPermanent(err) {
		t.Errorf("Put answered before its body was sent = %v, want a transient error", err)
	}
}

// TestFailingReaderAborts: when the reader fails mid-body the server sees
// the request break off, never a complete body, over HTTP/1.1 (chunked)
// and HTTP/2 (stream reset). nginx_test.go checks that nginx then stores
// nothing.
func TestFailingReaderAborts(t *testing.T) {
	t.Parallel()
	for _, h2 := range []bool{false, true} {
		name := map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			type seen struct {
				n        int64
				err      error
				proto    int
				chunked  bool
				unknownN bool
			}
			saw := make(chan seen, 1)
			handler := func(w http.ResponseWriter, r *http.Request) {
				n, err := io.Copy(io.Discard, r.Body)
				saw <- seen{n, err, r.ProtoMajor, len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked", r.ContentLength == -1}
			}
			var c *httpcache.Cache
			if h2 {
				srv, caFile := tlsServer(t, handler)
				c = newCache(t, srv.URL, httpcache.Config{CACert: caFile})
			} else {
				c = newCache(t, server(t, handler).URL, httpcache.Config{})
			}
			boom := errors.New("NAR hash mismatch, on purpose")
			err := c.Put(t.Context(), "nar/x.nar", failingReader(3<<20, boom), cache.TypeNAR)
			if !errors.Is(err, boom) {
				t.Fatalf("Put = %v, want the reader's error", err)
			}
			select {
			case s := <-saw:
				if s.err == nil {
					t.Errorf("server read a complete body of %d bytes from a failed Put", s.n)
				}
				if s.n > 3<<20 {
					t.Errorf("server got %d bytes, more than the reader gave", s.n)
				}
				if wantProto := map[bool]int{false: 1, true: 2}[h2]; s.proto != wantProto {
					t.Errorf("request went over HTTP/%d", s.proto)
				}
				if !s.unknownN || (!h2 && !s.chunked) {
					t.Errorf("body not streamed: chunked %v, unknown length %v", s.chunked, s.unknownN)
				}
				t.Logf("server read %d bytes, then: %v", s.n, s.err)
			case <-time.After(30 * time.Second):
				t.Fatal("the server's handler did not finish")
			}
		})
	}
}

// tlsServer runs handler over HTTPS with HTTP/2 and returns the server
// and a PEM file of its certificate.
func tlsServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(handler)
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes refused on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// TestTLS: a private CA works once given with CACert; without it, the
// failure is permanent and says which flag fixes it; plain HTTP on an
// https URL is permanent too.
func TestTLS(t *testing.T) {
	t.Parallel()
	srv, caFile := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.ProtoMajor != 2 {
			w.WriteHeader(http.StatusHTTPVersionNotSupported)
		}
	})
	c := newCache(t, srv.URL, httpcache.Config{CACert: caFile})
	if ok, err := c.Exists(t.Context(), "k"); !ok || err != nil {
		t.Errorf("Exists with --ca-cert = %v, %v", ok, err)
	}
	if err := c.Put(t.Context(), "nar/k.nar", &patternReader{n: 5 << 20}, cache.TypeNAR); err != nil {
		t.Errorf("Put over HTTP/2: %v", err)
	}

	noCA := newCache(t, srv.URL, httpcache.Config{})
	_, err := noCA.Exists(t.Context(), "k")
	if !isPermanent(err) || !strings.Contains(err.Error(), "--ca-cert") {
		t.Errorf("Exists without the CA = %v, want a permanent error naming --ca-cert", err)
	}

	plain := server(t, func(http.ResponseWriter, *http.Request) {})
	httpsToPlain := newCache(t, strings.Replace(plain.URL, "http:", "https:", 1), httpcache.Config{})
	_, err = httpsToPlain.Exists(t.Context(), "k")
	if !isPermanent(err) || !strings.Contains(err.Error(), "use http://") {
		t.Errorf("https:// to a plain HTTP server = %v, want a permanent error suggesting http://", err)
	}
}
