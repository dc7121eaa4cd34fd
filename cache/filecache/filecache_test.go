package filecache_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cenkalti/backoff/v4"

	"nixpush/cache"
	"nixpush/cache/filecache"
)

// files lists every file and directory under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func newCache(t *testing.T) (*filecache.Cache, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := filecache.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c, dir
}

func get(t *testing.T, c *filecache.Cache, key string) string {
	t.Helper()
	r, err := c.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(t *testing.T, c *filecache.Cache, key string) bool {
	t.Helper()
	ok, err := c.Exists(t.Context(), key)
	if err != nil {
		t.Fatalf("Exists(%s): %v", key, err)
	}
	return ok
}

func TestPutGetExists(t *testing.T) {
	c, dir := newCache(t)
	if c.String() != "file://"+dir {
		t.Errorf("String() = %s, want file://%s", c, dir)
	}
	ctx := t.Context()
	for _, key := range []string{"nix-cache-info", "abc.narinfo", "nar/abc.nar.zst"} {
		if exists(t, c, key) {
			t.Errorf("Exists(%s) in an empty cache", key)
		}
		if _, err := c.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("Get(%s) in an empty cache = %v, want ErrNotFound", key, err)
		}
		if err := c.Put(ctx, key, strings.NewReader("v1 "+key), "text/plain"); err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
		if !exists(t, c, key) || get(t, c, key) != "v1 "+key {
			t.Errorf("%s not stored", key)
		}
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(key)))
		if err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("file of %s: %v, mode %v; want 0644 (served as is by web servers)", key, err, fi.Mode())
		}
	}
	// Overwrite.
	if err := c.Put(ctx, "abc.narinfo", strings.NewReader("v2"), cache.TypeNarInfo); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "abc.narinfo"); got != "v2" {
		t.Errorf("after overwrite: %q", got)
	}
	want := []string{"abc.narinfo", "nar/", "nar/abc.nar.zst", "nix-cache-info"}
	if got := files(t, dir); !slices.Equal(got, want) {
		t.Errorf("cache dir holds %q, want %q", got, want)
	}

	// A relative dir is made absolute.
	t.Chdir(t.TempDir())
	rel, err := filecache.New("relative")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rel.String(), "file:///") || !strings.HasSuffix(rel.String(), "/relative") {
		t.Errorf("String() of a relative cache = %s", rel)
	}
}

// failingReader yields some data, then fails.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestPutAtomic(t *testing.T) {
	errBoom := errors.New("boom")
	t.Run("reader fails", func(t *testing.T) {
		c, dir := newCache(t)
		for _, key := range []string{"new.narinfo", "nar/new.nar.xz"} {
			err := c.Put(t.Context(), key, &failingReader{data: []byte(strings.Repeat("x", 100_000)), err: errBoom}, cache.TypeNAR)
			if !errors.Is(err, errBoom) {
				t.Errorf("Put(%s) = %v, want the reader's error", key, err)
			}
			if exists(t, c, key) {
				t.Errorf("%s exists after a failed Put", key)
			}
		}
		// At most the directory made for the object, and no temp file.
		if got := files(t, dir); len(got) > 1 || (len(got) == 1 && got[0] != "nar/") {
			t.Errorf("cache dir holds %q after failed Puts", got)
		}
	})

	t.Run("reader fails, old object kept", func(t *testing.T) {
		c, dir := newCache(t)
		if err := c.Put(t.Context(), "k.narinfo", strings.NewReader("old"), cache.TypeNarInfo); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(t.Context(), "k.narinfo", &failingReader{data: []byte("new, half"), err: errBoom}, cache.TypeNarInfo); !errors.Is(err, errBoom) {
			t.Errorf("Put = %v, want the reader's error", err)
		}
		if got := get(t, c, "k.narinfo"); got != "old" {
			t.Errorf("object after a failed overwrite = %q, want the old one", got)
		}
		if got := files(t, dir); !slices.Equal(got, []string{"k.narinfo"}) {
			t.Errorf("cache dir holds %q", got)
		}
	})

	// While Put is still reading, the object is not visible.
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "visible only when complete", true: "never visible when failing"}[fail]
		t.Run(name, func(t *testing.T) {
			c, dir := newCache(t)
			pr, pw := io.Pipe()
			done := make(chan error, 1)
			go func() { done <- c.Put(context.Background(), "nar/x.nar", pr, cache.TypeNAR) }()
			// Write returns only once Put has read the bytes.
			if _, err := pw.Write([]byte("first half")); err != nil {
				t.Fatal(err)
			}
			if exists(t, c, "nar/x.nar") {
				t.Error("object visible while Put is still reading")
			}
			if _, err := c.Get(t.Context(), "nar/x.nar"); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("Get while Put is reading = %v, want ErrNotFound", err)
			}
			if fail {
				pw.CloseWithError(errBoom)
			} else {
				pw.Write([]byte(", second half"))
				pw.Close()
			}
			err := <-done
			switch {
			case fail && !errors.Is(err, errBoom):
				t.Errorf("Put = %v, want the reader's error", err)
			case !fail && err != nil:
				t.Errorf("Put = %v", err)
			}
			want := []string{"nar/", "nar/x.nar"}
			if fail {
				want = want[:1]
			} else if got := get(t, c, "nar/x.nar"); got != "first half, second half" {
				t.Errorf("object = %q", got)
			}
			if got := files(t, dir); !slices.Equal(got, want) {
				t.Errorf("cache dir holds %q, want %q", got, want)
			}
		})
	}
}

func isPermanent(err error) bool {
	var perm *backoff.PermanentError
	return errors.As(err, &perm)
}

// TestPermanentErrors uses a regular file where a directory must be
// (ENOTDIR) and a directory where a file must be (EISDIR): as root,
// permissions do not bite, and these can never succeed on retry.
func TestPermanentErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := filecache.New(file); err == nil || !isPermanent(err) {
		t.Errorf("New(regular file) = %v, want a permanent error", err)
	}
	if _, err := filecache.New(filepath.Join(file, "sub")); err == nil || !isPermanent(err) {
		t.Errorf("New(under a regular file) = %v, want a permanent error", err)
	}
	if _, err := filecache.New(""); err == nil || !isPermanent(err) {
		t.Errorf("New(\"\") = %v, want a permanent error", err)
	}

	c, dir := newCache(t)
	ctx := t.Context()
	// "nar" is a file: nothing can be put, got or checked beneath it.
	if err := os.WriteFile(filepath.Join(dir, "nar"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "nar/a.nar", strings.NewReader("data"), cache.TypeNAR); err == nil || !isPermanent(err) || !strings.Contains(err.Error(), "nar/a.nar") {
		t.Errorf("Put under a file = %v, want a permanent error naming the key", err)
	}
	if _, err := c.Exists(ctx, "nar/a.nar"); err == nil || !isPermanent(err) {
		t.Errorf("Exists under a file = %v, want a permanent error", err)
	}
	if _, err := c.Get(ctx, "nar/a.nar"); err == nil || !isPermanent(err) || errors.Is(err, cache.ErrNotFound) {
		t.Errorf("Get under a file = %v, want a permanent error, not ErrNotFound", err)
	}
	// A directory in the object's place.
	if err := os.Mkdir(filepath.Join(dir, "x.narinfo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "x.narinfo", strings.NewReader("data"), cache.TypeNarInfo); err == nil || !isPermanent(err) {
		t.Errorf("Put onto a directory = %v, want a permanent error", err)
	}
	if got := files(t, dir); !slices.Equal(got, []string{"nar", "x.narinfo/"}) {
		t.Errorf("cache dir holds %q after failed Puts", got)
	}

	// A missing object is not an error, let alone a permanent one.
	if _, err := c.Get(ctx, "missing.narinfo"); !errors.Is(err, cache.ErrNotFound) || isPermanent(err) {
		t.Errorf("Get(missing) = %v, want a plain ErrNotFound", err)
	}
}
