package httpcache_test

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"nixpush/cache"
	"nixpush/cache/cachetest"
	"nixpush/cache/httpcache"
	"nixpush/internal/servertest"
)

// The conformance suite runs against a real nginx: open, with a bearer
// token from a file, and with basic auth from the URL's user info.
// cachetest.Secrets is global, so these tests do not run in parallel.

func TestConformance(t *testing.T) {
	cachetest.Secrets = nil
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		base := servertest.StartNginx(t, "").URL()
		return newCache(t, base, httpcache.Config{})
	})
}

func TestConformanceBearerToken(t *testing.T) {
	const token = "s3cret-token-for-conformance"
	cachetest.Secrets = []string{token}
	t.Cleanup(func() { cachetest.Secrets = nil })
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		base := servertest.StartNginx(t, servertest.Bearer(token)).URL()
		file := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(file, []byte("  "+token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return newCache(t, base, httpcache.Config{TokenFile: file})
	})
}

func TestConformanceBasicAuthInURL(t *testing.T) {
	const user, pass = "pusher", "pa55word-in-url"
	cachetest.Secrets = []string{pass}
	t.Cleanup(func() { cachetest.Secrets = nil })
	cachetest.Run(t, func(t *testing.T) cache.Cache {
		base := servertest.StartNginx(t, servertest.Basic(user, pass)).URL()
		u, _ := url.Parse(base)
		u.User = url.UserPassword(user, pass)
		return newCache(t, u.String()+"/", httpcache.Config{})
	})
}

func newCache(t testing.TB, rawURL string, cfg httpcache.Config) *httpcache.Cache {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NetrcFile == "" {
		cfg.NetrcFile = os.DevNull // never the machine's ~/.netrc
	}
	c, err := httpcache.New(u, cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", u.Redacted(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
