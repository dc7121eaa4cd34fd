package filecache_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
)

// listKeys returns the keys List yields for prefix, sorted, with sizes.
func listKeys(t *testing.T, c cache.Cache, prefix string) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := c.List(t.Context(), prefix, func(o cache.Object) error {
		if _, dup := got[o.Key]; dup {
			t.Errorf("List(%q) yields %s twice", prefix, o.Key)
		}
		got[o.Key] = o.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}

func sortedKeys(m map[string]int64) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestListDelete(t *testing.T) {
	c, dir := newCache(t)
	ctx := t.Context()
	objects := []string{"nix-cache-info", "abc.narinfo", "abd.narinfo", "nar/abc.nar.zst", "nar/x.nar",
		"log/abc-foo.drv", "nixpush/pins/release-1", "realisations/sha256:x!out.doi"}
	for _, key := range objects {
		if err := c.Put(ctx, key, strings.NewReader(key), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	// Leftovers of interrupted writes are not objects.
	for _, tmp := range []string{".nixpush-tmp-123", "nar/.nixpush-tmp-456"} {
		if err := os.WriteFile(filepath.Join(dir, tmp), []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	all := listKeys(t, c, "")
	if got, want := sortedKeys(all), slices.Sorted(slices.Values(objects)); !slices.Equal(got, want) {
		t.Errorf("List(\"\") = %q, want %q", got, want)
	}
	if all["nar/abc.nar.zst"] != int64(len("nar/abc.nar.zst")) {
		t.Errorf("size of nar/abc.nar.zst = %d", all["nar/abc.nar.zst"])
	}
	for prefix, want := range map[string][]string{
		"nar/":             {"nar/abc.nar.zst", "nar/x.nar"},
		"nar/a":            {"nar/abc.nar.zst"},
		"ab":               {"abc.narinfo", "abd.narinfo"},
		"nixpush/pins/":    {"nixpush/pins/release-1"},
		"missing/":         nil,
		"nix-cache-info/x": nil, // a file where a directory would be
	} {
		if got := sortedKeys(listKeys(t, c, prefix)); !slices.Equal(got, want) {
			t.Errorf("List(%q) = %q, want %q", prefix, got, want)
		}
	}

	// ModTime is the file's mtime.
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(dir, "abc.narinfo"), old, old); err != nil {
		t.Fatal(err)
	}
	err := c.List(ctx, "abc.", func(o cache.Object) error {
		if !o.ModTime.Equal(old) {
			t.Errorf("ModTime of %s = %v, want %v", o.Key, o.ModTime, old)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// fn's error stops the listing and is returned.
	errStop := errors.New("stop")
	calls := 0
	if err := c.List(ctx, "", func(cache.Object) error { calls++; return errStop }); !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("List with failing fn = %v after %d calls, want errStop after 1", err, calls)
	}

	// Delete: missing keys are fine; others are gone.
	if err := c.Delete(ctx, []string{"abc.narinfo", "nar/abc.nar.zst", "never-was.narinfo"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if exists(t, c, "abc.narinfo") || exists(t, c, "nar/abc.nar.zst") || !exists(t, c, "abd.narinfo") {
		t.Error("Delete removed the wrong objects")
	}
	if err := c.Delete(ctx, []string{"../outside", ""}); err == nil || !isPermanent(err) {
		t.Errorf("Delete of a key outside the cache = %v, want a permanent error", err)
	}
}

func TestListMissingCacheDir(t *testing.T) {
	c, dir := newCache(t)
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := c.List(t.Context(), "", func(cache.Object) error { return nil }); err == nil {
		t.Error("List of a removed cache directory succeeded")
	}
}
