// Package pushtest sets up what the cachecheck and cachegc tests share: a
// private store with real Nix, a file:// cache, signing keys, and pushes
// through nixpush's own uploader.
package pushtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nix-community/go-nix/pkg/narinfo/signature"
	"go.uber.org/zap/zaptest"

	"nixpush/cache"
	"nixpush/cache/filecache"
	"nixpush/internal/nixtest"
	"nixpush/nixstore"
	"nixpush/uploader"
)

// Fixture is a private store and a cache to push it to.
type Fixture struct {
	Nix   *nixtest.Store
	Store *nixstore.Store
	Dir   string // the cache directory
	Cache *filecache.Cache
	Key   signature.SecretKey
	Pub   string // the public key in Nix's format, trusted by Substitute
}

// New makes a store, an empty cache and a signing key.
func New(t *testing.T) *Fixture {
	t.Helper()
	f := &Fixture{Nix: nixtest.NewStore(t), Dir: filepath.Join(t.TempDir(), "cache")}
	var err error
	if f.Store, err = nixstore.Open(f.Nix.Root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Store.Close() })
	if f.Cache, err = filecache.New(f.Dir); err != nil {
		t.Fatal(err)
	}
	f.Key, f.Pub = Keygen(t, "test-cache-1")
	return f
}

// URL is the cache as a substituter.
func (f *Fixture) URL() string { return "file://" + f.Dir }

// Keygen makes a key pair with real Nix.
func Keygen(t *testing.T, name string) (signature.SecretKey, string) {
	t.Helper()
	secFile, _, pub := nixtest.Keygen(t, name)
	sec, err := uploader.LoadSigningKey(secFile)
	if err != nil {
		t.Fatal(err)
	}
	return sec, pub
}

// AddFile adds a one-file tree to the store and returns its path.
func (f *Fixture) AddFile(t *testing.T, name, content string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f.Nix.Add(t, dir)
}

// Push uploads the closures of roots that the cache lacks, signed with
// key, as `nixpush push` does, and fails the test on any error.
func (f *Fixture) Push(t *testing.T, key signature.SecretKey, roots ...string) {
	t.Helper()
	closure, err := f.Store.Closure(t.Context(), roots)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.EnsureCacheInfo(t.Context(), f.Cache, 40); err != nil {
		t.Fatal(err)
	}
	plan, err := uploader.MakePlan(t.Context(), f.Cache, closure, uploader.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	u := uploader.New(f.Store, f.Cache, uploader.DefaultCompression, []signature.SecretKey{key}, 4, zaptest.NewLogger(t))
	for path, r := range u.Upload(t.Context(), plan.Upload) {
		if r.Err != nil {
			t.Fatalf("push %s: %v", path, r.Err)
		}
	}
}

// NARFile is the file of a pushed path's NAR in the cache.
func (f *Fixture) NARFile(t *testing.T, storePath string) string {
	t.Helper()
	ni, err := cache.ReadNarInfo(t.Context(), f.Cache, cache.NarInfoKey(storePath))
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(f.Dir, filepath.FromSlash(ni.URL))
}

// NarInfoFile is the file of a path's narinfo in the cache.
func (f *Fixture) NarInfoFile(storePath string) string {
	return filepath.Join(f.Dir, cache.NarInfoKey(storePath))
}

// Substitute realises paths into a fresh store from the cache alone,
// trusting only the fixture's key, and fails the test if Nix cannot.
func (f *Fixture) Substitute(t *testing.T, paths ...string) {
	t.Helper()
	fresh := filepath.Join(t.TempDir(), "fresh")
	if out, err := nixtest.Substitute(t, fresh, f.URL(), f.Pub, paths...); err != nil {
		t.Fatalf("a fresh store cannot substitute from the cache: %v\n%s", err, out)
	}
}

// WithNewCache is the same store and key with a new, empty cache.
func (f *Fixture) WithNewCache(t *testing.T) *Fixture {
	t.Helper()
	g := *f
	g.Dir = filepath.Join(t.TempDir(), "cache")
	var err error
	if g.Cache, err = filecache.New(g.Dir); err != nil {
		t.Fatal(err)
	}
	return &g
}

// SetModTimes sets the modification time of every file in the cache, as
// if everything in it had been written then.
func (f *Fixture) SetModTimes(t *testing.T, when time.Time) {
	t.Helper()
	err := filepath.WalkDir(f.Dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chtimes(p, when, when)
	})
	if err != nil {
		t.Fatal(err)
	}
}
