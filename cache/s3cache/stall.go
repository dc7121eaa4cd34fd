package s3cache

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"nixpush/cache"
)

// ErrStalled is wrapped by the error of a request that made no progress
// for Config.Timeout. It is transient: the server may come back.
var ErrStalled = errors.New("stalled")

// stallError is a request that made no progress for timeout.
type stallError struct {
	timeout time.Duration
	last    time.Time // when a byte last moved
}

func (e *stallError) Error() string {
	return fmt.Sprintf("%v: no progress for %v", ErrStalled, e.timeout)
}
func (e *stallError) Is(target error) bool { return target == ErrStalled }

// FailingSince is when the server last moved a byte: the cache has been
// failing since then, not since the stall was noticed (a health check
// counts from it).
func (e *stallError) FailingSince() time.Time { return e.last }

// A request stalls when neither direction of its connection moves for
// the timeout. The SDK's own timers do not cover this: a frozen server's
// kernel accepts the connection and a few megabytes, then nothing moves,
// and Go waits for response headers only once the whole body is written,
// which a full send buffer never lets happen. Nor is "the transport read
// the body" progress: after its last read, up to a send buffer's worth
// (4 MiB on Linux) still drains to a slow peer, and a timeout shorter
// than that drain would fail every large part on a slow uplink. So
// progress is measured at the socket:
//
//   - a chunk of a write taken by the kernel (writes are cut into
//     writeChunk pieces, so a slow but moving write counts),
//   - a read that returned bytes (headers, body, and the whitespace S3
//     sends while it assembles a large multipart upload),
//   - at each tick, on Linux, a change in the bytes the peer acknowledged
//     or sent (TCP_INFO): the send queue draining after the last write.
//
// A tick every timeout/4 checks; a request whose last progress is timeout
// old is cancelled, so a stall is seen between timeout and 1.25 × timeout
// after the last byte moved. Its connection is reset (SO_LINGER 0), which
// also frees the megabytes queued to a frozen peer.
//
// The watch binds one request to one connection, so the transport speaks
// HTTP/1.1 only: several parts in flight want several TCP connections
// anyway, and an HTTP/2 connection blocked on one stream would stall all.
const writeChunk = 64 << 10

// stallClient is the HTTP client under the SDK.
type stallClient struct {
	next     aws.HTTPClient
	timeout  time.Duration
	requests *cache.RequestCounter // every request sent, by kind
}

// watchTransport makes t's connections report progress and keeps it to
// HTTP/1.1 (see above).
func watchTransport(t *http.Transport) {
	dial := t.DialContext
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext
	}
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return newWatchedConn(c), nil
	}
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
}

func (c *stallClient) Do(req *http.Request) (*http.Response, error) {
	c.requests.Count(cache.RequestKind(req.Method, req.URL))
	ctx, cancel := context.WithCancelCause(req.Context())
	w := newWatch(c.timeout, cancel)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: w.gotConn})
	w.arm(true)
	resp, err := c.next.Do(req.WithContext(ctx))
	w.arm(false)
	if err != nil {
		w.release()
		cause := context.Cause(ctx)
		cancel(nil)
		if errors.Is(cause, ErrStalled) {
			// As net/http words its own errors.
			op := req.Method[:1] + strings.ToLower(req.Method[1:])
			return nil, &url.Error{Op: op, URL: req.URL.Redacted(), Err: cause}
		}
		return nil, err
	}
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, ctx: ctx, cancel: cancel, url: req.URL.Redacted()}
	return resp, nil
}

// watch is the countdown of one request. It runs while armed: while the
// request is sent and its response awaited, and while a body read waits;
// not while the caller holds a response body without reading it.
type watch struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc
	events  atomic.Int64 // progress events, counted by the connection

	mu    sync.Mutex
	timer *time.Timer
	armed bool
	seen  int64     // events at the last tick
	last  time.Time // when a tick last saw progress
	conn  *watchedConn
}

func newWatch(timeout time.Duration, cancel context.CancelCauseFunc) *watch {
	w := &watch{timeout: timeout, cancel: cancel}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

func (w *watch) period() time.Duration { return max(w.timeout/4, 10*time.Millisecond) }

func (w *watch) arm(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = on
	if on {
		w.last, w.seen = time.Now(), w.events.Load()
		w.timer.Reset(w.period())
	} else {
		w.timer.Stop()
	}
}

// tick turns the events since the last tick, or bytes the kernel moved,
// into progress, and cancels the request once none came for timeout.
func (w *watch) tick() {
	w.mu.Lock()
	conn, armed := w.conn, w.armed
	w.mu.Unlock()
	if !armed {
		return
	}
	moved := conn != nil && conn.kernelMoved()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.armed {
		return
	}
	now := time.Now()
	if e := w.events.Load(); e != w.seen || moved {
		w.seen, w.last = e, now
	}
	if now.Sub(w.last) < w.timeout {
		w.timer.Reset(w.period())
		return
	}
	if conn != nil {
		conn.resetOnClose()
	}
	w.cancel(&stallError{timeout: w.timeout, last: w.last})
}

// gotConn binds the request to the connection it was given (again, when
// the transport retries on a fresh one).
func (w *watch) gotConn(info httptrace.GotConnInfo) {
	conn := info.Conn
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	wc, ok := conn.(*watchedConn)
	if !ok {
		return
	}
	wc.kernelMoved() // this request's baseline
	w.mu.Lock()
	old := w.conn
	w.conn = wc
	w.mu.Unlock()
	if old != nil {
		old.watcher.CompareAndSwap(w, nil)
	}
	wc.watcher.Store(w)
}

// release unbinds the request from its connection, which goes back to
// the pool.
func (w *watch) release() {
	w.mu.Lock()
	c := w.conn
	w.conn = nil
	w.mu.Unlock()
	if c != nil {
		c.watcher.CompareAndSwap(w, nil)
	}
}

// watchedConn is a connection that tells the request using it when bytes
// move.
type watchedConn struct {
	net.Conn
	tcp     *net.TCPConn // nil when not TCP
	watcher atomic.Pointer[watch]

	mu       sync.Mutex // guards the counters kernelMoved compares
	counters tcpCounters
}

func newWatchedConn(c net.Conn) *watchedConn {
	wc := &watchedConn{Conn: c}
	wc.tcp, _ = c.(*net.TCPConn)
	return wc
}

func (c *watchedConn) progress() {
	if w := c.watcher.Load(); w != nil {
		w.events.Add(1)
	}
}

func (c *watchedConn) Write(p []byte) (n int, err error) {
	for len(p) > 0 {
		k := min(len(p), writeChunk)
		m, err := c.Conn.Write(p[:k])
		n += m
		if m > 0 {
			c.progress()
		}
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.progress()
	}
	return n, err
}

// kernelMoved reports whether the peer acknowledged or sent bytes since
// the last call; false where the kernel does not say.
func (c *watchedConn) kernelMoved() bool {
	if c.tcp == nil {
		return false
	}
	now, ok := readTCPCounters(c.tcp)
	if !ok {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	moved := c.counters.valid && now != c.counters
	c.counters = now
	return moved
}

// resetOnClose makes the coming close send RST and drop the send queue,
// instead of leaving megabytes queued to a frozen peer.
func (c *watchedConn) resetOnClose() {
	if c.tcp != nil {
		_ = c.tcp.SetLinger(0)
	}
}

// watchedBody is a response body: each read must return within the
// timeout. Closing it ends the request's context.
type watchedBody struct {
	io.ReadCloser
	w      *watch
	ctx    context.Context
	cancel context.CancelCauseFunc
	url    string
}

func (b *watchedBody) Read(p []byte) (int, error) {
	b.w.arm(true)
	n, err := b.ReadCloser.Read(p)
	b.w.arm(false)
	if cause := context.Cause(b.ctx); err != nil && err != io.EOF && errors.Is(cause, ErrStalled) {
		err = fmt.Errorf("read body of %s: %w", b.url, cause)
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.w.arm(false)
	b.w.release()
	b.cancel(nil)
	return err
}
