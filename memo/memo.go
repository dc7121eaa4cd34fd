// Package memo remembers, on this machine, which store paths a cache is
// known to hold, so a push asks the cache only about the others: over a
// slow link that is what makes a re-run cheap. Memo is the interface the
// uploader trusts (documented on uploader.Uploader.Plan); Memory lives as
// long as a process, File persists beside a cache's queue.
package memo

import (
	"context"
	"sync"
	"time"
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
	// Flush writes what Remember buffered, or may keep it a while longer
	// to write more at once (File: see flushEvery).
	Flush(ctx context.Context) error
}

// DefaultTTL is how long a path found in a cache is trusted to stay
// there: a day, the scale on which caches are pruned (nixpush gc's grace
// period is longer), and short enough that a path deleted behind our back
// is pushed again by the next day's runs.
const DefaultTTL = 24 * time.Hour

// memoryLimit bounds a Memory (about 50 bytes an entry); past it, it
// starts afresh, which only costs checks.
const memoryLimit = 1_000_000

// Memory is a Memo held in memory, for the life of a process. Entries are
// keyed by the path's hash part, as in a narinfo's name, and stamped with
// unix milliseconds.
type Memory struct {
	ttl  time.Duration
	mu   sync.Mutex
	seen map[key]int64
}

var _ Memo = (*Memory)(nil)

// NewMemory returns an empty memo whose entries expire after ttl.
func NewMemory(ttl time.Duration) *Memory {
	return &Memory{ttl: ttl, seen: map[key]int64{}}
}

// key is a path's hash part, the 32 characters its narinfo is named by,
// held in an array. A map keyed by arrays holds no pointers: the garbage
// collector never scans it (a push of 100,000 paths had as many strings
// here to mark at every collection), and finding a key reads no memory
// outside the map.
type key [32]byte

// keyOf is the key of path. A path whose hash part is not 32 characters
// is no store path: ok is false, and no memo ever knows it.
func keyOf(path string) (k key, ok bool) {
	h := hashPart(path)
	if len(h) != len(k) {
		return k, false
	}
	copy(k[:], h)
	return k, true
}

func (m *Memory) Present(_ context.Context, paths []string, since time.Time) (map[string]bool, error) {
	after := m.after(since)
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, p := range paths {
		if m.seenAfter(p, after) {
			out[p] = true
		}
	}
	return out, nil
}

// Has is Present for one path, remembered within the TTL: cheap enough to
// ask for every reference of every path of a push.
func (m *Memory) Has(path string) bool {
	after := m.after(time.Time{})
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seenAfter(path, after)
}

// seenAfter is whether path was remembered at or after the unix
// millisecond after; m.mu is held.
func (m *Memory) seenAfter(path string, after int64) bool {
	k, ok := keyOf(path)
	if !ok {
		return false
	}
	t, ok := m.seen[k]
	return ok && t >= after
}

// after is the oldest stamp still trusted: within the TTL and after since.
func (m *Memory) after(since time.Time) int64 {
	t := time.Now().Add(-m.ttl)
	if since.After(t) {
		t = since
	}
	return t.UnixMilli()
}

func (m *Memory) Remember(paths []string) {
	now := time.Now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.seen)+len(paths) > memoryLimit {
		m.seen = map[key]int64{}
	}
	for _, p := range paths {
		if k, ok := keyOf(p); ok {
			m.seen[k] = now
		}
	}
}

func (m *Memory) Forget(_ context.Context, paths []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range paths {
		if k, ok := keyOf(p); ok {
			delete(m.seen, k)
		}
	}
	return nil
}

func (m *Memory) Flush(context.Context) error { return nil }

// Reset forgets every path.
func (m *Memory) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seen = map[key]int64{}
}
