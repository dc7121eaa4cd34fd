// Package cachetest is the conformance suite every cache.Cache backend
// runs: the behaviour the uploader relies on, checked against a real
// server or directory.
package cachetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"sync"
	"testing"

	"nixpush/cache"
)

// Run checks a backend. newCache returns an empty cache for each subtest.
func Run(t *testing.T, newCache func(t *testing.T) cache.Cache) {
	ctx := context.Background()
	t.Run("PutGetExists", func(t *testing.T) {
		c := newCache(t)
		put(t, c, "abc.narinfo", []byte("StorePath: x\n"), cache.TypeNarInfo)
		if ok, err := c.Exists(ctx, "abc.narinfo"); err != nil || !ok {
			t.Fatalf("Exists after Put = %v, %v; want true", ok, err)
		}
		if got := get(t, c, "abc.narinfo"); string(got) != "StorePath: x\n" {
			t.Fatalf("Get = %q", got)
		}
	})
	t.Run("MissingIsNotFound", func(t *testing.T) {
		c := newCache(t)
		if ok, err := c.Exists(ctx, "missing.narinfo"); err != nil || ok {
			t.Fatalf("Exists(missing) = %v, %v; want false, nil", ok, err)
		}
		r, err := c.Get(ctx, "missing.narinfo")
		if err == nil {
			r.Close()
		}
		if !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Get(missing) error = %v; want ErrNotFound", err)
		}
	})
	t.Run("Overwrite", func(t *testing.T) {
		c := newCache(t)
		put(t, c, "nix-cache-info", []byte("one"), cache.TypeCacheInfo)
		put(t, c, "nix-cache-info", []byte("two"), cache.TypeCacheInfo)
		if got := get(t, c, "nix-cache-info"); string(got) != "two" {
			t.Fatalf("Get after overwrite = %q", got)
		}
	})
	t.Run("FailingReaderLeavesNothing", func(t *testing.T) {
		c := newCache(t)
		boom := errors.New("reader failed on purpose")
		r := io.MultiReader(bytes.NewReader(make([]byte, 3<<20)), errReader{boom})
		err := c.Put(ctx, "nar/failed.nar.zst", r, cache.TypeNAR)
		if err == nil {
			t.Fatal("Put with a failing reader succeeded")
		}
		if ok, err := c.Exists(ctx, "nar/failed.nar.zst"); err != nil || ok {
			t.Fatalf("after a failed Put, Exists = %v, %v; want false", ok, err)
		}
	})
	t.Run("LargeStreamRoundTrips", func(t *testing.T) {
		c := newCache(t)
		const size = 40 << 20 // larger than any sane single-part threshold
		want := sha256.New()
		src := io.TeeReader(io.LimitReader(rand.New(rand.NewSource(1)), size), want)
		if err := c.Put(ctx, "nar/large.nar", src, cache.TypeNAR); err != nil {
			t.Fatalf("Put large: %v", err)
		}
		r, err := c.Get(ctx, "nar/large.nar")
		if err != nil {
			t.Fatalf("Get large: %v", err)
		}
		defer r.Close()
		got := sha256.New()
		n, err := io.Copy(got, r)
		if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("large object read back: %d bytes, err %v, hash match %v", n, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
	})
	t.Run("ConcurrentPuts", func(t *testing.T) {
		c := newCache(t)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("nar/%02d.nar", i)
				errs <- c.Put(ctx, key, bytes.NewReader(bytes.Repeat([]byte{byte(i)}, 100_000+i)), cache.TypeNAR)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent Put: %v", err)
			}
		}
		for i := range 16 {
			if got := get(t, c, fmt.Sprintf("nar/%02d.nar", i)); len(got) != 100_000+i || got[0] != byte(i) {
				t.Fatalf("object %d: %d bytes", i, len(got))
			}
		}
	})
	t.Run("StringHasNoSecrets", func(t *testing.T) {
		c := newCache(t)
		s := c.String()
		if s == "" {
			t.Fatal("String() is empty")
		}
		for _, secret := range Secrets {
			if secret != "" && bytes.Contains([]byte(s), []byte(secret)) {
				t.Fatalf("String() %q contains a secret", s)
			}
		}
	})
	runListDelete(t, newCache)
}

// Secrets lists credentials a backend's test set up; String() and errors
// must never contain them.
var Secrets []string

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func put(t *testing.T, c cache.Cache, key string, data []byte, ct string) {
	t.Helper()
	if err := c.Put(context.Background(), key, bytes.NewReader(data), ct); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func get(t *testing.T, c cache.Cache, key string) []byte {
	t.Helper()
	r, err := c.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}
