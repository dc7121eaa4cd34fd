package s3cache_test

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// viaS3Proxy is a cache whose requests go through a throttling proxy.
func viaS3Proxy(t *testing.T, s *servertest.Versitygw, cfg s3cache.Config) (*s3cache.Cache, *servertest.S3Proxy) {
	t.Helper()
	px, err := servertest.StartS3Proxy(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	u := s.URL("")
	q := u.Query()
	q.Set("endpoint", px.Addr)
	c, err := s3cache.New(t.Context(), &url.URL{Scheme: u.Scheme, Host: u.Host, RawQuery: q.Encode()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c, px
}

// TestThrottlingIsWaitedOut: a server that answers a fifth of requests
// 503 SlowDown, and everything 429 Retry-After: 1 for 200 ms in every
// 3 s, costs time, never a failure: every call succeeds, the throttled
// answers are counted apart, the bucket's limit of requests in flight
// drops, and a Retry-After is honoured.
func TestThrottlingIsWaitedOut(t *testing.T) {
	s := servertest.StartVersitygw(t)
	c, px := viaS3Proxy(t, s, s3cache.Config{PartSize: s3cache.MinPartSize})
	px.SetThrottling(servertest.Throttling{SlowDown: 0.2, BurstEvery: 3 * time.Second, BurstFor: 200 * time.Millisecond, RetryAfter: 1, Seed: 7})
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 12 {
		wg.Go(func() {
			key := fmt.Sprintf("obj-%d", i)
			body := strings.Repeat("x", 100+i)
			if i%6 == 0 {
				body = strings.Repeat("y", 6<<20) // multipart: parts, create, complete
			}
			if err := c.Put(ctx, key, strings.NewReader(body), cache.TypeNAR); err != nil {
				errs <- fmt.Errorf("put %s: %w", key, err)
				return
			}
			if ok, err := c.Exists(ctx, key); err != nil || !ok {
				errs <- fmt.Errorf("exists %s: %v %v", key, ok, err)
				return
			}
			r, err := c.Get(ctx, key)
			if err != nil {
				errs <- fmt.Errorf("get %s: %w", key, err)
				return
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, []byte(body)) {
				errs <- fmt.Errorf("get %s: %d bytes, %v", key, len(got), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	req := c.Requests()
	refused := px.Refused()
	t.Logf("requests %v, throttled %d, limit now %d; the proxy refused %v and passed %v", req.ByKind, req.Throttled, req.Limit, refused, px.Counts())
	if req.Throttled == 0 || req.Throttled != refused["503"]+refused["429"] {
		t.Errorf("counted %d throttled answers, the proxy gave %v", req.Throttled, refused)
	}
	if req.Limit >= 1024 {
		t.Errorf("limit of requests in flight still %d after %d throttled answers", req.Limit, req.Throttled)
	}
	if req.Total() != px.Counts()["PutObject"]+px.Counts()["UploadPart"]+px.Counts()["CreateMultipartUpload"]+
		px.Counts()["CompleteMultipartUpload"]+px.Counts()["HeadObject"]+px.Counts()["GetObject"]+px.Counts()["HeadBucket"]+
		px.Counts()["ListObjectsV2"]+refused["503"]+refused["429"] {
		t.Errorf("counted %d requests, the proxy saw %v and refused %v", req.Total(), px.Counts(), refused)
	}
}

// TestRetryAfterHoldsTheBucket: once a server said "come back in 1 s",
// no request of the process goes to that bucket before then.
func TestRetryAfterHoldsTheBucket(t *testing.T) {
	s := servertest.StartVersitygw(t)
	c, px := viaS3Proxy(t, s, s3cache.Config{})
	px.SetThrottling(servertest.Throttling{BurstEvery: time.Hour, BurstFor: 200 * time.Millisecond, RetryAfter: 1})
	start := time.Now()
	if _, err := c.Exists(t.Context(), "x.narinfo"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("answered after %v: Retry-After: 1 not honoured", took)
	}
	if r := px.Refused()["429"]; r != 1 {
		t.Errorf("%d requests refused with 429, want 1: the others should have waited", r)
	}
}
