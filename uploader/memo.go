package uploader

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Memo remembers which store paths a cache is known to hold: written
// there by us, or found there by an existence check. A plan asks the
// cache only about the paths the memo does not know, which over a slow
// link is what makes a re-run of an all-present push cheap.
//
// A memo may never cause a missing path, so what it knows is bounded:
// entries expire after a TTL (the cache may be pruned behind our back),
// the Uploader ignores entries older than itself when Recheck is set,
// and forgets a path at once when its upload fails or its narinfo turns
// out missing. What the memo does and does not trust is documented on
// Uploader.Plan.
//
// Errors: a memo that cannot be read or written costs only existence
// checks, so the Uploader logs its errors and goes on without it. Forget
// is the exception: a failed Forget makes the Uploader stop trusting the
// memo for the rest of its life.
type Memo interface {
	// Present returns which of paths are known present, as remembered
	// after since (and within the memo's TTL).
	Present(ctx context.Context, paths []string, since time.Time) (map[string]bool, error)
	// Remember records paths as present now. It may buffer them until
	// Flush, but Present sees them at once.
	Remember(paths []string)
	// Forget drops paths, at once and durably.
	Forget(ctx context.Context, paths []string) error
	// Flush writes what Remember buffered.
	Flush(ctx context.Context) error
}

// DefaultMemoTTL is how long a path found in a cache is trusted to stay
// there: a day, the scale on which caches are pruned (nixpush gc's grace
// period is longer), and short enough that a path deleted behind our back
// is pushed again by the next day's runs.
const DefaultMemoTTL = 24 * time.Hour

// memoryLimit bounds a MemoryMemo; past it, it starts afresh, which only
// costs checks.
const memoryLimit = 200_000

// MemoryMemo is a Memo held in memory, for the life of a process.
type MemoryMemo struct {
	ttl  time.Duration
	mu   sync.Mutex
	seen map[string]time.Time
}

var _ Memo = (*MemoryMemo)(nil)

// NewMemoryMemo returns an empty memo whose entries expire after ttl.
func NewMemoryMemo(ttl time.Duration) *MemoryMemo {
	return &MemoryMemo{ttl: ttl, seen: map[string]time.Time{}}
}

func (m *MemoryMemo) Present(_ context.Context, paths []string, since time.Time) (map[string]bool, error) {
	if t := time.Now().Add(-m.ttl); t.After(since) {
		since = t
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, p := range paths {
		if t, ok := m.seen[p]; ok && t.After(since) {
			out[p] = true
		}
	}
	return out, nil
}

func (m *MemoryMemo) Remember(paths []string) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seen)+len(paths) > memoryLimit {
		m.seen = map[string]time.Time{}
	}
	for _, p := range paths {
		m.seen[p] = now
	}
}

func (m *MemoryMemo) Forget(_ context.Context, paths []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range paths {
		delete(m.seen, p)
	}
	return nil
}

func (m *MemoryMemo) Flush(context.Context) error { return nil }

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
