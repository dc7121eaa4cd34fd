package httpcache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"nixpush/retry"
)

// RetryAfterError is implemented by errors that carry the server's
// Retry-After: how long it asked clients to wait before trying again.
// Match it with errors.As; a zero RetryAfter means the server named no
// delay.
type RetryAfterError interface {
	error
	RetryAfter() time.Duration
}

var _ RetryAfterError = (*StatusError)(nil)

// StatusError is an HTTP answer that is neither success nor, for HEAD and
// GET, "missing". Permanent ones (auth refused, bad location, other 4xx
// to a PUT) come wrapped with retry.Permanent; errors.As finds the
// StatusError inside either way.
type StatusError struct {
	Method  string        // "PUT"
	URL     string        // the object's URL, without credentials
	Code    int           // 503
	Status  string        // "503 Service Unavailable"
	Wait    time.Duration // from Retry-After; 0 when absent
	Message string        // the server's own one-line text/plain explanation, if any
	Hint    string        // what to fix, for permanent errors
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s from %s %s", e.Status, e.Method, e.URL)
	if e.Message != "" {
		fmt.Fprintf(&b, " (%q)", e.Message)
	}
	if e.Hint != "" {
		b.WriteString(": " + e.Hint)
	}
	if e.Wait > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.Wait)
	}
	return b.String()
}

// RetryAfter is the server's Retry-After, 0 when it sent none.
func (e *StatusError) RetryAfter() time.Duration { return e.Wait }

func permanent(err error) error { return retry.Permanent(err) }

// statusError classifies an unwanted answer. 401 anywhere, and 403, 404
// and every other 4xx to a PUT are permanent, with a hint on what to fix;
// 408, 425, 429 and 5xx are transient (but 501: the server will not
// learn PUT by itself).
func (c *Cache) statusError(req *http.Request, resp *http.Response) error {
	code, put := resp.StatusCode, req.Method == http.MethodPut
	e := &StatusError{
		Method:  req.Method,
		URL:     redacted(req.URL),
		Code:    code,
		Status:  resp.Status,
		Wait:    retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Message: c.auth.redact(serverMessage(resp)),
	}
	if e.Status == "" {
		e.Status = strconv.Itoa(code)
	}
	switch {
	case code == http.StatusUnauthorized, code == http.StatusForbidden && put:
		e.Hint = c.auth.refused(put)
	case code == http.StatusProxyAuthRequired:
		e.Hint = "the proxy wants credentials: check HTTPS_PROXY / HTTP_PROXY"
	case code == http.StatusTooManyRequests, code == http.StatusServiceUnavailable && e.Wait > 0:
		// Only a streamed body's answer gets here (limitedTransport waits
		// out the others): the uploader produces the NAR again and
		// retries it as throttling, spending no attempt.
		return retry.Throttled(e, e.Wait)
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly:
		return e
	case code == http.StatusNotImplemented && put, code == http.StatusMethodNotAllowed && put:
		e.Hint = "the server does not accept uploads here: enable PUT (nginx: dav_methods PUT) or check the cache URL"
	case code >= 500:
		return e
	case code == http.StatusNotFound && put:
		e.Hint = "the server has no such location: check the cache URL, or let the server create directories (nginx: create_full_put_path on)"
	case code == http.StatusLengthRequired:
		e.Hint = "the server wants a Content-Length, but NARs are streamed with chunked encoding: allow chunked request bodies"
	case code == http.StatusRequestEntityTooLarge:
		e.Hint = "the server refuses a body this large: raise its limit (nginx: client_max_body_size 0)"
	case code/100 == 3 && put:
		loc := resp.Header.Get("Location")
		if l, err := req.URL.Parse(loc); err == nil {
			loc = redacted(l)
		}
		e.Hint = fmt.Sprintf("the server redirects to %s: use the final URL as the cache URL", c.auth.redact(loc))
	case code/100 == 4:
		// Another client error: the same request will get the same answer.
	default:
		return e // an unexpected 1xx or 3xx: let a retry see
	}
	return permanent(e)
}

// retryAfter parses Retry-After: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s < 0 || s > int64(365*24*time.Hour/time.Second) {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// serverMessage is the first line of a short text/plain body, which
// upload servers use to say why they refused; HTML error pages are noise.
func serverMessage(resp *http.Response) string {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != "text/plain" {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	line = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, line))
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	return line
}

// transportError classifies a request that got no answer. Such failures
// (refused or reset connections, DNS, timeouts) are transient, except
// for TLS setups that cannot work until someone changes them.
func (c *Cache) transportError(req *http.Request, err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err // its message repeats the URL
	}
	werr := fmt.Errorf("%s %s: %w", req.Method, redacted(req.URL), err)
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		notTLS    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		return permanent(fmt.Errorf("%w: pass the CA that signed the server's certificate with --ca-cert", werr))
	case errors.As(err, &badHost):
		return permanent(fmt.Errorf("%w: the certificate is not for this host; check the cache URL", werr))
	case errors.As(err, &notTLS), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return permanent(fmt.Errorf("%w: the server does not speak TLS; use http://", werr))
	}
	return werr
}

// redacted is a URL without user info or query, safe to show.
func redacted(u *url.URL) string {
	c := *u
	c.User, c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = nil, "", false, "", ""
	return c.String()
}
