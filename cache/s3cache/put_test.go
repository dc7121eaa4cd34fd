package s3cache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cenkalti/backoff/v4"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

func isPermanent(err error) bool {
	var perm *backoff.PermanentError
	return errors.As(err, &perm)
}

func newCache(t *testing.T, s *servertest.Versitygw, prefix string, cfg s3cache.Config) *s3cache.Cache {
	t.Helper()
	c, err := s3cache.New(t.Context(), s.URL(prefix), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", s.URL(prefix), err)
	}
	return c
}

// objectFiles lists the regular files under the bucket's directory,
// versitygw's own temp directory aside.
func objectFiles(t *testing.T, s *servertest.Versitygw) []string {
	t.Helper()
	root := s.BucketDir()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".sgwtmp" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pendingUploads lists the bucket's multipart uploads still in progress.
func pendingUploads(t *testing.T, s *servertest.Versitygw) []string {
	t.Helper()
	out, err := s.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket)})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// TestLayout checks object keys and content types against Nix's S3 store,
// with and without a prefix, for a single PUT and a multipart upload.
func TestLayout(t *testing.T) {
	s := servertest.StartVersitygw(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), (6<<20)/16) // above a 5 MiB part
	for _, prefix := range []string{"", "some/prefix"} {
		c := newCache(t, s, prefix, s3cache.Config{PartSize: s3cache.MinPartSize})
		objects := []struct {
			key, contentType string
			body             []byte
		}{
			{"nix-cache-info", cache.TypeCacheInfo, []byte("StoreDir: /nix/store\n")},
			{"abc.narinfo", cache.TypeNarInfo, []byte("StorePath: x\n")},
			{"nar/abc.nar.zst", cache.TypeNAR, big},
			{"nar/empty.nar", cache.TypeNAR, nil},
		}
		for _, o := range objects {
			if err := c.Put(t.Context(), o.key, bytes.NewReader(o.body), o.contentType); err != nil {
				t.Fatalf("Put(%s): %v", o.key, err)
			}
			objKey := o.key
			if prefix != "" {
				objKey = prefix + "/" + o.key
			}
			head, err := s.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(objKey)})
			if err != nil {
				t.Fatalf("object %s of %s (prefix %q): %v", objKey, o.key, prefix, err)
			}
			if ct := aws.ToString(head.ContentType); ct != o.contentType {
				t.Errorf("%s: Content-Type %q, want %q", objKey, ct, o.contentType)
			}
			// The posix backend keeps the object as a plain file.
			b, err := os.ReadFile(filepath.Join(s.BucketDir(), filepath.FromSlash(objKey)))
			if err != nil || !bytes.Equal(b, o.body) {
				t.Errorf("file of %s: %d bytes, %v; want the %d bytes put", objKey, len(b), err, len(o.body))
			}
		}
	}
	if p := pendingUploads(t, s); len(p) != 0 {
		t.Errorf("multipart uploads left in progress: %q", p)
	}
}

// randReader yields n pseudo-random bytes without allocating.
type randReader struct {
	rnd *rand.Rand
	n   int64
}

func (r *randReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, _ := r.rnd.Read(p)
	r.n -= int64(n)
	return n, nil
}

// TestMultipartMemory streams a body of 12 parts and checks that the heap
// never holds much more than PartSize × Concurrency of it.
func TestMultipartMemory(t *testing.T) {
	s := servertest.StartVersitygw(t)
	cfg := s3cache.Config{PartSize: 5 << 20, Concurrency: 4}
	c := newCache(t, s, "", cfg)
	const size = 60 << 20

	// A low GC target keeps the heap close to what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	// Two collections: the second empties the pools of earlier tests.
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	want := sha256.New()
	err := c.Put(t.Context(), "nar/big.nar", io.TeeReader(&randReader{rand.New(rand.NewSource(7)), size}, want), cache.TypeNAR)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	grew := int64(peak.Load()) - int64(base)
	bound := cfg.PartSize*int64(cfg.Concurrency) + 8<<20
	t.Logf("heap grew by %.1f MiB at most for a %d MiB body (bound %d MiB)", float64(grew)/(1<<20), size>>20, bound>>20)
	if grew > bound {
		t.Errorf("heap grew by %d MiB for a %d MiB body, want at most %d MiB (PartSize × Concurrency + slack)", grew>>20, size>>20, bound>>20)
	}

	r, err := c.Get(t.Context(), "nar/big.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := sha256.New()
	if n, err := io.Copy(got, r); err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d bytes, %v, same hash %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	if p := pendingUploads(t, s); len(p) != 0 {
		t.Errorf("multipart uploads left in progress: %q", p)
	}
}

// errAfter yields n bytes, then fails.
type errAfter struct {
	n   int64
	err error
}

func (r *errAfter) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	p = p[:min(int64(len(p)), r.n)]
	clear(p)
	r.n -= int64(len(p))
	return len(p), nil
}

// TestFailingReaderAbortsMultipart fails the body after some parts are
// up: the upload must be aborted, leaving no object and no parts.
func TestFailingReaderAbortsMultipart(t *testing.T) {
	s := servertest.StartVersitygw(t)
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2})
	boom := errors.New("NAR stream broke on purpose")
	for _, n := range []int64{5 << 20, 12 << 20, 23<<20 + 1} {
		err := c.Put(t.Context(), "nar/broken.nar", &errAfter{n: n, err: boom}, cache.TypeNAR)
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "nar/broken.nar") {
			t.Errorf("Put failing after %d bytes = %v; want the reader's error, naming the key", n, err)
		}
		if ok, err := c.Exists(t.Context(), "nar/broken.nar"); ok || err != nil {
			t.Errorf("after a failed Put: Exists = %v, %v", ok, err)
		}
		if p := pendingUploads(t, s); len(p) != 0 {
			t.Errorf("failing after %d bytes: multipart uploads left in progress: %q (Put: %v)", n, p, err)
		}
	}

	// The caller gives up mid-upload: the abort still runs.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	err := c.Put(ctx, "nar/cancelled.nar", &stopAfter{n: 30 << 20, stop: cancel}, cache.TypeNAR)
	if !errors.Is(err, context.Canceled) || isPermanent(err) {
		t.Errorf("Put cancelled midway = %v; want a transient context.Canceled", err)
	}
	if p := pendingUploads(t, s); len(p) != 0 {
		t.Errorf("cancelled Put: multipart uploads left in progress: %q (Put: %v)", p, err)
	}

	if f := objectFiles(t, s); len(f) != 0 {
		t.Errorf("bucket directory holds %q after failed Puts", f)
	}
}

// stopAfter yields n bytes, zeros or src's; once more than half has
// been read it calls stop.
type stopAfter struct {
	n, read int64
	stop    func()
	once    sync.Once
	src     io.Reader // nil: zeros
}

func (r *stopAfter) Read(p []byte) (int, error) {
	if r.read >= r.n {
		return 0, io.EOF
	}
	if r.read > r.n/2 {
		r.once.Do(r.stop)
	}
	p = p[:min(int64(len(p)), r.n-r.read)]
	if r.src == nil {
		clear(p)
	} else if n, err := io.ReadFull(r.src, p); err != nil {
		r.read += int64(n)
		return n, err
	}
	r.read += int64(len(p))
	return len(p), nil
}

// TestServerStopped stops the server in the middle of a multipart upload:
// the failure is transient (the queue retries it later), and so is every
// call while the server is down.
func TestServerStopped(t *testing.T) {
	s := servertest.StartVersitygw(t)
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2})
	err := c.Put(t.Context(), "nar/x.nar", &stopAfter{n: 30 << 20, stop: s.Stop}, cache.TypeNAR)
	if err == nil || isPermanent(err) {
		t.Fatalf("Put while the server stops = %v; want a transient error", err)
	}
	t.Logf("Put: %v", err)
	if _, err := c.Exists(t.Context(), "x.narinfo"); err == nil || isPermanent(err) {
		t.Errorf("Exists with the server down = %v; want a transient error", err)
	}
	if _, err := c.Get(t.Context(), "x.narinfo"); err == nil || isPermanent(err) || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get with the server down = %v; want a transient error", err)
	}
	if err := c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo); err == nil || isPermanent(err) {
		t.Errorf("Put with the server down = %v; want a transient error", err)
	}
	if _, err := s3cache.New(t.Context(), s.URL(""), s3cache.Config{}); err == nil || isPermanent(err) {
		t.Errorf("New with the server down = %v; want a transient error", err)
	}
}

// hinted is a body that says how large it will be, as a NAR stream does.
type hinted struct {
	io.Reader
	hint int64
}

func (h hinted) SizeHint() int64 { return h.hint }

// TestHugeBodyLargerParts lowers S3's parts limit to 3: a body of more
// than 3 configured parts, whose size hint says so, goes up in larger
// parts; without the hint it is refused for good, as before.
func TestHugeBodyLargerParts(t *testing.T) {
	s3cache.SetMaxParts(t, 3)
	s := servertest.StartVersitygw(t)
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 4})
	const size = 20 << 20 // 4 parts of 5 MiB; 3 of 8 MiB with the margin
	body := func() io.Reader { return &randReader{rand.New(rand.NewSource(3)), size} }

	err := c.Put(t.Context(), "nar/nohint.nar", body(), cache.TypeNAR)
	if !isPermanent(err) || !strings.Contains(err.Error(), "larger than 3 parts") {
		t.Errorf("Put of 4 parts without a hint = %v; want a permanent error about the parts limit", err)
	}

	if err := c.Put(t.Context(), "nar/huge.nar", hinted{body(), size}, cache.TypeNAR); err != nil {
		t.Fatalf("Put with a size hint: %v", err)
	}
	head, err := s.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String("nar/huge.nar"), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if n, parts := aws.ToInt64(head.ContentLength), aws.ToInt32(head.PartsCount); n != 8<<20 || parts != 3 {
		t.Errorf("object in %d parts, the first of %d bytes; want 3 parts of 8 MiB", parts, n)
	}
	r, err := c.Get(t.Context(), "nar/huge.nar")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	want, _ := io.ReadAll(body())
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("read back %d bytes (%v), want the %d put", len(got), err, len(want))
	}
	if p := pendingUploads(t, s); len(p) != 0 {
		t.Errorf("multipart uploads left in progress: %q", p)
	}
}
