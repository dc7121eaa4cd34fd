package s3cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// multipartLeftovers lists what versitygw keeps of multipart uploads in
// progress (their parts), behind the API's back.
func multipartLeftovers(t *testing.T, s *servertest.Versitygw) []string {
	t.Helper()
	root := filepath.Join(s.BucketDir(), ".sgwtmp", "multipart")
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// lateParts is a proxy in front of s that takes each part whole from the
// client, then hands the server half of it at once and the rest a while
// later, even when the client has gone by then: as a server does that is
// still storing a part when the client gives up on it. An abort sent
// meanwhile reaches the server at once. settle waits until every part
// received has reached the server.
func lateParts(t *testing.T, s *servertest.Versitygw, delay time.Duration) (u *url.URL, settle func()) {
	target := &url.URL{Scheme: "http", Host: s.Addr}
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.Out.Host = r.In.Host // signed by the client
	}}
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !r.URL.Query().Has("partNumber") {
			proxy.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return // cut off mid-body: the server never sees the part
		}
		wg.Add(1)
		defer wg.Done()
		half := len(body) / 2
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:half]), &pause{delay: delay}, bytes.NewReader(body[half:])))
		proxy.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
	}))
	t.Cleanup(srv.Close)
	u = s.URL("")
	q := u.Query()
	q.Set("endpoint", strings.TrimPrefix(srv.URL, "http://"))
	u.RawQuery = q.Encode()
	return u, wg.Wait
}

// TestAbortWithPartsInFlight fails uploads while parts are in flight on a
// server slow to store them, by a failing body and by cancellation: no
// upload may stay in progress, nor any part on the server.
func TestAbortWithPartsInFlight(t *testing.T) {
	s := servertest.StartVersitygw(t)
	u, settle := lateParts(t, s, 300*time.Millisecond)
	c, err := s3cache.New(t.Context(), u, s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("NAR stream broke on purpose")
	err = c.Put(t.Context(), "nar/broken.nar", &errAfter{n: 4*5<<20 + 1<<20, err: boom}, cache.TypeNAR)
	if !errors.Is(err, boom) {
		t.Errorf("Put with a failing body = %v; want its error", err)
	}
	// Whether the server keeps a part depends on where it is in storing
	// it when the abort comes: a few rounds make that likely.
	for range 4 {
		ctx, cancel := context.WithCancel(t.Context())
		err = c.Put(ctx, "nar/cancelled.nar", &stopAfter{n: 8 * 5 << 20, stop: cancel}, cache.TypeNAR)
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled Put = %v; want context.Canceled", err)
		}
	}
	settle()
	if p := pendingUploads(t, s); len(p) != 0 {
		t.Errorf("multipart uploads left in progress: %q", p)
	}
	if l := multipartLeftovers(t, s); len(l) != 0 {
		t.Errorf("parts left on the server: %q", l)
	}
}

// pause is an empty reader that takes delay to say so.
type pause struct{ delay time.Duration }

func (p *pause) Read([]byte) (int, error) {
	time.Sleep(p.delay) // the fault: a server slow to receive
	return 0, io.EOF
}
