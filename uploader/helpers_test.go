package uploader_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// openStore opens the nixstore view of a private test store.
func openStore(t *testing.T, s *nixtest.Store) *nixstore.Store {
	t.Helper()
	st, err := nixstore.Open(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// newFileCache returns an empty file:// cache in a temp dir, and the dir.
func newFileCache(t *testing.T) (*filecache.Cache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := filecache.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

// keygen makes a key pair with real Nix and loads it as nixpush does.
func keygen(t *testing.T, name string) (sec signature.SecretKey, secFile string, pub signature.PublicKey, pubString string) {
	t.Helper()
	secFile, _, pubString = nixtest.Keygen(t, name)
	sec, err := uploader.LoadSigningKey(secFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err = signature.ParsePublicKey(pubString)
	if err != nil {
		t.Fatal(err)
	}
	return sec, secFile, pub, pubString
}

// addFile adds a one-file tree with the given content to the store.
func addFile(t *testing.T, s *nixtest.Store, name, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return s.Add(t, dir)
}

// cacheFiles lists every file under a cache dir, slash-separated and
// relative to it.
func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// countingCache counts the Puts of each key and lets a test hook into
// them, to line up concurrent uploads.
type countingCache struct {
	cache.Cache

	mu   sync.Mutex
	puts map[string]int

	// before, if set, runs first in every Put; an error fails the Put.
	before func(ctx context.Context, key string) error
	// after, if set, runs with the result of every Put.
	after func(key string, err error)
}

func newCountingCache(c cache.Cache) *countingCache {
	return &countingCache{Cache: c, puts: map[string]int{}}
}

func (c *countingCache) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if c.before != nil {
		if err := c.before(ctx, key); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.puts[key]++
	c.mu.Unlock()
	err := c.Cache.Put(ctx, key, r, contentType)
	if c.after != nil {
		c.after(key, err)
	}
	return err
}

func (c *countingCache) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.puts[key]
}

// countPrefix counts the Puts of keys starting with prefix.
func (c *countingCache) countPrefix(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, v := range c.puts {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// narPrefix is the NAR hash part of a NAR object's key (see NARKey), or
// the key itself for other objects.
func narPrefix(key string) string {
	if i := strings.LastIndexByte(key, '-'); strings.HasPrefix(key, "nar/") && i > 0 {
		return key[:i]
	}
	return key
}

// collect sums the bytes of an Upload's results and lists its errors.
func collect(results map[string]uploader.Result) (bytes int64, errs []error) {
	for _, r := range results {
		bytes += int64(r.Bytes)
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	return bytes, errs
}
