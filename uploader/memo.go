package uploader

import (
	"context"
	"time"

	"go.uber.org/zap"
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
