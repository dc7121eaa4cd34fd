package s3cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/cache/s3cache"
	"nixpush/internal/servertest"
)

// within runs f and fails the test if it takes longer than limit, or does
// not end at all within a minute (a hang: the test then gives up on f).
func within[T any](t *testing.T, what string, limit time.Duration, f func() T) T {
	t.Helper()
	start := time.Now()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		if took := time.Since(start); took > limit {
			t.Errorf("%s took %v, want at most %v", what, took.Round(time.Millisecond), limit)
		}
		return v
	case <-time.After(time.Minute):
		t.Fatalf("%s still hangs after a minute", what)
	}
	panic("unreachable")
}

// wantStalled checks that err is a transient stall.
func wantStalled(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, s3cache.ErrStalled) || isPermanent(err) || !strings.Contains(err.Error(), "no progress for") {
		t.Errorf("%s on a frozen server = %v; want a transient error saying it stalled", what, err)
	}
}

// TestFrozenServer freezes the server (SIGSTOP: connections are still
// accepted by the kernel, nothing answers): every call fails as stalled
// within about the timeout, instead of hanging until the server resumes.
func TestFrozenServer(t *testing.T) {
	s := servertest.StartVersitygw(t)
	const timeout = time.Second
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2, Timeout: timeout})
	single := newCache(t, s, "", s3cache.Config{PartSize: 16 << 20, Timeout: timeout})
	const bigSize = 24 << 20 // more than loopback's socket buffers hold
	if err := c.Put(t.Context(), "nar/big.nar", bytes.NewReader(make([]byte, bigSize)), cache.TypeNAR); err != nil {
		t.Fatal(err)
	}
	body, err := c.Get(t.Context(), "nar/big.nar")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { body.Close() }) // after the parallel subtests
	if _, err := io.ReadFull(body, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	// Frozen in the middle of a multipart upload, with megabytes in the
	// send queue: the parts in flight stall once, and the clean-up does
	// not wait on the frozen server again.
	var frozen time.Time
	err = within(t, "Put frozen midway", time.Minute, func() error {
		return c.Put(t.Context(), "nar/x.nar", &stopAfter{n: 40 << 20, stop: func() {
			servertest.MustFreeze(t, s)
			frozen = time.Now()
		}}, cache.TypeNAR)
	})
	stalledWithin(t, "Put frozen midway", err, frozen, timeout)
	t.Log(err)

	// The other calls, at once: each stalls on its own.
	for what, call := range map[string]func() error{
		"reading a body": func() error {
			n, err := io.Copy(io.Discard, body)
			if err == nil {
				t.Errorf("read all %d bytes of the body from a frozen server", n+1)
			}
			return err
		},
		"Exists": func() error {
			_, err := c.Exists(t.Context(), "x.narinfo")
			return err
		},
		"Get": func() error {
			_, err := c.Get(t.Context(), "x.narinfo")
			return err
		},
		"Put": func() error {
			return c.Put(t.Context(), "x.narinfo", strings.NewReader("x"), cache.TypeNarInfo)
		},
		"List": func() error {
			return c.List(t.Context(), "", func(cache.Object) error { return nil })
		},
		"Delete": func() error { return c.Delete(t.Context(), []string{"x.narinfo"}) },
		"AbortUpload": func() error {
			return c.AbortUpload(t.Context(), cache.Upload{Key: "nar/x.nar", ID: "none"})
		},
		// One PutObject larger than the socket buffers: its write blocks
		// once they are full (filling them is progress: it may take a
		// while under the race detector, hence its longer bound).
		"Put (single, 12 MiB)": func() error {
			return single.Put(t.Context(), "nar/y.nar", bytes.NewReader(make([]byte, 12<<20)), cache.TypeNAR)
		},
		// CreateMultipartUpload stalls: there is nothing to abort.
		"Put (multipart)": func() error {
			return c.Put(t.Context(), "nar/y.nar", bytes.NewReader(make([]byte, 6<<20)), cache.TypeNAR)
		},
	} {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			limit := 2 * timeout
			if strings.HasPrefix(what, "Put (single") {
				limit = 3 * timeout
			}
			err := within(t, what, limit, call)
			wantStalled(t, what, err)
			t.Log(err)
		})
	}
}

// TestShutdownBoundsAbort cancels a Put stuck on a frozen server (as a
// shutdown does): the multipart abort that follows gets a short grace of
// its own, so Put returns within about the timeout of the cancellation,
// not after one stalled abort attempt after another.
func TestShutdownBoundsAbort(t *testing.T) {
	s := servertest.StartVersitygw(t)
	const timeout = 3 * time.Second
	c := newCache(t, s, "", s3cache.Config{PartSize: s3cache.MinPartSize, Concurrency: 2, Timeout: timeout})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	shutdown := func() {
		servertest.MustFreeze(t, s)
		cancelled = time.Now()
		cancel()
	}
	err := within(t, "Put", time.Minute, func() error {
		return c.Put(ctx, "nar/x.nar", &stopAfter{n: 40 << 20, stop: shutdown}, cache.TypeNAR)
	})
	if took, limit := time.Since(cancelled), timeout+time.Second; took > limit {
		t.Errorf("Put returned %v after its context was cancelled, want at most %v", took.Round(time.Millisecond), limit)
	}
	if !errors.Is(err, context.Canceled) || isPermanent(err) {
		t.Errorf("cancelled Put = %v; want a transient context.Canceled", err)
	}
}
