package cache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"nixpush/nixstore"
	"nixpush/retry"
)

// EnsureCacheInfo creates nix-cache-info when the cache has none, and
// refuses a cache made for another store directory: Nix would ignore every
// path in it.
func EnsureCacheInfo(ctx context.Context, c Cache, priority int) error {
	r, err := c.Get(ctx, "nix-cache-info")
	if errors.Is(err, ErrNotFound) {
		info := fmt.Sprintf("StoreDir: %s\nWantMassQuery: 1\nPriority: %d\n", nixstore.StoreDir, priority)
		if err := c.Put(ctx, "nix-cache-info", strings.NewReader(info), TypeCacheInfo); err != nil {
			return fmt.Errorf("create nix-cache-info in %s: %w", c, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("read nix-cache-info of %s: %w", c, err)
	}
	defer r.Close()
	storeDir, err := cacheInfoStoreDir(r)
	if err != nil {
		return fmt.Errorf("read nix-cache-info of %s: %w", c, err)
	}
	if storeDir != nixstore.StoreDir {
		return retry.Permanent(fmt.Errorf("cache %s is for store %s, not %s", c, storeDir, nixstore.StoreDir))
	}
	return nil
}

// ErrNotACache means a URL names no binary cache: it has no
// nix-cache-info, which Nix reads first and every cache has.
var ErrNotACache = errors.New("not a binary cache (no nix-cache-info)")

// RequireCacheInfo is the readers' check (verify, gc, pin): the cache
// exists and is for this store directory. It writes nothing.
func RequireCacheInfo(ctx context.Context, c Cache) error {
	r, err := c.Get(ctx, "nix-cache-info")
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s is %w", c, ErrNotACache)
	}
	if err != nil {
		return fmt.Errorf("read nix-cache-info of %s: %w", c, err)
	}
	defer r.Close()
	storeDir, err := cacheInfoStoreDir(r)
	if err != nil {
		return fmt.Errorf("read nix-cache-info of %s: %w", c, err)
	}
	if storeDir != nixstore.StoreDir {
		return retry.Permanent(fmt.Errorf("cache %s is for store %s, not %s", c, storeDir, nixstore.StoreDir))
	}
	return nil
}

func cacheInfoStoreDir(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "StoreDir" {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	// Nix assumes its own store dir when the key is absent.
	return nixstore.StoreDir, nil
}
