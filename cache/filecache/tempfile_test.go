package filecache_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"nixpush/cache"
	"nixpush/cache/filecache"
)

// TestWriteWays runs Put and Create the three ways a file can be written:
// an unnamed file linked by its descriptor (a kernel from 6.10, or root),
// one linked through /proc (an older kernel, unprivileged), and a named
// temp file (a filesystem without O_TMPFILE).
func TestWriteWays(t *testing.T) {
	ways := map[string]func(t *testing.T){
		"unnamed, by descriptor": func(t *testing.T) {},
		"unnamed, through /proc": func(t *testing.T) {
			filecache.EmptyPathDenied.Store(true)
			t.Cleanup(func() { filecache.EmptyPathDenied.Store(false) })
		},
		"named": func(t *testing.T) {
			saved := *filecache.OpenUnnamed
			*filecache.OpenUnnamed = func(dir string) (int, error) { // as a filesystem without O_TMPFILE answers
				if _, err := os.Stat(dir); err != nil {
					return -1, unix.ENOENT
				}
				return -1, unix.EOPNOTSUPP
			}
			t.Cleanup(func() { *filecache.OpenUnnamed = saved })
		},
	}
	for name, setUp := range ways {
		t.Run(name, func(t *testing.T) {
			setUp(t)
			c, dir := newCache(t)
			put := func(key, content string) {
				t.Helper()
				if err := c.Put(t.Context(), key, strings.NewReader(content), cache.TypeNAR); err != nil {
					t.Fatalf("Put(%s): %v", key, err)
				}
			}
			put("nar/a.nar", "first")
			put("nar/a.nar", "second") // replaces
			if got := get(t, c, "nar/a.nar"); got != "second" {
				t.Errorf("nar/a.nar = %q after a second Put, want %q", got, "second")
			}
			if err := c.Create(t.Context(), "k.narinfo", strings.NewReader("info"), cache.TypeNarInfo); err != nil {
				t.Fatalf("Create: %v", err)
			}
			for content, identical := range map[string]bool{"info": true, "other": false} {
				err := c.Create(t.Context(), "k.narinfo", strings.NewReader(content), cache.TypeNarInfo)
				var exists *cache.ExistsError
				if !errors.As(err, &exists) || exists.Identical != identical {
					t.Errorf("Create(%q) over %q = %v, want an ExistsError, Identical %v", content, "info", err, identical)
				}
			}
			if got := get(t, c, "k.narinfo"); got != "info" {
				t.Errorf("k.narinfo = %q after Creates over it, want %q", got, "info")
			}
			for _, key := range []string{"nar/a.nar", "k.narinfo"} {
				fi, err := os.Stat(filepath.Join(dir, key))
				if err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("%s: %v, mode %v, want 0644", key, err, fi.Mode().Perm())
				}
			}
			if got, want := files(t, dir), []string{"k.narinfo", "nar/", "nar/a.nar"}; !slices.Equal(got, want) {
				t.Errorf("cache holds %q, want %q (no temp file left)", got, want)
			}
		})
	}
}
