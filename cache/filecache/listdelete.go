package filecache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"nixpush/cache"
	"nixpush/retry"
)

// readDirBatch bounds the directory entries held at once while listing:
// a nar/ directory of a big cache holds hundreds of thousands of files.
const readDirBatch = 1024

// List walks the cache directory. Keys are slash-separated paths relative
// to it; temp files of writes in progress are not objects and are skipped.
// Only directories that can hold keys with the prefix are read, so listing
// "nar/" or "nixpush/pins/" does not walk the whole cache.
func (c *Cache) List(ctx context.Context, prefix string, fn func(cache.Object) error) error {
	// Start at the deepest directory every matching key lies under.
	start := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = prefix[:i]
	}
	if err := c.walk(ctx, start, prefix, fn); !errors.Is(err, errNoDir) {
		return err
	}
	return nil // nothing was ever stored under the prefix
}

// errNoDir: a directory below the root is missing or is a file, so no key
// lies beneath it.
var errNoDir = errors.New("no such directory")

// walk lists the directory dir (a key prefix without trailing slash, ""
// for the root) and recurses into subdirectories that may hold matches.
func (c *Cache) walk(ctx context.Context, dir, prefix string, fn func(cache.Object) error) error {
	f, err := os.Open(c.file(dir))
	if err != nil {
		if dir != "" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
			return errNoDir
		}
		return classify(fmt.Errorf("list %s: %w", c.dirName(dir), err))
	}
	defer f.Close()
	for {
		entries, err := f.ReadDir(readDirBatch)
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.visit(ctx, dir, prefix, e, fn); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if dir != "" && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)) {
				return errNoDir
			}
			return classify(fmt.Errorf("list %s: %w", c.dirName(dir), err))
		}
	}
}

func (c *Cache) visit(ctx context.Context, dir, prefix string, e fs.DirEntry, fn func(cache.Object) error) error {
	key := path.Join(dir, e.Name())
	if strings.HasPrefix(e.Name(), tmpPrefix) {
		return nil
	}
	info, err := e.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // deleted while we listed
	}
	if err != nil {
		return classify(fmt.Errorf("list %s: %w", key, err))
	}
	if info.Mode()&fs.ModeSymlink != 0 {
		// An operator may link objects in; list what they point to.
		if info, err = os.Stat(c.file(key)); err != nil {
			return nil // dangling: not an object anyone can read
		}
	}
	if info.IsDir() {
		if strings.HasPrefix(key+"/", prefix) || strings.HasPrefix(prefix, key+"/") {
			if err := c.walk(ctx, key, prefix, fn); !errors.Is(err, errNoDir) {
				return err
			}
			return nil // removed while we listed
		}
		return nil
	}
	if !info.Mode().IsRegular() || !strings.HasPrefix(key, prefix) {
		return nil
	}
	return fn(cache.Object{Key: key, Size: info.Size(), ModTime: info.ModTime()})
}

func (c *Cache) dirName(dir string) string {
	if dir == "" {
		return "cache directory"
	}
	return dir + "/"
}

// Delete removes the objects' files. Keys must name files inside the
// cache: a key such as "../x" is refused rather than followed out of it.
func (c *Cache) Delete(ctx context.Context, keys []string) error {
	for _, key := range keys {
		if !filepath.IsLocal(filepath.FromSlash(key)) {
			return retry.Permanent(fmt.Errorf("delete %q: not a key inside the cache", key))
		}
	}
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := os.Remove(c.file(key))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return classify(fmt.Errorf("delete %s: %w", key, err))
		}
	}
	return nil
}
