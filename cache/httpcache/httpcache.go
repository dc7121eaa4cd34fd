// Package httpcache is the http:// and https:// cache backend: a binary
// cache behind any web server that answers GET and HEAD and stores PUT
// bodies (nginx with WebDAV PUT, a static file server behind an upload
// proxy, ...), laid out as Nix's own HTTP binary cache store expects it.
//
// Bodies are streamed: a NAR goes out with chunked transfer encoding as
// it is produced, and a reader that fails mid-body aborts the request, so
// the server never completes the upload and stores nothing.
package httpcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nixpush/cache"
)

var _ cache.Cache = (*Cache)(nil)

// Cache is a binary cache at an HTTP(S) URL. It is safe for concurrent
// use; all requests share one pool of connections.
type Cache struct {
	base    *url.URL // scheme, host and path; no user info, query or trailing slash
	name    string   // base as a string, for messages
	client  *http.Client
	auth    credentials
	timeout time.Duration // a body read that makes no progress this long fails

	limiter  *cache.Limiter // the host's, shared by every Cache of it in the process
	requests *cache.RequestCounter
}

// New returns the cache at u (http or https). Credentials come from cfg
// or, failing that, from u's user info or a netrc file; see Config.
// Settings in u's query (Nix store settings) are ignored here. Bad
// configuration (unreadable token file, bad CA file, wrong scheme) is a
// permanent error. New does not contact the server.
func New(u *url.URL, cfg Config) (*Cache, error) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, permanent(fmt.Errorf("cache URL scheme %q is not http or https", u.Scheme))
	}
	if u.Host == "" {
		return nil, permanent(fmt.Errorf("cache URL %s has no host", redacted(u)))
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: strings.TrimSuffix(u.Path, "/")}
	if u.RawPath != "" {
		base.RawPath = strings.TrimSuffix(u.RawPath, "/")
	}
	auth, err := cfg.credentials(u)
	if err != nil {
		return nil, permanent(err)
	}
	tr, err := cfg.transport()
	if err != nil {
		return nil, permanent(err)
	}
	limiter, requests := cache.LimiterFor(base.Scheme+"://"+base.Host), &cache.RequestCounter{}
	return &Cache{
		base:     base,
		name:     base.String(),
		client:   &http.Client{Transport: &limitedTransport{next: tr, limiter: limiter, requests: requests}, CheckRedirect: checkRedirect},
		auth:     auth,
		timeout:  cfg.stallTimeout(),
		limiter:  limiter,
		requests: requests,
	}, nil
}

// String is the cache URL without credentials or settings.
func (c *Cache) String() string { return c.name }

// checkRedirect follows redirects of HEAD and GET as a browser would, but
// never of PUT: Go would turn a PUT answered 301 or 302 into a GET of the
// new location, and its 200 would look like a successful upload. The
// redirect itself comes back to Put, which names the URL to use instead.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if via[0].Method == http.MethodPut {
		return http.ErrUseLastResponse
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// Requests is what this cache has sent, by kind, with the throttled
// answers and the bound its host's Limiter holds now.
func (c *Cache) Requests() cache.Requests {
	r := c.requests.Snapshot()
	r.Limit = c.limiter.Limit()
	return r
}

// Close releases idle connections.
func (c *Cache) Close() error {
	c.client.CloseIdleConnections()
	return nil
}

// objectURL is the URL of one object, keys being relative paths such as
// "nar/<hash>.nar.zst".
func (c *Cache) objectURL(key string) string {
	return c.base.JoinPath(key).String()
}

func (c *Cache) newRequest(ctx context.Context, method, key string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.objectURL(key), body)
	if err != nil {
		return nil, permanent(fmt.Errorf("%s %s/%s: %w", method, c.name, key, err))
	}
	req.Header.Set("User-Agent", "nixpush")
	c.auth.apply(req)
	return req, nil
}

// do sends req and classifies a failure to get any response.
func (c *Cache) do(req *http.Request) (*http.Response, error) {
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportError(req, err)
	}
	return resp, nil
}

// Exists sends HEAD. Like Nix, it takes 403 as well as 404 (and 410) for
// "missing": S3-style servers answer 403 for objects that do not exist.
func (c *Cache) Exists(ctx context.Context, key string) (bool, error) {
	req, err := c.newRequest(ctx, http.MethodHead, key, nil)
	if err != nil {
		return false, err
	}
	resp, err := c.do(req)
	if err != nil {
		return false, err
	}
	discard(resp)
	switch {
	case resp.StatusCode/100 == 2:
		return true, nil
	case isMissing(resp.StatusCode):
		return false, nil
	}
	return false, c.statusError(req, resp)
}

// Get sends GET; a 404, 410 or 403 answer is cache.ErrNotFound.
// The body streams from the connection as the caller reads it.
func (c *Cache) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := c.newRequest(ctx, http.MethodGet, key, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp, err := c.do(req)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	switch {
	case resp.StatusCode/100 == 2:
		return &stallBody{ReadCloser: resp.Body, ctx: ctx, cancel: cancel, timeout: c.timeout}, nil
	case isMissing(resp.StatusCode):
		discard(resp)
		cancel(nil)
		return nil, fmt.Errorf("%s/%s: %w", c.name, key, cache.ErrNotFound)
	}
	err = c.statusError(req, resp)
	discard(resp)
	cancel(nil)
	return nil, err
}

// errStalled ends a body read that made no progress for the timeout.
var errStalled = errors.New("stalled: no progress")

// stallBody fails a read that waits longer than timeout for the server:
// the connection's reads have no deadline (an idle pooled connection
// waits in a read), so a server that stops mid-body is caught here. The
// clock runs only while a Read waits, not while the caller holds the body.
type stallBody struct {
	io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
}

func (b *stallBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.timeout, func() { b.cancel(errStalled) })
	n, err := b.ReadCloser.Read(p)
	t.Stop()
	if err != nil && errors.Is(context.Cause(b.ctx), errStalled) {
		err = fmt.Errorf("read body: %w for %s", errStalled, b.timeout)
	}
	return n, err
}

func (b *stallBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
}

func isMissing(code int) bool {
	return code == http.StatusNotFound || code == http.StatusGone || code == http.StatusForbidden
}

// discard reads a little of an unwanted body so the connection can be
// reused, and closes it.
func discard(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// Put sends PUT with Content-Type contentType and returns once the server
// has answered 2xx, i.e. has the whole object. A small in-memory body
// (*bytes.Reader, *strings.Reader, *bytes.Buffer up to 1 MiB: narinfos,
// nix-cache-info) is copied and sent with a Content-Length; any other
// reader is streamed with chunked encoding, never buffered whole. If r
// fails, the request is aborted before the body's end (the connection or
// HTTP/2 stream is reset), so the server stores nothing, and Put returns
// r's error wrapped. r is never read after Put returns.
func (c *Cache) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	switch m := r.(type) {
	case *bytes.Reader, *strings.Reader, *bytes.Buffer:
		if m.(interface{ Len() int }).Len() <= smallBody {
			// A copy, because the HTTP transport may still read a
			// body after Do returns.
			b, _ := io.ReadAll(r) // cannot fail
			return c.putBytes(ctx, key, b, contentType)
		}
	}
	return c.putStream(ctx, key, r, contentType)
}

const smallBody = 1 << 20

func (c *Cache) putBytes(ctx context.Context, key string, b []byte, contentType string) error {
	req, err := c.newRequest(ctx, http.MethodPut, key, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer discard(resp)
	if resp.StatusCode/100 != 2 {
		return c.statusError(req, resp)
	}
	return nil
}

// putStream feeds r to the request through a pipe from a goroutine of its
// own. The pipe is what lets Put keep its promise that r is not read after
// it returns: the HTTP transport may go on reading a request body after
// Do returns, but it reads the pipe, and Put waits for the goroutine,
// which stops at once when the pipe is closed.
func (c *Cache) putStream(ctx context.Context, key string, r io.Reader, contentType string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	req, err := c.newRequest(ctx, http.MethodPut, key, pr)
	if err != nil {
		return err
	}
	req.ContentLength = -1 // unknown: chunked
	req.Header.Set("Content-Type", contentType)

	src := &cache.SourceReader{R: r}
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, src)
		if src.Err != nil {
			// Abort, don't end, the body: the server must never see a
			// complete request. Closing the pipe with an error makes the
			// transport drop the connection (HTTP/1) or reset the stream
			// (HTTP/2); cancelling covers a transport busy elsewhere.
			pw.CloseWithError(src.Err)
			cancel()
		} else {
			pw.Close()
		}
		copied <- err
	}()

	resp, err := c.client.Do(req)
	pr.CloseWithError(errBodyNotSent) // unblocks the copier if the server stopped reading
	copyErr := <-copied
	if src.Err != nil {
		if resp != nil {
			resp.Body.Close()
		}
		return fmt.Errorf("upload %s/%s: %w", c.name, key, src.Err)
	}
	if err != nil {
		return c.transportError(req, err)
	}
	defer discard(resp)
	if resp.StatusCode/100 != 2 {
		return c.statusError(req, resp)
	}
	if copyErr != nil {
		// A 2xx before the whole body was sent: the server cannot have
		// stored all of it.
		return fmt.Errorf("PUT %s/%s: server answered %s before the whole body was sent", c.name, key, resp.Status)
	}
	return nil
}

var errBodyNotSent = errors.New("request finished before its body was sent")
