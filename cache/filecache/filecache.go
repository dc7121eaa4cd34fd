// Package filecache is the file:// cache backend: a binary cache in a local
// directory, laid out exactly as Nix's own file:// store lays it out, so
// the directory can be used as a substituter directly or served by any
// static HTTP server.
package filecache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"nixpush/cache"
	"nixpush/retry"
)

var _ cache.Cache = (*Cache)(nil)

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
		return nil, retry.Permanent(errors.New("file:// cache needs a directory path"))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("open file cache: %w", err))
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, classify(fmt.Errorf("create cache directory: %w", err))
	}
	return &Cache{dir: abs}, nil
}

// Open returns the cache rooted at dir for a reader, creating nothing: a
// missing directory is a cache without objects (every Get says
// cache.ErrNotFound, so a reader finds no nix-cache-info and says so).
// A path that exists but is not a directory is a permanent error.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		return nil, retry.Permanent(errors.New("file:// cache needs a directory path"))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, retry.Permanent(fmt.Errorf("open file cache: %w", err))
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, retry.Permanent(fmt.Errorf("open file cache: %s is not a directory", abs))
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
		return nil, fmt.Errorf("%s: %w", key, cache.ErrNotFound)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("read %s: %w", key, err))
	}
	return f, nil
}

// Put writes r to an unnamed file in the object's directory (O_TMPFILE)
// and links it into place once complete, so the object appears whole or
// not at all, and a crash leaves no partial file behind at all. Where
// O_TMPFILE is unsupported, or the object already exists (link cannot
// replace), it falls back to a named temp file renamed over the object.
// Like Nix's file:// store it does not fsync: ordering (NAR before its
// narinfo) is what keeps the cache consistent across a crash of nixpush.
func (c *Cache) Put(_ context.Context, key string, r io.Reader, _ string) error {
	return c.write(key, r, false)
}

// CanCreate is true: link(2) never replaces a file.
func (c *Cache) CanCreate(context.Context) (bool, error) { return true, nil }

// Create is Put that fails with cache.ErrExists, writing nothing, when
// the object exists: the finished file is linked under its name, which
// fails rather than replace one that appeared meanwhile.
func (c *Cache) Create(_ context.Context, key string, r io.Reader, _ string) error {
	return c.write(key, r, true)
}

func (c *Cache) write(key string, r io.Reader, create bool) error {
	dst := c.file(key)
	t, err := createTemp(filepath.Dir(dst))
	if err != nil {
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	size, err := copyPooled(t.File, r)
	if err == nil && (t.named || umask&0o044 != 0) {
		err = t.chmod(0o644) // caches are served to others: world-readable
	}
	if err == nil {
		err = t.publish(dst, create)
	}
	taken := errors.Is(err, cache.ErrExists)
	if taken {
		err = existing(key, dst, t.File, size) // while t still holds what was written
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if t.named {
		os.Remove(t.Name) // gone already when renamed into place
	}
	if taken {
		return err
	}
	if err != nil {
		return classify(fmt.Errorf("write %s: %w", key, err))
	}
	return nil
}

// existing describes the file under key for Create's caller: whether it
// holds the bytes just written to f (both are hashed here, so only a taken
// name pays for hashing, not every write), and its age.
func existing(key, file string, f io.ReaderAt, size int64) error {
	g, err := os.Open(file)
	if err != nil {
		return &cache.ExistsError{Key: key} // gone since: not a file to name
	}
	defer g.Close()
	fi, err := g.Stat()
	if err != nil || fi.Size() != size {
		return &cache.ExistsError{Key: key}
	}
	theirs, err := sha256Of(g)
	var ours []byte
	if err == nil {
		ours, err = sha256Of(io.NewSectionReader(f, 0, size))
	}
	if err != nil {
		return classify(fmt.Errorf("read %s: %w", key, err))
	}
	return &cache.ExistsError{Key: key, Identical: bytes.Equal(theirs, ours), Age: max(0, time.Since(fi.ModTime()))}
}

// copyBuffers are io.Copy's buffers, kept between writes: a small path's
// write allocated a fresh 32 KiB one (os.File.ReadFrom falls back to
// io.Copy for a stream), two thirds of all a large push allocated.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyPooled is io.Copy(w, r) with a pooled buffer.
func copyPooled(w io.Writer, r io.Reader) (int64, error) {
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	return io.CopyBuffer(struct{ io.Writer }{w}, r, *buf) // hides a ReadFrom, which would not use buf
}

func sha256Of(r io.Reader) ([]byte, error) {
	h := sha256.New()
	_, err := io.Copy(h, r)
	return h.Sum(nil), err
}

func (c *Cache) file(key string) string { return filepath.Join(c.dir, filepath.FromSlash(key)) }

// classify marks errors that retrying cannot fix as permanent: a cache
// path that is not a directory. A full disk, a read-only remount or wrong
// permissions are transient: an operator can fix them while the queue
// waits, and the daemon then drains without a restart.
func classify(err error) error {
	if retry.IsPermanent(err) {
		return err
	}
	for _, e := range []error{syscall.ENOTDIR, syscall.EISDIR} {
		if errors.Is(err, e) {
			return retry.Permanent(err)
		}
	}
	// os.Rename reports a directory in the object's place as EEXIST, not
	// EISDIR: the same dead end.
	var lerr *os.LinkError
	if errors.As(err, &lerr) && lerr.Op == "rename" && errors.Is(lerr.Err, syscall.EEXIST) {
		return retry.Permanent(err)
	}
	return err
}
