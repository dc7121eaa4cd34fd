package cache_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
	"nixpush/retry"
)

// flaky fails each call its first n times with a transient error, then
// behaves as the wrapped answers say.
type flaky struct {
	cache.Cache
	failures int
	calls    int
	listed   int
}

var errFlaky = errors.New("connection reset")

func (f *flaky) fail() error {
	f.calls++
	if f.calls <= f.failures {
		return errFlaky
	}
	return nil
}

func (f *flaky) Exists(context.Context, string) (bool, error) {
	if err := f.fail(); err != nil {
		return false, err
	}
	return true, nil
}

func (f *flaky) Get(context.Context, string) (io.ReadCloser, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return nil, cache.ErrNotFound
}

func (f *flaky) Put(_ context.Context, _ string, r io.Reader, _ string) error {
	b, _ := io.ReadAll(r)
	if err := f.fail(); err != nil {
		return err
	}
	if string(b) != "body" {
		return retry.Permanent(errors.New("body not rewound: " + string(b)))
	}
	return nil
}

func (f *flaky) List(_ context.Context, _ string, fn func(cache.Object) error) error {
	f.calls++
	f.listed++
	if err := fn(cache.Object{Key: "a"}); err != nil {
		return err
	}
	return errFlaky // fails after delivering an object
}

var fast = retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 5}

// TestWithRetry: transient failures are retried, a missing object and a
// permanent error are answers, a rewindable body is sent whole again, a
// stream and a List that delivered objects are not retried.
func TestWithRetry(t *testing.T) {
	ctx := t.Context()
	f := &flaky{failures: 2}
	c := cache.WithRetry(f, fast)
	if ok, err := c.Exists(ctx, "k"); !ok || err != nil || f.calls != 3 {
		t.Errorf("Exists after 2 failures = %v, %v after %d calls; want true after 3", ok, err, f.calls)
	}
	f.calls, f.failures = 0, 0
	if _, err := c.Get(ctx, "k"); !errors.Is(err, cache.ErrNotFound) || f.calls != 1 || retry.IsPermanent(err) {
		t.Errorf("Get of a missing object = %v after %d calls; want ErrNotFound (not marked permanent) at once", err, f.calls)
	}
	f.calls, f.failures = 0, 2
	if err := c.Put(ctx, "k", strings.NewReader("body"), cache.TypeNarInfo); err != nil || f.calls != 3 {
		t.Errorf("Put of a rewindable body = %v after %d calls; want success after 3", err, f.calls)
	}
	f.calls, f.failures = 0, 2
	if err := c.Put(ctx, "k", io.MultiReader(strings.NewReader("body")), cache.TypeNAR); !errors.Is(err, errFlaky) || f.calls != 1 {
		t.Errorf("Put of a stream = %v after %d calls; want its first error, not retried", err, f.calls)
	}
	f.calls = 0
	n := 0
	err := c.List(ctx, "", func(cache.Object) error { n++; return nil })
	if !errors.Is(err, errFlaky) || n != 1 || f.listed != 1 {
		t.Errorf("List failing after an object = %v, %d objects, %d lists; want its error after one list", err, n, f.listed)
	}
	f.calls, f.failures = 0, 100
	if _, err := c.Exists(ctx, "k"); !errors.Is(err, errFlaky) || f.calls != fast.Attempts {
		t.Errorf("Exists always failing = %v after %d calls; want its error after %d", err, f.calls, fast.Attempts)
	}
}
