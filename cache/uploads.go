package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// What a backend may offer beyond Cache, each found through the
// retrying wrapper by the functions below (as Close is): conditional
// creation (Create), uploads that survive a crash (Resumable bodies,
// Abandon) and the uploads in progress that gc looks at (Uploads).

// ErrExists is what errors.Is finds in Create's error when an object is
// already under key (an *ExistsError).
var ErrExists = errors.New("an object is already there")

// ExistsError is Create's error when key holds an object already.
type ExistsError struct {
	Key string
	// Identical: the server's own checksum of the object (S3's ETag, a
	// file's SHA-256) proves it holds exactly the bytes Create was given.
	Identical bool
	// Age is how long ago the object was written, by the server's clock
	// (the client's may differ), when Identical.
	Age time.Duration
}

func (e *ExistsError) Error() string {
	if e.Identical {
		return fmt.Sprintf("%s: the same bytes are there already, written %v ago", e.Key, e.Age.Round(time.Second))
	}
	return fmt.Sprintf("%s: %v, with other bytes", e.Key, ErrExists)
}

func (e *ExistsError) Is(target error) bool { return target == ErrExists }

// ErrCannotCreate is returned by Create when the backend or its server
// cannot write an object only if its key is free: before the body is
// read when that is known (a server found to ignore If-None-Match), or
// after it when the server says so only in its answer (501); the caller
// writes the object another way.
var ErrCannotCreate = errors.New("this cache cannot write an object only if it is absent")

// Creator is a backend that can write an object only if its key is
// free, atomically with respect to every other writer: of two racing
// Creates of one key exactly one succeeds.
type Creator interface {
	// CanCreate reports whether Create is honoured here (an S3 backend
	// asks its server once).
	CanCreate(ctx context.Context) (bool, error)
	// Create is Put, but fails with an *ExistsError, and writes
	// nothing, when key holds an object (which may have appeared while
	// the body was sent); the body is then read to its end.
	Create(ctx context.Context, key string, r io.Reader, contentType string) error
}

// CanCreate reports whether c's backend honours Create.
func CanCreate(ctx context.Context, c Cache) (bool, error) {
	if cr, ok := find[Creator](c); ok {
		return cr.CanCreate(ctx)
	}
	return false, nil
}

// Create writes r under key only if no object is there (ErrExists), on a
// backend that can (else ErrCannotCreate).
func Create(ctx context.Context, c Cache, key string, r io.Reader, contentType string) error {
	if cr, ok := find[Creator](c); ok {
		return cr.Create(ctx, key, r, contentType)
	}
	return ErrCannotCreate
}

// Resumable is offered by a Put body whose upload can be continued by a
// later process: a backend that uploads in parts saves, through it,
// where it is (its own format, opaque to the body), and a Put of the same
// body after a crash continues from there instead of starting over.
type Resumable interface {
	// ResumeState is what an earlier Put of this body saved, nil if none.
	ResumeState() []byte
	// SaveResumeState records where the upload is; nil means there is
	// nothing to resume (it completed, or was abandoned).
	SaveResumeState(state []byte)
}

// Abandoner is a backend that can give up an upload a Resumable body
// saved, when it can no longer finish (its path was pushed by another
// process, failed for good, or left the store).
type Abandoner interface {
	Abandon(ctx context.Context, state []byte) error
}

// Abandon gives up the upload state describes; a backend with no
// resumable uploads has nothing to do.
func Abandon(ctx context.Context, c Cache, state []byte) error {
	if a, ok := find[Abandoner](c); ok {
		return a.Abandon(ctx, state)
	}
	return nil
}

// Upload is a multipart upload in progress on the server.
type Upload struct {
	Key     string    // as given to Put
	ID      string    // the server's upload id
	Started time.Time // by the server's clock
}

// Uploads is a backend whose unfinished uploads stay on the server
// (billed) until someone completes or aborts them: gc aborts those no
// pusher owns.
type Uploads interface {
	// ListUploads calls fn for each upload in progress under the cache.
	ListUploads(ctx context.Context, fn func(Upload) error) error
	// UploadChanged is when the upload last received a part (its start
	// when none).
	UploadChanged(ctx context.Context, u Upload) (time.Time, error)
	// AbortUpload removes the upload and its parts; one already gone is
	// not an error.
	AbortUpload(ctx context.Context, u Upload) error
}

// UploadsOf is c's backend's Uploads, when it has any.
func UploadsOf(c Cache) (Uploads, bool) { return find[Uploads](c) }

// find looks for an optional interface through wrappers.
func find[T any](c Cache) (T, bool) {
	for {
		if v, ok := c.(T); ok {
			return v, true
		}
		u, ok := c.(interface{ Unwrap() Cache })
		if !ok {
			var zero T
			return zero, false
		}
		c = u.Unwrap()
	}
}
