package s3cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ErrStalled is wrapped by the error of a request that made no progress
// for Config.Timeout. It is transient: the server may come back.
var ErrStalled = errors.New("stalled")

// stallClient is the HTTP client under the SDK. It fails a request that
// makes no progress for timeout: no byte of the request body taken by
// the connection, no response headers, no byte of the response body. The
// SDK's own timers do not cover this: a frozen server accepts the
// connection (the kernel does) and some bytes, then nothing, and a body
// of any size may take as long as it takes as long as it moves. The
// clock runs while the request is sent and while a response body read
// waits, not while the caller holds a response body without reading it.
type stallClient struct {
	next    aws.HTTPClient
	timeout time.Duration
}

func (c *stallClient) Do(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watch{timeout: c.timeout, stalled: fmt.Errorf("%w: no progress for %v", ErrStalled, c.timeout)}
	w.timer = time.AfterFunc(c.timeout, func() { cancel(w.stalled) })
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &sentBody{ReadCloser: req.Body, w: w}
	}
	if getBody := req.GetBody; getBody != nil {
		// The transport resends a body on a fresh connection this way.
		req.GetBody = func() (io.ReadCloser, error) {
			b, err := getBody()
			if err != nil || b == nil || b == http.NoBody {
				return b, err
			}
			return &sentBody{ReadCloser: b, w: w}, nil
		}
	}
	resp, err := c.next.Do(req)
	w.stop()
	if err != nil {
		stalled := errors.Is(context.Cause(ctx), ErrStalled)
		cancel(nil)
		if stalled {
			// As net/http words its own errors.
			op := req.Method[:1] + strings.ToLower(req.Method[1:])
			return nil, &url.Error{Op: op, URL: req.URL.Redacted(), Err: w.stalled}
		}
		return nil, err
	}
	resp.Body = &receivedBody{ReadCloser: resp.Body, w: w, ctx: ctx, cancel: cancel, url: req.URL.Redacted()}
	return resp, nil
}

// watch is the countdown of one request.
type watch struct {
	timeout time.Duration
	stalled error // the cause the countdown cancels the request with

	mu      sync.Mutex
	timer   *time.Timer
	stopped bool // the request is sent: body reads no longer count
}

// progress restarts the countdown while the request is being sent.
func (w *watch) progress() {
	w.mu.Lock()
	if !w.stopped {
		w.timer.Reset(w.timeout)
	}
	w.mu.Unlock()
}

func (w *watch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}

// sentBody is a request body: each read by the transport is progress,
// since it reads only as the connection takes bytes.
type sentBody struct {
	io.ReadCloser
	w *watch
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.progress()
	return n, err
}

// receivedBody is a response body: each read must return within the
// timeout. Closing it ends the request's context.
type receivedBody struct {
	io.ReadCloser
	w      *watch
	ctx    context.Context
	cancel context.CancelCauseFunc
	url    string
}

func (b *receivedBody) Read(p []byte) (int, error) {
	b.w.timer.Reset(b.w.timeout)
	n, err := b.ReadCloser.Read(p)
	b.w.timer.Stop()
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), ErrStalled) {
		err = fmt.Errorf("read body of %s: %w", b.url, b.w.stalled)
	}
	return n, err
}

func (b *receivedBody) Close() error {
	err := b.ReadCloser.Close()
	b.w.timer.Stop()
	b.cancel(nil)
	return err
}
