// Package filecache is the file:// cache backend: a binary cache in a local
// directory, laid out exactly as Nix's own file:// store lays it out, so
// the directory can be used as a substituter directly or served by any
// static HTTP server.
package filecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cenkalti/backoff/v4"

	"nixpush/uploader"
)

var _ uploader.Cache = (*Cache)(nil)

// Cache is a binary cache in a directory.
type Cache struct {
	dir string
}

// tmpPrefix marks files being written; Nix never reads them, and a crash
// can leave them behind without harm.
const tmpPrefix = ".nixpush-tmp-"

// New returns the cache rooted at dir, creating the directory if needed.
// A path that exists but is not a directory is a permanent error.
func New(dir string) (*Cache, error) {
	if dir == "" {
		return nil, backoff.Permanent(errors.New("file:// cache needs a directory path"))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, backoff.Permanent(fmt.Errorf("open file cache: %w", err))
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, classify(fmt.Errorf("create cache directory: %w", err))
	}
	return &Cache{dir: abs}, nil
}

func (c *Cache) String() string { return "file://" + c.dir }

// Exists stats the object's file.
func (c *Cache) Exists(_ context.Context, key string) (bool, error) {
	_, err := os.Stat(c.file(key))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, classify(fmt.Errorf("stat %s: %w", key, err))
}

// Get opens the object's file.
func (c *Cache) Get(_ context.Context, key string) (io.ReadCloser, error) {
	f, err := os.Open(c.file(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, uploader.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("read %s: %w", key, err))
	}
	return f, nil
}

// Put writes r to a temp file next to the object and renames it into
// place, so the object appears complete or not at all. Like Nix's file://
// store it does not fsync: ordering (NAR renamed before its narinfo) is
// what keeps the cache consistent across a crash of nixpush.
func (c *Cache) Put(_ context.Context, key string, r io.Reader, _ string) error {
	dst := c.file(key)
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, tmpPrefix+"*")
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			tmp, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
	}
	if err != nil {
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	_, err = io.Copy(tmp, r)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	return nil
}

func (c *Cache) file(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// classify marks errors that retrying cannot fix as permanent: a cache
// path that is not a directory. A full disk, a read-only remount or wrong
// permissions are transient: an operator can fix them while the queue
// waits, and the daemon then drains without a restart.
func classify(err error) error {
	var perr *backoff.PermanentError
	if errors.As(err, &perr) {
		return err
	}
	for _, e := range []error{syscall.ENOTDIR, syscall.EISDIR} {
		if errors.Is(err, e) {
			return backoff.Permanent(err)
		}
	}
	// os.Rename reports a directory in the object's place as EEXIST, not
	// EISDIR: the same dead end.
	var lerr *os.LinkError
	if errors.As(err, &lerr) && lerr.Op == "rename" && errors.Is(lerr.Err, syscall.EEXIST) {
		return backoff.Permanent(err)
	}
	return err
}
