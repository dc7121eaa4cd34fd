package httpcache

import (
	"errors"
	"io"
	"net/http"
	"time"

	"nixpush/cache"
	"nixpush/retry"
)

// throttledStatus reports an answer that asks for fewer requests: 429
// always, 503 when it names a Retry-After (a bare 503 from a web server
// is more often an outage than load).
func throttledStatus(resp *http.Response) (bool, time.Duration) {
	after := retryAfter(resp.Header.Get("Retry-After"), time.Now())
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return true, after
	case resp.StatusCode == http.StatusServiceUnavailable && after > 0:
		return true, after
	}
	return false, 0
}

// limitedTransport is the cache's one way out: it counts every request
// by kind, keeps the requests in flight to the host within the host's
// cache.Limiter, and waits out a throttled answer and sends the request
// again (retry.Throttle) when its body can be sent again: every request
// but a streamed NAR, whose throttled answer goes back to the uploader,
// which produces the NAR afresh. Throttling is thus never a failure of a
// path.
type limitedTransport struct {
	next     http.RoundTripper
	limiter  *cache.Limiter
	requests *cache.RequestCounter
}

// errThrottledAnswer stands for a throttled answer inside the Limiter.
var errThrottledAnswer = errors.New("throttled")

func (t *limitedTransport) send(req *http.Request) (*http.Response, error) {
	t.requests.Count(cache.RequestKind(req.Method, req.URL))
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if ok, after := throttledStatus(resp); ok {
		t.requests.CountThrottled()
		return resp, retry.Throttled(errThrottledAnswer, after)
	}
	return resp, nil
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		var resp *http.Response
		err := t.limiter.Once(ctx, func() (err error) {
			resp, err = t.send(req)
			return err
		})
		if retry.IsThrottled(err) {
			return resp, nil // statusError marks it throttled for the caller
		}
		return resp, err
	}
	var resp *http.Response
	sent := false
	err := t.limiter.Do(ctx, func() error {
		r := req
		if sent && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		sent = true
		var err error
		resp, err = t.send(r)
		if retry.IsThrottled(err) {
			// Read a little, so the connection can serve the next try.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// CloseIdleConnections closes the idle connections of the transport
// beneath (http.Client.CloseIdleConnections looks for this method).
func (t *limitedTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
