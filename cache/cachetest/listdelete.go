package cachetest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"nixpush/cache"
)

// nixKeys are keys shaped as Nix and nixpush name objects, each with a
// distinct size: the top level, one level down (nar/, log/,
// realisations/, debuginfo/) and deeper, for keys others may add.
var nixKeys = map[string]int{
	"nix-cache-info": 48,
	"0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r.narinfo":                                 301,
	"zz1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r.narinfo":                                 302,
	"nar/1w2x3y4z5a6b7c8d9f0g1h2i3j4k5l6m7n8p9q0r1s2v3w4x5y6z.nar.zst":         4097,
	"nar/0m7n8p9q0r1s2v3w4x5y6z1w2x3y4z5a6b7c8d9f0g1h2i3j4k5l6.nar.xz":         4098,
	"nar/2a6b7c8d9f0g1h2i3j4k5l6m7n8p9q0r1s2v3w4x5y6z1w2x3y4z5.nar":            1,
	"log/0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r-hello-2.12.drv":                      77,
	"realisations/sha256:1w2x3y4z5a6b7c8d9f0g1h2i3j4k5l6m7n8p9q0r1s2v!out.doi": 150,
	"debuginfo/0a1b2c3d4e5f60718293a4b5c6d7e8f901234567":                       90,
	"narthex/not-a-nar":   5, // shares "nar" but not "nar/"
	"pins/team/release-1": 60,
	"pins/team/a/b/c":     0, // empty, and four levels deep
}

// runListDelete checks List and Delete. A backend that cannot list has
// no business running the suite: its own tests check ErrCannotList.
func runListDelete(t *testing.T, newCache func(t *testing.T) cache.Cache) {
	ctx := context.Background()
	putAll := func(t *testing.T, c cache.Cache) {
		for key, size := range nixKeys {
			put(t, c, key, []byte(strings.Repeat("x", size)), cache.TypeNAR)
		}
	}
	t.Run("ListAll", func(t *testing.T) {
		c := newCache(t)
		before := time.Now()
		putAll(t, c)
		got := list(t, c, "")
		if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(nixKeys))) {
			t.Fatalf("List(\"\") = %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(nixKeys)))
		}
		for key, o := range got {
			if o.Size != int64(nixKeys[key]) {
				t.Errorf("%s: Size %d, want %d", key, o.Size, nixKeys[key])
			}
			// Backends report times to the second or coarser (HTTP dates).
			if d := o.ModTime.Sub(before); d < -time.Minute || d > time.Minute {
				t.Errorf("%s: ModTime %v, not within a minute of %v", key, o.ModTime, before)
			}
		}
	})
	t.Run("ListPrefix", func(t *testing.T) {
		c := newCache(t)
		putAll(t, c)
		for _, prefix := range []string{"nar/", "nar", "nar/0", "0a", "pins/team/a/", "realisations/sha256:", "nix-cache-info", "missing/", "missing"} {
			var want []string
			for key := range nixKeys {
				if strings.HasPrefix(key, prefix) {
					want = append(want, key)
				}
			}
			slices.Sort(want)
			if got := slices.Sorted(maps.Keys(list(t, c, prefix))); !slices.Equal(got, want) {
				t.Errorf("List(%q) = %v\nwant %v", prefix, got, want)
			}
		}
	})
	t.Run("ListEmpty", func(t *testing.T) {
		c := newCache(t)
		if got := list(t, c, ""); len(got) != 0 {
			t.Fatalf("List of an empty cache = %v", got)
		}
	})
	t.Run("ListStopsAtFnError", func(t *testing.T) {
		c := newCache(t)
		putAll(t, c)
		stop := errors.New("enough")
		calls := 0
		err := c.List(ctx, "", func(cache.Object) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List with fn failing: %v after %d calls; want fn's error after 1 call", err, calls)
		}
		calls = 0
		err = c.List(ctx, "nar/", func(o cache.Object) error {
			calls++
			return fmt.Errorf("at %s: %w", o.Key, stop)
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("List(nar/) with fn failing: %v after %d calls; want fn's error after 1 call", err, calls)
		}
	})
	t.Run("Delete", func(t *testing.T) {
		c := newCache(t)
		putAll(t, c)
		gone := []string{
			"0a1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r.narinfo",
			"nar/1w2x3y4z5a6b7c8d9f0g1h2i3j4k5l6m7n8p9q0r1s2v3w4x5y6z.nar.zst",
			"pins/team/a/b/c",
			"nar/never-existed.nar.zst", // missing: not an error
		}
		if err := c.Delete(ctx, gone); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		for _, key := range gone {
			if ok, err := c.Exists(ctx, key); err != nil || ok {
				t.Errorf("Exists(%s) after Delete = %v, %v; want false", key, ok, err)
			}
			if r, err := c.Get(ctx, key); !errors.Is(err, cache.ErrNotFound) {
				if err == nil {
					r.Close()
				}
				t.Errorf("Get(%s) after Delete: %v; want ErrNotFound", key, err)
			}
		}
		got := list(t, c, "")
		for key := range nixKeys {
			_, listed := got[key]
			if want := !slices.Contains(gone, key); listed != want {
				t.Errorf("after Delete, %s listed: %v, want %v", key, listed, want)
			}
		}
		if len(got) != len(nixKeys)-3 {
			t.Errorf("after Delete, %d objects listed, want %d", len(got), len(nixKeys)-3)
		}
		if ok, err := c.Exists(ctx, "zz1b2c3d4f5g6h7i8j9k0l1m2n3p4q5r.narinfo"); err != nil || !ok {
			t.Errorf("an object not deleted: Exists = %v, %v", ok, err)
		}
		// Deleting again, or nothing, is fine.
		if err := c.Delete(ctx, gone); err != nil {
			t.Errorf("Delete of deleted keys: %v", err)
		}
		if err := c.Delete(ctx, nil); err != nil {
			t.Errorf("Delete(nil): %v", err)
		}
	})
	t.Run("DeleteMany", func(t *testing.T) {
		c := newCache(t)
		var keys []string
		for i := range 40 {
			keys = append(keys, fmt.Sprintf("nar/%03d.nar", i))
			put(t, c, keys[i], []byte{byte(i)}, cache.TypeNAR)
		}
		if err := c.Delete(ctx, keys); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := list(t, c, "nar/"); len(got) != 0 {
			t.Fatalf("after deleting all, List(nar/) = %v", slices.Sorted(maps.Keys(got)))
		}
	})
}

// list collects a listing, failing on duplicates and on errors (which
// must carry no secret).
func list(t *testing.T, c cache.Cache, prefix string) map[string]cache.Object {
	t.Helper()
	got := map[string]cache.Object{}
	err := c.List(context.Background(), prefix, func(o cache.Object) error {
		if _, dup := got[o.Key]; dup {
			t.Errorf("List(%q) yields %s twice", prefix, o.Key)
		}
		got[o.Key] = o
		return nil
	})
	if err != nil {
		for _, secret := range Secrets {
			if secret != "" && strings.Contains(err.Error(), secret) {
				t.Errorf("error contains a secret: %v", err)
			}
		}
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return got
}
