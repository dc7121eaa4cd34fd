// Package cache is the binary cache as Nix sees it, for every command that
// reads or writes one: the Cache interface and its error contract, the
// keys and content types of its objects, narinfo and realisation formats,
// nix-cache-info, and the one retrying wrapper (WithRetry). The backends
// live beneath it, one package per URL scheme; the writer (uploader) and
// the readers (verify, gc, doctor) import it, never each other.
package cache

import (
	"context"
	"errors"
	"io"
	"time"
)

// Cache is one binary cache: a flat namespace of objects named as Nix
// names them ("nix-cache-info", "<hash>.narinfo", "nar/<...>.nar.zst").
// Implementations live in one package per URL scheme beneath cache/.
//
// Error contract, for every method: a missing object is ErrNotFound (Exists
// reports it as false); an error that can never succeed by retrying (auth
// refused, bucket missing, disk read-only) is wrapped with
// retry.Permanent; anything else is transient and may be retried by the
// caller. Implementations do not retry on their own, and never put
// credentials in an error.
type Cache interface {
	// Exists reports whether the object is present.
	Exists(ctx context.Context, key string) (bool, error)
	// Get opens an object for reading; ErrNotFound when it is missing.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Put stores everything r yields under key, so that readers see either
	// the whole object or none of it. If reading r fails, Put returns that
	// error (wrapped) and leaves no object behind. The size is not known in
	// advance: bodies are streamed. A reader may offer a size estimate
	// through the SizeHinter interface.
	Put(ctx context.Context, key string, r io.Reader, contentType string) error
	// List calls fn for every object whose key starts with prefix (""
	// for all), in no particular order, stopping at fn's first error. A
	// backend that cannot list returns an error wrapping ErrCannotList.
	List(ctx context.Context, prefix string, fn func(Object) error) error
	// Delete removes the objects named by keys; a key already missing is
	// not an error. Deleting is not atomic across keys: on error some of
	// them may be gone.
	Delete(ctx context.Context, keys []string) error
	// String names the cache for messages, without any secret.
	String() string
}

// Object describes one listed object.
type Object struct {
	Key     string    // as given to Put
	Size    int64     // bytes
	ModTime time.Time // when it was last written, as the backend reports it
}

// ErrCannotList is wrapped (permanently) by List when a backend has no way
// to enumerate its objects (e.g. an HTTP server without WebDAV PROPFIND).
var ErrCannotList = errors.New("this cache cannot list its objects")

// ErrNotFound is returned by Cache.Get for a missing object.
var ErrNotFound = errors.New("not found in cache")

// Content types Nix uses for each kind of object.
const (
	TypeCacheInfo = "text/x-nix-cache-info"
	TypeNarInfo   = "text/x-nix-narinfo"
	TypeNAR       = "application/x-nix-nar"
)

// SizeHinter is implemented by Put bodies that know about how large they
// will be (a NAR stream knows its uncompressed size from the Nix DB).
type SizeHinter interface {
	SizeHint() int64
}
