package servertest

import (
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// S3Proxy is an HTTP proxy in front of an S3 server (versitygw) that
// counts what passes, by S3 operation, and throttles as a busy S3 does:
// a share of requests answered 503 SlowDown, and bursts during which
// every request is answered 429 with Retry-After. Throttled requests are
// answered by the proxy and never reach the server. toxiproxy cannot do
// this: it moves bytes and cannot answer HTTP.
//
// The proxy keeps the client's Host header, which SigV4 signs: clients
// (nixpush, Nix) are pointed at the proxy's address with path-style
// requests and their signatures stay valid at the server.
type S3Proxy struct {
	Addr string // 127.0.0.1:PORT

	srv      *http.Server
	upstream *url.URL

	mu      sync.Mutex
	faults  Throttling
	since   time.Time // when faults were set: bursts count from then
	rng     *rand.Rand
	ops     map[string]int64 // requests that reached the server, by operation
	trail   []string         // "OPERATION /bucket/key" of the first maxTrail of them
	errors  []string         // requests the server could not be asked (502)
	refused map[string]int64 // throttled answers, by status ("503", "429")
	ok      map[string]int64 // requests the server answered 2xx, by operation
	sent    atomic.Int64     // request body bytes that reached the server
}

// Throttling is what the proxy refuses. The zero value passes everything.
type Throttling struct {
	SlowDown float64 // share of requests answered 503 SlowDown (0.05: 5 %)
	// Every BurstEvery, for BurstFor, every request is answered 429 with
	// Retry-After: RetryAfter seconds (0: no bursts).
	BurstEvery, BurstFor time.Duration
	RetryAfter           int
	Seed                 uint64 // of the random choice of SlowDown answers
}

// StartS3Proxy serves a proxy to the S3 server at upstream (host:port).
func StartS3Proxy(upstream string) (*S3Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("s3 proxy: %w", err)
	}
	p := &S3Proxy{Addr: ln.Addr().String(), upstream: &url.URL{Scheme: "http", Host: upstream},
		ops: map[string]int64{}, refused: map[string]int64{}, ok: map[string]int64{}, rng: rand.New(rand.NewPCG(1, 2))}
	rp := httputil.NewSingleHostReverseProxy(p.upstream) // keeps the Host header
	rp.FlushInterval = -1                                // stream bodies as they come
	rp.ErrorLog = log.New(io.Discard, "", 0)             // a client that gives up is no news
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		p.mu.Lock()
		p.errors = append(p.errors, fmt.Sprintf("%s %s: %v", r.Method, r.URL.Path, err))
		p.mu.Unlock()
		// A transparent hop: the server's reset (versitygw refusing a
		// conditional PUT mid-body) reaches the client as a reset, not
		// as a 502 no server sent.
		if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			conn.Close()
			return
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, retryAfter := p.throttle(); status != 0 {
			p.refuse(w, r, status, retryAfter)
			return
		}
		op := S3Operation(r.Method, r.URL, r.Header)
		p.count(op, r.URL.Path)
		if r.Body != nil {
			r.Body = &countingBody{ReadCloser: r.Body, n: &p.sent}
		}
		sw := &statusWriter{ResponseWriter: w}
		rp.ServeHTTP(sw, r)
		if sw.status >= 200 && sw.status < 300 {
			p.mu.Lock()
			p.ok[op]++
			p.mu.Unlock()
		}
	}), ReadHeaderTimeout: time.Minute}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Close stops the proxy and its connections.
func (p *S3Proxy) Close() { _ = p.srv.Close() }

// SetThrottling replaces what the proxy refuses; the first burst starts
// now.
func (p *S3Proxy) SetThrottling(t Throttling) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults, p.since = t, time.Now()
	p.rng = rand.New(rand.NewPCG(t.Seed, t.Seed^0x9e3779b97f4a7c15))
}

// throttle decides a request's fate: 0, or the status to refuse it with.
func (p *S3Proxy) throttle() (status, retryAfter int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.faults
	if f.BurstEvery > 0 && time.Since(p.since)%f.BurstEvery < f.BurstFor {
		p.refused["429"]++
		return http.StatusTooManyRequests, f.RetryAfter
	}
	if f.SlowDown > 0 && p.rng.Float64() < f.SlowDown {
		p.refused["503"]++
		return http.StatusServiceUnavailable, 0
	}
	return 0, 0
}

// refuse answers as S3 does, in its XML error format.
func (p *S3Proxy) refuse(w http.ResponseWriter, r *http.Request, status, retryAfter int) {
	code, msg := "SlowDown", "Please reduce your request rate."
	if status == http.StatusTooManyRequests {
		code, msg = "TooManyRequests", "Too many requests, try again later."
		w.Header().Set("Retry-After", fmt.Sprint(retryAfter))
	}
	// The body is read to its end first: answering before it would reset
	// the connection under a client still sending, and the client would
	// see a broken connection instead of the answer.
	_, _ = io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>proxy</RequestId></Error>`, code, msg)
	}
}

// maxTrail bounds the requests Trail keeps.
const maxTrail = 10000

func (p *S3Proxy) count(op, path string) {
	p.mu.Lock()
	p.ops[op]++
	if len(p.trail) < maxTrail {
		p.trail = append(p.trail, op+" "+path)
	}
	p.mu.Unlock()
}

// Trail is the requests that reached the server since the last Reset,
// as "OPERATION /bucket/key", the first ten thousand: what a test shows
// when a count is off.
func (p *S3Proxy) Trail() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.trail...)
}

// Counts is a snapshot of the requests that reached the server, by S3
// operation ("PutObject", "UploadPart", "HeadObject", ...).
func (p *S3Proxy) Counts() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int64, len(p.ops))
	for k, v := range p.ops {
		out[k] = v
	}
	return out
}

// Answered is how many requests of the S3 operation op the server
// answered with success: an UploadPart answered is a part the server
// keeps, whatever the client does next.
func (p *S3Proxy) Answered(op string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ok[op]
}

// Refused is how many requests the proxy answered itself, by status.
func (p *S3Proxy) Refused() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return map[string]int64{"503": p.refused["503"], "429": p.refused["429"]}
}

// Errors are the requests that could not be passed on to the server
// (their connection reset), with why.
func (p *S3Proxy) Errors() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.errors...)
}

// BytesSent is how many request body bytes reached the server.
func (p *S3Proxy) BytesSent() int64 { return p.sent.Load() }

// Reset zeroes the counts (not the throttling).
func (p *S3Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops, p.refused, p.ok, p.trail = map[string]int64{}, map[string]int64{}, map[string]int64{}, nil
	p.sent.Store(0)
}

// statusWriter notes the status the server answered (0: none, the
// connection was reset).
type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (flush, hijack).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// S3Operation names the S3 operation of a path-style request from its
// method, query and headers, as S3's documentation names them.
func S3Operation(method string, u *url.URL, h http.Header) string {
	q := u.Query()
	parts := strings.SplitN(strings.TrimPrefix(u.Path, "/"), "/", 2)
	onBucket := len(parts) < 2 || parts[1] == ""
	switch method {
	case http.MethodPut:
		switch {
		case q.Has("partNumber") && q.Has("uploadId"):
			return "UploadPart"
		case h.Get("X-Amz-Copy-Source") != "":
			return "CopyObject"
		case onBucket:
			return "CreateBucket"
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case q.Has("uploadId"):
			return "CompleteMultipartUpload"
		case q.Has("delete"):
			return "DeleteObjects"
		}
		return "Post"
	case http.MethodDelete:
		if q.Has("uploadId") {
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	case http.MethodHead:
		if onBucket {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodGet:
		switch {
		case q.Has("uploadId"):
			return "ListParts"
		case q.Has("uploads"):
			return "ListMultipartUploads"
		case onBucket && q.Get("list-type") == "2":
			return "ListObjectsV2"
		case onBucket:
			return "ListObjects"
		}
		return "GetObject"
	}
	return method
}
