package httpcache_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/httpcache"
	"nixpush/internal/servertest"
)

// TestListWithoutPROPFIND: a server that does not list (no WebDAV, or a
// static file server that answers PROPFIND like GET) is ErrCannotList,
// permanent, saying what to enable, without the URL's password.
func TestListWithoutPROPFIND(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"405", func(w http.ResponseWriter) { http.Error(w, "not allowed", http.StatusMethodNotAllowed) }},
		{"501", func(w http.ResponseWriter) { http.Error(w, "no such method", http.StatusNotImplemented) }},
		{"200 as GET", func(w http.ResponseWriter) { io.WriteString(w, "<html>an index page</html>") }},
		{"207 not DAV", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusMultiStatus)
			io.WriteString(w, `<?xml version="1.0"?><other/>`)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != "PROPFIND" {
					t.Errorf("%s sent; want PROPFIND only", r.Method)
				}
				tc.answer(w)
			})
			c := newCache(t, strings.Replace(srv.URL, "://", "://u:pw-cannot-list@", 1)+"/cache/", httpcache.Config{})
			err := c.List(t.Context(), "", func(cache.Object) error { return nil })
			if !errors.Is(err, cache.ErrCannotList) || !isPermanent(err) {
				t.Fatalf("List = %v; want a permanent ErrCannotList", err)
			}
			if !strings.Contains(err.Error(), "does not offer WebDAV listing") || !strings.Contains(err.Error(), "dav_ext_methods PROPFIND") {
				t.Errorf("List = %v; want it to say the server does not offer WebDAV listing and what to enable", err)
			}
			wantNoSecret(t, "error", err.Error(), "pw-cannot-list")
		})
	}
}

// TestListUnderPath: keys are relative to the cache URL's path, however
// the server escapes its hrefs; objects beside the cache are not listed;
// Delete takes a key listed as it is, "%" included.
func TestListUnderPath(t *testing.T) {
	t.Parallel()
	ng := servertest.StartNginx(t, "")
	base, dir := ng.URL(), ng.CacheDir
	c := newCache(t, base+"/team%20caches/main/", httpcache.Config{})
	keys := []string{"x.narinfo", "nar/a b+c.nar.zst", "realisations/sha256:ab!out.doi"}
	for _, key := range keys {
		if err := c.Put(t.Context(), key, strings.NewReader(key), cache.TypeNAR); err != nil {
			t.Fatal(err)
		}
	}
	// In the cache, a name Put cannot make; beside it, names that start as
	// the cache's do.
	const percent = "nar/50%.nar"
	keys = append(keys, percent)
	for _, p := range []string{"team caches/main/" + percent, "team caches/main2/y.narinfo", "team caches/z.narinfo"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(strings.TrimPrefix(p, "team caches/main/")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	err := c.List(t.Context(), "", func(o cache.Object) error {
		if o.Size != int64(len(o.Key)) {
			t.Errorf("%s: Size %d, want %d", o.Key, o.Size, len(o.Key))
		}
		got = append(got, o.Key)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	slices.Sort(keys)
	if !slices.Equal(got, keys) {
		t.Fatalf("List = %q, want %q", got, keys)
	}
	if err := c.Delete(t.Context(), []string{percent}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "team caches/main", percent)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after Delete(%q), stat: %v; want it gone", percent, err)
	}
}

// TestListDeleteAuthRefused: a wrong token is refused for good.
func TestListDeleteAuthRefused(t *testing.T) {
	t.Parallel()
	base := servertest.StartNginx(t, servertest.Bearer("right-token")).URL()
	c := newCache(t, base, httpcache.Config{Token: "wrong-token"})
	errList := c.List(t.Context(), "", func(cache.Object) error { return nil })
	errDelete := c.Delete(t.Context(), []string{"x.narinfo"})
	for _, err := range []error{errList, errDelete} {
		if statusOf(err) != http.StatusUnauthorized || !isPermanent(err) || !strings.Contains(fmt.Sprint(err), "NIXPUSH_TOKEN") {
			t.Errorf("error %v; want a permanent 401 naming the token's source", err)
		}
		if err != nil {
			wantNoSecret(t, "error", err.Error(), "wrong-token", "right-token")
		}
	}
}

// TestDeleteRefusesCollections: a key that would name a directory of a
// WebDAV server (and delete all of it) is refused before anything is sent.
func TestDeleteRefusesCollections(t *testing.T) {
	t.Parallel()
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("%s %s sent", r.Method, r.URL.Path)
	})
	c := newCache(t, srv.URL, httpcache.Config{})
	for _, key := range []string{"", "nar/", "/x.narinfo", "nar/../x", "nar//x", ".", "nar/."} {
		err := c.Delete(t.Context(), []string{"ok.narinfo", key})
		if err == nil || !isPermanent(err) {
			t.Errorf("Delete(%q) = %v; want a permanent error", key, err)
		}
	}
}

// TestDeleteStatus: 404 and 410 are success; a server that does not
// delete says so, for good; 503 is transient.
func TestDeleteStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code      int
		ok        bool
		permanent bool
		hint      string
	}{
		{http.StatusNoContent, true, false, ""},
		{http.StatusNotFound, true, false, ""},
		{http.StatusGone, true, false, ""},
		{http.StatusMethodNotAllowed, false, true, "dav_methods PUT DELETE"},
		{http.StatusNotImplemented, false, true, "dav_methods PUT DELETE"},
		{http.StatusForbidden, false, true, "refuses to delete"},
		{http.StatusServiceUnavailable, false, false, ""},
	} {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			t.Parallel()
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodDelete || r.URL.Path != "/c/nar/x.nar" {
					t.Errorf("%s %s; want DELETE /c/nar/x.nar", r.Method, r.URL.Path)
				}
				w.WriteHeader(tc.code)
			})
			err := newCache(t, srv.URL+"/c", httpcache.Config{}).Delete(t.Context(), []string{"nar/x.nar"})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("Delete = %v; want success", err)
			case tc.ok:
			case err == nil || isPermanent(err) != tc.permanent || statusOf(err) != tc.code:
				t.Fatalf("Delete = %v; want a %d, permanent %v", err, tc.code, tc.permanent)
			case !strings.Contains(err.Error(), tc.hint):
				t.Fatalf("Delete = %v; want a hint containing %q", err, tc.hint)
			}
		})
	}
}

// TestDeleteInFlight: many DELETEs run at once, never more than 16. The
// server holds the first ones until 16 are waiting.
func TestDeleteInFlight(t *testing.T) {
	t.Parallel()
	const limit = 16
	var (
		inFlight, most atomic.Int32
		full           = make(chan struct{})
		fullOnce       sync.Once
		deleted        sync.Map
	)
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if n == limit {
			fullOnce.Do(func() { close(full) })
		}
		select {
		case <-full:
		case <-time.After(10 * time.Second): // fewer in flight: fail, not hang
		}
		deleted.Store(r.URL.Path, true)
		w.WriteHeader(http.StatusNoContent)
	})
	var keys []string
	for i := range 3 * limit {
		keys = append(keys, fmt.Sprintf("nar/%02d.nar", i))
	}
	if err := newCache(t, srv.URL, httpcache.Config{}).Delete(t.Context(), keys); err != nil {
		t.Fatal(err)
	}
	if most.Load() != limit {
		t.Errorf("%d DELETEs in flight at most, want %d", most.Load(), limit)
	}
	for _, key := range keys {
		if _, ok := deleted.Load("/" + key); !ok {
			t.Errorf("%s not deleted", key)
		}
	}
}

// TestListMalformedAnswer: a multistatus that cannot be read is an error
// (transient: a proxy may have cut it), not a short listing.
func TestListMalformedAnswer(t *testing.T) {
	t.Parallel()
	const entry = `<D:response><D:href>%s</D:href><D:propstat><D:prop><D:getcontentlength>%s</D:getcontentlength>` +
		`<D:getlastmodified>Tue, 01 Dec 2026 01:17:21 GMT</D:getlastmodified><D:resourcetype/></D:prop>` +
		`<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>`
	for _, tc := range []struct{ name, body, want string }{
		{"bad size", fmt.Sprintf(entry, "/c/x.narinfo", "many"), "bad getcontentlength"},
		{"outside the cache", fmt.Sprintf(entry, "/elsewhere/x.narinfo", "1"), "outside the cache"},
		{"cut short", fmt.Sprintf(entry, "/c/x.narinfo", "1") + "<D:response><D:hr", "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusMultiStatus)
				io.WriteString(w, `<?xml version="1.0"?><D:multistatus xmlns:D="DAV:">`+tc.body)
			})
			listed := 0
			err := newCache(t, srv.URL+"/c", httpcache.Config{}).List(t.Context(), "", func(cache.Object) error {
				listed++
				return nil
			})
			if err == nil || isPermanent(err) || errors.Is(err, cache.ErrCannotList) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("List = %v (after %d objects); want a transient error saying %q", err, listed, tc.want)
			}
		})
	}
}
