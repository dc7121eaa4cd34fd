package httpcache_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"

	"nixpush/cache/httpcache"
)

func isPermanent(err error) bool {
	var p *backoff.PermanentError
	return errors.As(err, &p)
}

// statusOf returns the HTTP status inside err, or 0.
func statusOf(err error) int {
	var se *httpcache.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func mustParse(t testing.TB, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// server runs handler on an HTTP/1.1 test server for the test.
func server(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

// patternReader yields n deterministic bytes without allocating, and
// hides any io.WriterTo a real source might have.
type patternReader struct {
	n, off int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rem := p.n - p.off; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*0x9E3779B1>>24) ^ byte(x)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// failingReader yields size bytes, then fails with err.
func failingReader(size int64, err error) io.Reader {
	return io.MultiReader(&patternReader{n: size}, errReader{err})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// wantNoSecret fails when s contains any of secrets.
func wantNoSecret(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if strings.Contains(s, secret) {
			t.Errorf("%s contains the secret %q: %s", what, secret, s)
		}
	}
}
