package httpcache_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/httpcache"
	"nixpush/internal/servertest"
)

// Behaviour that only a real server can show, against nginx.

// TestNginxFailedPutLeavesNothing: nginx discards a chunked body that
// breaks off, so after a failing reader there is no object, not even a
// partial one, and no temp file either; a later Put of the same key works.
func TestNginxFailedPutLeavesNothing(t *testing.T) {
	t.Parallel()
	ng := servertest.StartNginx(t, "")
	base, dir := ng.URL(), ng.CacheDir
	c := newCache(t, base, httpcache.Config{})
	ctx := t.Context()
	boom := errors.New("reader failed on purpose")
	for _, key := range []string{"nar/failed.nar.zst", "failed.narinfo"} {
		err := c.Put(ctx, key, failingReader(8<<20, boom), cache.TypeNAR)
		if !errors.Is(err, boom) {
			t.Fatalf("Put(%s) = %v, want the reader's error", key, err)
		}
		if ok, err := c.Exists(ctx, key); ok || err != nil {
			t.Errorf("Exists(%s) after a failed Put = %v, %v", key, ok, err)
		}
		if _, err := os.Stat(filepath.Join(dir, key)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s on disk after a failed Put: %v", key, err)
		}
	}
	// nginx deletes the temp file once it notices the broken connection.
	tmp := ng.UploadTempDir()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := os.ReadDir(tmp)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx still holds %d temp files of failed uploads in %s", len(left), tmp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Put(ctx, "nar/failed.nar.zst", &patternReader{n: 1 << 20}, cache.TypeNAR); err != nil {
		t.Fatalf("Put after a failed one: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "nar/failed.nar.zst")); err != nil || fi.Size() != 1<<20 {
		t.Errorf("object after a successful Put: %v", err)
	}
}

// TestNginxWrongToken: nginx refuses a wrong bearer token with 401; the
// error is permanent, says what to fix, and holds no token.
func TestNginxWrongToken(t *testing.T) {
	t.Parallel()
	const good, bad = "right-token-1234", "wrong-token-5678"
	ng := servertest.StartNginx(t, servertest.Bearer(good))
	base, dir := ng.URL(), ng.CacheDir
	for _, cfg := range []httpcache.Config{{Token: bad}, {}} {
		c := newCache(t, base, cfg)
		// nginx answers 401 on the headers and discards the 32 MiB body.
		err := c.Put(t.Context(), "nar/x.nar", &patternReader{n: 32 << 20}, cache.TypeNAR)
		if !isPermanent(err) || statusOf(err) != 401 {
			t.Fatalf("Put with token %q = %v, want a permanent 401", cfg.Token, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "401 Unauthorized from PUT "+base+"/nar/x.nar: ") ||
			!strings.Contains(msg, map[bool]string{true: "check the token in NIXPUSH_TOKEN", false: "no credentials were sent"}[cfg.Token != ""]) {
			t.Errorf("message %q does not say what to fix", msg)
		}
		wantNoSecret(t, "error", msg, good, bad)
		if _, err := c.Exists(t.Context(), "nar/x.nar"); !isPermanent(err) || statusOf(err) != 401 {
			t.Errorf("Exists with a refused token = %v, want a permanent 401", err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("refused uploads left %d entries in the cache", len(entries))
	}
	ok := newCache(t, base, httpcache.Config{Token: good})
	if err := ok.Put(t.Context(), "nar/x.nar", &patternReader{n: 10}, cache.TypeNAR); err != nil {
		t.Errorf("Put with the right token: %v", err)
	}
}

// TestNginxStopped: once the server is gone, errors are transient.
func TestNginxStopped(t *testing.T) {
	t.Parallel()
	var base string
	t.Run("server", func(t *testing.T) {
		base = servertest.StartNginx(t, "").URL()
	}) // nginx stops at the end of the subtest
	c := newCache(t, base, httpcache.Config{})
	if _, err := c.Exists(t.Context(), "x.narinfo"); err == nil || isPermanent(err) {
		t.Errorf("Exists on a stopped server = %v, want a transient error", err)
	}
}
