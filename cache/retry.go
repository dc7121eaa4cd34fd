package cache

import (
	"context"
	"errors"
	"io"

	"nixpush/retry"
)

// WithRetry wraps c so that each request failing transiently is tried
// again on policy p: the one retrying layer between a command and a
// backend, as restic's RetryBackend. Backends never retry on their own.
//
// What is retried: Exists, Get (opening; a body that fails half-way is
// the reader's error, not retried), Delete (deleting is idempotent), List
// until it has delivered its first object (after that, a retry would call
// fn twice for the same objects), and Put when its body can be rewound
// (an io.Seeker: a narinfo, nix-cache-info). A streamed NAR is not: its
// retry is the drainer's, recorded in the queue. Permanent errors and
// ErrNotFound are returned at once.
func WithRetry(c Cache, p retry.Policy) Cache {
	if r, ok := c.(*retrying); ok {
		c = r.Cache
	}
	return &retrying{Cache: c, policy: p}
}

type retrying struct {
	Cache
	policy retry.Policy
}

// Unwrap returns the backend, for callers that need its own methods
// (Close).
func (r *retrying) Unwrap() Cache { return r.Cache }

// final marks an error op returns as the answer: a missing object, a
// List that has already delivered objects.
type final struct{ error }

// do retries op until it succeeds or returns a final error, and returns
// op's error as the backend gave it: the wrapper adds no class of its
// own.
func (r *retrying) do(ctx context.Context, op func() error) error {
	var last error
	err := r.policy.Do(ctx, func() error {
		last = op()
		if f, ok := last.(final); ok {
			last = f.error
			return retry.Permanent(last)
		}
		return last
	})
	if err != nil && last != nil && ctx.Err() == nil {
		return last
	}
	return err
}

func (r *retrying) Exists(ctx context.Context, key string) (ok bool, err error) {
	err = r.do(ctx, func() (err error) {
		ok, err = r.Cache.Exists(ctx, key)
		return err
	})
	return ok, err
}

func (r *retrying) Get(ctx context.Context, key string) (body io.ReadCloser, err error) {
	err = r.do(ctx, func() (err error) {
		if body, err = r.Cache.Get(ctx, key); errors.Is(err, ErrNotFound) {
			return final{err}
		}
		return err
	})
	return body, err
}

func (r *retrying) Put(ctx context.Context, key string, body io.Reader, contentType string) error {
	seeker, ok := body.(io.Seeker)
	if !ok {
		return r.Cache.Put(ctx, key, body, contentType)
	}
	return r.do(ctx, func() error {
		if _, err := seeker.Seek(0, io.SeekStart); err != nil {
			return final{err}
		}
		return r.Cache.Put(ctx, key, body, contentType)
	})
}

func (r *retrying) List(ctx context.Context, prefix string, fn func(Object) error) error {
	delivered := false
	return r.do(ctx, func() error {
		err := r.Cache.List(ctx, prefix, func(o Object) error {
			delivered = true
			return fn(o)
		})
		if err != nil && delivered {
			return final{err}
		}
		return err
	})
}

func (r *retrying) Delete(ctx context.Context, keys []string) error {
	return r.do(ctx, func() error { return r.Cache.Delete(ctx, keys) })
}

// Close closes c's backend if it holds anything (an S3 client aborts its
// leftover multipart uploads); it is a no-op for one that holds nothing.
func Close(c Cache) error {
	for {
		switch v := c.(type) {
		case io.Closer:
			return v.Close()
		case interface{ Unwrap() Cache }:
			c = v.Unwrap()
		default:
			return nil
		}
	}
}
