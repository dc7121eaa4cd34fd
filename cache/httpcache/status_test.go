package httpcache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/httpcache"
	"nixpush/retry"
)

// TestStatusClassification checks how every kind of answer comes back
// from each method: found, missing, transient (with Retry-After) or
// permanent, and with what advice.
func TestStatusClassification(t *testing.T) {
	t.Parallel()
	type want struct {
		ok        bool   // no error
		exists    bool   // HEAD only
		notFound  bool   // GET only
		permanent bool   // an error wrapped with retry.Permanent
		wait      int    // RetryAfter in seconds
		hint      string // in the message
	}
	tests := []struct {
		method     string
		code       int
		retryAfter string
		want       want
	}{
		{"HEAD", 200, "", want{ok: true, exists: true}},
		{"HEAD", 204, "", want{ok: true, exists: true}},
		{"HEAD", 404, "", want{ok: true}},
		{"HEAD", 403, "", want{ok: true}}, // as Nix: S3 says 403 for missing keys
		{"HEAD", 410, "", want{ok: true}},
		{"PUT", 201, "", want{ok: true}},
		{"PUT", 204, "", want{ok: true}},
		{"GET", 404, "", want{notFound: true}},
		{"GET", 403, "", want{notFound: true}},
		{"HEAD", 500, "", want{}},
		{"GET", 502, "", want{}},
		{"PUT", 500, "", want{}},
		{"PUT", 504, "", want{}},
		{"PUT", 507, "", want{}}, // a full disk can be fixed while the queue waits
		{"PUT", 408, "", want{}},
		// 429 and 503 with Retry-After: TestThrottled.
		{"PUT", 503, "", want{}},
		{"PUT", 401, "", want{permanent: true, hint: "--token-file"}},
		{"HEAD", 401, "", want{permanent: true, hint: "--token-file"}},
		{"GET", 401, "", want{permanent: true, hint: "--token-file"}},
		{"PUT", 403, "", want{permanent: true, hint: "--token-file"}},
		{"PUT", 404, "", want{permanent: true, hint: "create_full_put_path"}},
		{"PUT", 405, "", want{permanent: true, hint: "dav_methods PUT"}},
		{"PUT", 501, "", want{permanent: true, hint: "dav_methods PUT"}},
		{"PUT", 413, "", want{permanent: true, hint: "client_max_body_size"}},
		{"PUT", 411, "", want{permanent: true, hint: "chunked"}},
		{"PUT", 400, "", want{permanent: true}},
		{"HEAD", 400, "", want{permanent: true}},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			if stream && tt.method != "PUT" {
				continue
			}
			name := fmt.Sprintf("%s %d", tt.method, tt.code)
			if stream {
				name += " streamed"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				srv := server(t, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					if tt.retryAfter != "" {
						w.Header().Set("Retry-After", tt.retryAfter)
					}
					if r.Method == tt.method {
						w.WriteHeader(tt.code)
					}
				})
				c := newCache(t, srv.URL, httpcache.Config{})
				ctx := t.Context()
				var err error
				switch tt.method {
				case "HEAD":
					var ok bool
					ok, err = c.Exists(ctx, "x.narinfo")
					if ok != tt.want.exists {
						t.Errorf("Exists = %v, want %v", ok, tt.want.exists)
					}
				case "GET":
					var r io.ReadCloser
					r, err = c.Get(ctx, "x.narinfo")
					if err == nil {
						r.Close()
					}
					if errors.Is(err, cache.ErrNotFound) != tt.want.notFound {
						t.Errorf("Get error %v; want ErrNotFound: %v", err, tt.want.notFound)
					}
				case "PUT":
					var body io.Reader = strings.NewReader("StorePath: x\n")
					if stream {
						body = &patternReader{n: 1 << 20}
					}
					err = c.Put(ctx, "x.narinfo", body, cache.TypeNarInfo)
				}
				if tt.want.notFound {
					if isPermanent(err) {
						t.Errorf("error %v is permanent", err)
					}
					return
				}
				if tt.want.ok {
					if err != nil {
						t.Fatalf("error %v, want none", err)
					}
					return
				}
				if err == nil {
					t.Fatal("no error")
				}
				if statusOf(err) != tt.code {
					t.Errorf("error %v does not carry status %d", err, tt.code)
				}
				if isPermanent(err) != tt.want.permanent {
					t.Errorf("error %v: permanent = %v, want %v", err, isPermanent(err), tt.want.permanent)
				}
				var ra httpcache.RetryAfterError
				if !errors.As(err, &ra) || ra.RetryAfter() != time.Duration(tt.want.wait)*time.Second {
					t.Errorf("error %v: RetryAfter want %ds", err, tt.want.wait)
				}
				if !strings.Contains(err.Error(), tt.want.hint) || !strings.Contains(err.Error(), srv.URL+"/x.narinfo") {
					t.Errorf("error %q should name the URL and say %q", err, tt.want.hint)
				}
				if errors.Is(err, cache.ErrNotFound) {
					t.Errorf("error %v is ErrNotFound", err)
				}
			})
		}
	}
}

// TestThrottled: an answer that asks to slow down (429, 503 with
// Retry-After) is waited out as the server asks and the request sent
// again, never returned as a failure; only a streamed body, which cannot
// be sent twice, comes back as a throttled error (the uploader produces
// the NAR again), with the server's Retry-After.
func TestThrottled(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		method, status string
		stream         bool
	}{
		{"HEAD", "429", false}, {"GET", "503", false}, {"PUT", "429", false}, {"PUT", "503", false},
		{"DELETE", "429", false}, {"PUT", "429", true},
	} {
		t.Run(fmt.Sprintf("%s %s stream=%v", tc.method, tc.status, tc.stream), func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			answered := 0
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				defer mu.Unlock()
				if answered++; answered == 1 {
					w.Header().Set("Retry-After", "1")
					code, _ := strconv.Atoi(tc.status)
					w.WriteHeader(code)
				}
			})
			c := newCache(t, srv.URL, httpcache.Config{})
			ctx := t.Context()
			start := time.Now()
			var err error
			switch tc.method {
			case "HEAD":
				_, err = c.Exists(ctx, "x.narinfo")
			case "GET":
				var r io.ReadCloser
				if r, err = c.Get(ctx, "x.narinfo"); err == nil {
					r.Close()
				}
			case "DELETE":
				err = c.Delete(ctx, []string{"x.narinfo"})
			case "PUT":
				var body io.Reader = strings.NewReader("StorePath: x\n")
				if tc.stream {
					body = &patternReader{n: 1 << 20}
				}
				err = c.Put(ctx, "x.narinfo", body, cache.TypeNarInfo)
			}
			if req := c.Requests(); req.Throttled != 1 {
				t.Errorf("%d throttled answers counted, want 1", req.Throttled)
			}
			if tc.stream {
				if !retry.IsThrottled(err) || retry.RetryAfter(err) != time.Second || statusOf(err) != 429 || isPermanent(err) {
					t.Errorf("streamed PUT answered 429: %v; want a throttled error with Retry-After 1s", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v, want the throttled answer waited out", err)
			}
			if took := time.Since(start); took < time.Second {
				t.Errorf("sent again after %v, before the Retry-After of 1s", took)
			}
		})
	}
}

// TestAuthRefused: the message says which credentials to fix and never
// shows them, even when the server echoes them back.
func TestAuthRefused(t *testing.T) {
	t.Parallel()
	const token = "tok-9f8e7d6c5b4a"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, code := range []int{401, 403} {
		for _, tc := range []struct {
			name, url string
			cfg       httpcache.Config
			fix       string
			secrets   []string
		}{
			{"token file", "", httpcache.Config{TokenFile: tokenFile}, "check the token in " + tokenFile + " (--token-file)", []string{token}},
			{"token", "", httpcache.Config{Token: token}, "check the token in NIXPUSH_TOKEN", []string{token}},
			{"URL user info", "pusher:" + token + "@", httpcache.Config{}, "check the user and password in the cache URL", []string{token}},
			{"none", "", httpcache.Config{}, "no credentials were sent: give --token-file", nil},
		} {
			t.Run(fmt.Sprintf("%d %s", code, tc.name), func(t *testing.T) {
				t.Parallel()
				srv := server(t, func(w http.ResponseWriter, r *http.Request) {
					io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "text/plain")
					w.WriteHeader(code)
					fmt.Fprintf(w, "refused %s\n", r.Header.Get("Authorization"))
				})
				c := newCache(t, strings.Replace(srv.URL, "://", "://"+tc.url, 1)+"/", tc.cfg)
				wantNoSecret(t, "String()", c.String(), tc.secrets...)
				for _, body := range []io.Reader{strings.NewReader("x"), &patternReader{n: 100}} {
					err := c.Put(t.Context(), "abc.narinfo", body, cache.TypeNarInfo)
					if err == nil || !isPermanent(err) {
						t.Fatalf("Put = %v, want a permanent error", err)
					}
					msg := err.Error()
					prefix := fmt.Sprintf("%d %s from PUT %s/abc.narinfo", code, http.StatusText(code), srv.URL)
					if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.fix) {
						t.Errorf("message %q\nwant it to start %q and say %q", msg, prefix, tc.fix)
					}
					if !strings.Contains(msg, "refused") {
						t.Errorf("message %q lacks the server's text", msg)
					}
					wantNoSecret(t, "error", msg, tc.secrets...)
				}
			})
		}
	}
}

// TestCredentialsSent checks which Authorization header each
// configuration sends, with every method.
func TestCredentialsSent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("token", "\n  file-token \n")
	netrc := write("netrc", "machine other.example login o password p\n"+
		"machine 127.0.0.1\n  login netrc-user\n  password \"pass word\"\n"+
		"default login d password dp\n")
	netrcDefault := write("netrc-default", "machine other.example login o password p\ndefault login d password dp\n")
	netrcOther := write("netrc-other", "machine other.example login o password p\n")

	basic := func(u, p string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(u, p)
		return r.Header.Get("Authorization")
	}
	tests := []struct {
		name     string
		userinfo string
		cfg      httpcache.Config
		want     string
	}{
		{"nothing", "", httpcache.Config{}, ""},
		{"token file, trimmed", "", httpcache.Config{TokenFile: tokenFile}, "Bearer file-token"},
		{"token", "", httpcache.Config{Token: " env-token\n"}, "Bearer env-token"},
		{"token file wins over token", "", httpcache.Config{TokenFile: tokenFile, Token: "env-token"}, "Bearer file-token"},
		{"token wins over URL", "u:p@", httpcache.Config{Token: "env-token"}, "Bearer env-token"},
		{"URL user info", "us%40er:p%3Ass@", httpcache.Config{}, basic("us@er", "p:ss")},
		{"URL user without password", "user@", httpcache.Config{}, basic("user", "")},
		{"URL wins over netrc", "u:p@", httpcache.Config{NetrcFile: netrc}, basic("u", "p")},
		{"netrc machine", "", httpcache.Config{NetrcFile: netrc}, basic("netrc-user", "pass word")},
		{"netrc default", "", httpcache.Config{NetrcFile: netrcDefault}, basic("d", "dp")},
		{"netrc without entry", "", httpcache.Config{NetrcFile: netrcOther}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var got []string
			srv := server(t, func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
				mu.Lock()
				got = append(got, r.Method+" "+r.Header.Get("Authorization"))
				mu.Unlock()
			})
			c := newCache(t, strings.Replace(srv.URL, "://", "://"+tt.userinfo, 1), tt.cfg)
			if c.String() != srv.URL {
				t.Errorf("String() = %s, want %s", c, srv.URL)
			}
			ctx := t.Context()
			if _, err := c.Exists(ctx, "k"); err != nil {
				t.Fatal(err)
			}
			r, err := c.Get(ctx, "k")
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if err := c.Put(ctx, "k", strings.NewReader("v"), cache.TypeNarInfo); err != nil {
				t.Fatal(err)
			}
			if err := c.Put(ctx, "k", &patternReader{n: 10}, cache.TypeNAR); err != nil {
				t.Fatal(err)
			}
			want := []string{"HEAD " + tt.want, "GET " + tt.want, "PUT " + tt.want, "PUT " + tt.want}
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("Authorization sent: %q\nwant %q", got, want)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	twoLines := filepath.Join(dir, "two-lines")
	notPEM := filepath.Join(dir, "not-pem")
	for f, content := range map[string]string{empty: " \n", twoLines: "a\nb\n", notPEM: "hello"} {
		if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		url  string
		cfg  httpcache.Config
		want string
	}{
		{"ftp://host/", httpcache.Config{}, `scheme "ftp"`},
		{"http:///path", httpcache.Config{}, "no host"},
		{"http://host/", httpcache.Config{TokenFile: missing}, "read token file"},
		{"http://host/", httpcache.Config{TokenFile: empty}, "is empty"},
		{"http://host/", httpcache.Config{TokenFile: twoLines}, "one line"},
		{"http://host/", httpcache.Config{NetrcFile: missing}, "read netrc file"},
		{"https://host/", httpcache.Config{CACert: missing, NetrcFile: os.DevNull}, "read CA certificate"},
		{"https://host/", httpcache.Config{CACert: notPEM, NetrcFile: os.DevNull}, "holds no PEM certificate"},
	} {
		u := mustParse(t, tc.url)
		_, err := httpcache.New(u, tc.cfg)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s, %+v) = %v, want a permanent error saying %q", tc.url, tc.cfg, err, tc.want)
		}
	}
}

// TestURLs: objects live under the URL's path; String() drops user info,
// settings and the trailing slash.
func TestURLs(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, fmt.Sprintf("%s %s %s %d", r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.ContentLength))
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	})
	c := newCache(t, strings.Replace(srv.URL, "://", "://u:secret-pw@", 1)+"/caches/main/?compression=zstd&secret-key=/k", httpcache.Config{})
	if want := srv.URL + "/caches/main"; c.String() != want {
		t.Errorf("String() = %s, want %s", c, want)
	}
	ctx := t.Context()
	c.Exists(ctx, "abc.narinfo")
	c.Put(ctx, "nar/abc.nar.zst", &patternReader{n: 5}, cache.TypeNAR)
	c.Put(ctx, "nix-cache-info", strings.NewReader("x"), cache.TypeCacheInfo)
	c.Put(ctx, "nar/big.nar", bytes.NewReader(make([]byte, 2<<20)), cache.TypeNAR)
	// Small in-memory bodies have a length; the rest are streamed.
	want := []string{
		"HEAD /caches/main/abc.narinfo  0",
		"PUT /caches/main/nar/abc.nar.zst application/x-nix-nar -1",
		"PUT /caches/main/nix-cache-info text/x-nix-cache-info 1",
		"PUT /caches/main/nar/big.nar application/x-nix-nar -1",
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(paths) != fmt.Sprint(want) {
		t.Errorf("requests %q\nwant %q", paths, want)
	}
}

// TestPutRedirectNotFollowed: Go would follow a 301 to a PUT with a GET
// whose 200 looks like success; Put must refuse and name the new URL.
func TestPutRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/old/x.narinfo" {
			http.Redirect(w, r, "/new/x.narinfo", http.StatusMovedPermanently)
		}
	})
	c := newCache(t, srv.URL+"/old", httpcache.Config{})
	for _, body := range []io.Reader{strings.NewReader("x"), &patternReader{n: 1000}} {
		err := c.Put(t.Context(), "x.narinfo", body, cache.TypeNarInfo)
		if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), srv.URL+"/new/x.narinfo") {
			t.Errorf("Put redirected: %v; want a permanent error naming the new URL", err)
		}
	}
	// HEAD and GET follow redirects, as Nix's curl does.
	if ok, err := c.Exists(t.Context(), "x.narinfo"); !ok || err != nil {
		t.Errorf("Exists through a redirect = %v, %v", ok, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "[PUT /old/x.narinfo PUT /old/x.narinfo HEAD /old/x.narinfo HEAD /new/x.narinfo]"; fmt.Sprint(seen) != want {
		t.Errorf("requests %v, want %s", seen, want)
	}
}
