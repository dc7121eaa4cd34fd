package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"nixpush/cache"
	"nixpush/memo"
	"nixpush/retry"
)

// identityRecheck is how long a lane trusts its last look at the cache's
// nix-cache-info. A push looks once, as it opens; a daemon looks again
// before planning when this long has passed, so a cache wiped under a
// running daemon is noticed within a minute of its next push. (A
// variable for the tests.)
var identityRecheck = time.Minute

// cacheIdentity keeps a lane's memo true to the cache it describes. The
// memo records the ID in the cache's nix-cache-info (cache.IDKey); a
// cache without nix-cache-info was wiped (or is new), one with another
// ID was made again under the same URL: either way what the memo knew is
// forgotten and every path is asked for again. One GET per run: on a
// slow link it travels while Open reads the closure and opens the queue.
type cacheIdentity struct {
	cache         cache.Cache // the backend: reads retry on their own
	memo          *memo.File  // nil: none
	priority      int         // for a new nix-cache-info
	wantMassQuery bool
	signers       []string // names of the lane's keys
	allowUnsigned bool
	log           *zap.Logger

	mu      sync.Mutex
	checked time.Time
}

// fetched is what one read of nix-cache-info gave.
type fetched struct {
	info cache.CacheInfo
	err  error // cache.ErrNotFound: there is none
}

func (ci *cacheIdentity) fetch(ctx context.Context) fetched {
	info, err := cache.ReadCacheInfo(ctx, ci.cache)
	return fetched{info, err}
}

// settle acts on what fetch found: it refuses an unsigned push into a
// signed cache before writing anything, writes nix-cache-info when it is
// missing or lacks the ID or this lane's signers, and resets the memo
// when it describes another cache. It reports whether the memo was reset;
// reset with an error means the memo must not be used (it could not be
// reset, or the cache has no ID to tie it to).
func (ci *cacheIdentity) settle(ctx context.Context, f fetched) (reset bool, err error) {
	info := f.info
	missing := errors.Is(f.err, cache.ErrNotFound)
	if f.err != nil && !missing {
		return false, f.err
	}
	if err := info.CheckStoreDir(ci.cache); err != nil {
		return false, err
	}
	if len(ci.signers) == 0 && len(info.Signers) > 0 && !ci.allowUnsigned {
		return false, retry.Permanent(fmt.Errorf("the narinfos of %s are signed by %s (its nix-cache-info says so), and Nix clients trusting that key reject unsigned ones: give --signing-key (or secret-key= in the URL), or --allow-unsigned to push unsigned paths anyway",
			ci.cache, strings.Join(info.Signers, ", ")))
	}
	write := missing
	if missing {
		info = cache.NewCacheInfo(ci.priority, ci.wantMassQuery)
		ci.log.Info("the cache has no nix-cache-info: a new cache, or one wiped; every path is checked", zap.String("cache", ci.cache.String()))
	}
	rewrite := false
	if info.ID == "" {
		// Made by Nix or an older nixpush: from now on it has an ID.
		info, rewrite = info.WithID(cache.NewCacheInfo(0, true).ID), true
	}
	if !info.SignedBy(ci.signers) {
		info, rewrite = info.WithSigners(ci.signers), true
	}
	switch {
	case write:
		// A small body that can be sent again: retried as a read would be.
		if err := cache.WriteCacheInfo(ctx, cache.WithRetry(ci.cache, retry.Reads), info); err != nil {
			return false, err
		}
	case rewrite:
		// Adding a line is worth one try: a cache that takes no write
		// now (a full disk) still serves what it has, and the push says
		// what fails. Without an ID the memo cannot be tied to this cache.
		if err := cache.WriteCacheInfo(ctx, ci.cache, info); err != nil {
			ci.log.Warn("cannot add nixpush's lines to nix-cache-info", zap.Error(err))
			if f.info.ID == "" {
				return true, fmt.Errorf("the cache has no %s: %w", cache.IDKey, err)
			}
		}
	}
	ci.mu.Lock()
	ci.checked = time.Now()
	ci.mu.Unlock()
	if ci.memo == nil {
		return false, nil
	}
	known, err := ci.memo.CacheID(ctx)
	if err == nil && known == info.ID {
		return false, nil
	}
	if known != "" {
		ci.log.Info("the cache was made again since this machine last pushed to it: every path is checked",
			zap.String("cache", ci.cache.String()))
	}
	// A memo that cannot be reset is not trusted: Forget fails the same
	// way and makes the uploader stop using it.
	if err := ci.memo.Reset(ctx, info.ID); err != nil {
		return true, err
	}
	return true, nil
}

// recheck looks at nix-cache-info again when identityRecheck has passed
// since the last look (uploader.Uploader.CheckCache).
func (ci *cacheIdentity) recheck(ctx context.Context) (reset bool, err error) {
	ci.mu.Lock()
	fresh := time.Since(ci.checked) < identityRecheck
	ci.mu.Unlock()
	if fresh {
		return false, nil
	}
	return ci.settle(ctx, ci.fetch(ctx))
}
