package uploader

import (
	"context"
	"time"

	"go.uber.org/zap"

	"nixpush/memo"
)

// remember records a path as present in the cache.
func (u *Uploader) remember(paths ...string) {
	if len(paths) == 0 {
		return
	}
	u.mu.Lock()
	for _, p := range paths {
		delete(u.missing, p)
	}
	u.mu.Unlock()
	u.seenPaths().Remember(paths)
	u.Memo.Remember(paths)
}

// Forget drops paths from what the cache is known to hold (gc calls it
// for what it deleted). When the memo
// cannot forget, it is not consulted again (memoBroken): it might say
// present of a path that is not.
func (u *Uploader) Forget(paths ...string) {
	if len(paths) == 0 {
		return
	}
	_ = u.seenPaths().Forget(context.Background(), paths) // in memory: cannot fail
	_ = u.wrote.Forget(context.Background(), paths)
	// Forgetting must land even when the push is being cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := u.Memo.Forget(ctx, paths); err != nil {
		u.mu.Lock()
		u.memoBroken = true
		u.mu.Unlock()
		u.Log.Error("cache memo: cannot forget paths; not using it any more", zap.Error(err))
	}
}

// flushMemo writes what the memo buffered; failing costs only checks.
func (u *Uploader) flushMemo(ctx context.Context) {
	if err := u.Memo.Flush(context.WithoutCancel(ctx)); err != nil {
		u.Log.Warn("cache memo: cannot record paths", zap.Error(err))
	}
}

// memoPresent is Memo.Present as the Uploader trusts it: not at all once
// broken, and with Recheck only for what this Uploader itself saw.
func (u *Uploader) memoPresent(ctx context.Context, paths []string) map[string]bool {
	u.mu.Lock()
	broken := u.memoBroken
	u.mu.Unlock()
	if broken || len(paths) == 0 {
		return nil
	}
	since := time.Time{}
	if u.Recheck {
		since = u.created
	}
	known, err := u.Memo.Present(ctx, paths, since)
	if err != nil {
		u.Log.Warn("cache memo: cannot read; asking the cache", zap.Error(err))
		return nil
	}
	return known
}

// seenPaths is what this Uploader saw in the cache, made at first use
// with the TTL set by then.
func (u *Uploader) seenPaths() *memo.Memory {
	u.seenOnce.Do(func() {
		ttl := u.MemoTTL
		if ttl <= 0 {
			ttl = memo.DefaultTTL
		}
		u.seen = memo.NewMemory(ttl)
	})
	return u.seen
}

// dealtWith reports which of paths a batch need not walk or plan: what
// this Uploader saw in the cache or wrote there within the TTL, what it
// is uploading now (its flight is waited for by whoever needs it), and
// what the memo knows the cache holds. Such a path is taken as present
// with its closure: it was written after its references, and each entry
// lasts no longer than the TTL. The plan of a push checks, path by
// path, the whole closure a user names; this is for a batch's search of
// dependencies it must upload first, so a daemon's batch of new paths
// reads the new paths, not the store beneath them.
func (u *Uploader) dealtWith(ctx context.Context, paths []string) map[string]bool {
	var rest []string
	inflight := map[string]bool{}
	u.mu.Lock()
	for _, p := range paths {
		if _, ok := u.inflight[p]; ok {
			inflight[p] = true
		} else {
			rest = append(rest, p)
		}
	}
	u.mu.Unlock()
	out, _ := u.seenOrMemo(ctx, rest)
	for p := range inflight {
		out[p] = true
	}
	return out
}

// knownPresent is which of paths this Uploader saw in the cache, or the
// memo knows (those join what it saw: their closures are in the same
// plan, checked one by one).
func (u *Uploader) knownPresent(ctx context.Context, paths []string) map[string]bool {
	known, fromMemo := u.seenOrMemo(ctx, paths)
	u.seenPaths().Remember(fromMemo)
	return known
}

// seenOrMemo is which of paths this Uploader saw in the cache or the memo
// knows, and of those, the ones only the memo knew.
func (u *Uploader) seenOrMemo(ctx context.Context, paths []string) (known map[string]bool, fromMemo []string) {
	known = map[string]bool{}
	var rest []string
	for _, p := range paths {
		if u.seenPaths().Has(p) {
			known[p] = true
		} else {
			rest = append(rest, p)
		}
	}
	for p := range u.memoPresent(ctx, rest) {
		known[p] = true
		fromMemo = append(fromMemo, p)
	}
	return known, fromMemo
}

// checkCache asks CheckCache whether the cache is still the one the memo
// describes, and forgets what this Uploader saw when it is not.
func (u *Uploader) checkCache(ctx context.Context) error {
	if u.CheckCache == nil {
		return nil
	}
	reset, err := u.CheckCache(ctx)
	if !reset {
		return err
	}
	u.seenPaths().Reset()
	u.wrote.Reset()
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.memoBroken = true
		u.Log.Warn("cache memo not used any more", zap.Error(err))
	}
	return nil
}
