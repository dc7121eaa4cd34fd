package memo_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nixpush/memo"
)

const (
	a = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
	b = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
	c = "/nix/store/cccccccccccccccccccccccccccccccc-c"
)

func open(t *testing.T, file string, ttl time.Duration) *memo.File {
	t.Helper()
	m, err := memo.Open(file, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func present(t *testing.T, m *memo.File, since time.Time) map[string]bool {
	t.Helper()
	got, err := m.Present(t.Context(), []string{a, b, c}, since)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestRememberFlushForgetAcrossOpens(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x"+memo.FileSuffix)
	m := open(t, file, time.Hour)
	m.Remember([]string{a, b})
	if got := present(t, m, time.Time{}); !got[a] || !got[b] || got[c] {
		t.Fatalf("buffered: Present = %v, want a and b", got)
	}
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Forget(t.Context(), []string{b}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	m = open(t, file, time.Hour)
	if got := present(t, m, time.Time{}); !got[a] || got[b] || got[c] {
		t.Errorf("reopened: Present = %v, want only a", got)
	}
	// Recheck: only what was seen after since counts.
	since := time.Now()
	m.Remember([]string{c})
	if got := present(t, m, since); got[a] || !got[c] {
		t.Errorf("since now: Present = %v, want only c", got)
	}
}

func TestExpiredEntriesAreNotTrusted(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x"+memo.FileSuffix)
	m := open(t, file, time.Hour)
	m.Remember([]string{a})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The same file read with a TTL shorter than the entry's age.
	m = open(t, file, time.Nanosecond)
	if got := present(t, m, time.Time{}); got[a] {
		t.Errorf("Present = %v after the TTL", got)
	}
}

func TestDamagedFileStartsAfresh(t *testing.T) {
	file := filepath.Join(t.TempDir(), "x"+memo.FileSuffix)
	if err := os.WriteFile(file, []byte("not a database, but long enough to look like a header of one......"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := open(t, file, time.Hour)
	if got := present(t, m, time.Time{}); len(got) != 0 {
		t.Errorf("Present = %v on a fresh memo", got)
	}
	m.Remember([]string{a})
	if err := m.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestCacheIDAndReset(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "x"+memo.FileSuffix) // the state dir is made
	m := open(t, file, time.Hour)
	if id, err := m.CacheID(t.Context()); err != nil || id != "" {
		t.Fatalf("a new memo's cache ID = %q, %v", id, err)
	}
	m.Remember([]string{a})
	if err := m.Reset(t.Context(), "cache-1"); err != nil {
		t.Fatal(err)
	}
	if got := present(t, m, time.Time{}); len(got) != 0 {
		t.Errorf("Present = %v after Reset", got)
	}
	m.Remember([]string{a})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m = open(t, file, time.Hour)
	if id, err := m.CacheID(t.Context()); err != nil || id != "cache-1" {
		t.Errorf("reopened: cache ID = %q, %v; want cache-1", id, err)
	}
	if got := present(t, m, time.Time{}); !got[a] {
		t.Errorf("reopened: Present = %v, want %s", got, a)
	}
}

// TestFlushWritesInBatches: a Flush soon after another keeps a small
// buffer (another process reading the file does not see it yet), a full
// batch is written at once, and Close writes the rest.
func TestFlushWritesInBatches(t *testing.T) {
	memo.SetFlushEvery(t, time.Hour) // no Flush in this test is a second late
	file := filepath.Join(t.TempDir(), "x"+memo.FileSuffix)
	m := open(t, file, time.Hour)
	m.Remember([]string{a})
	if err := m.Flush(t.Context()); err != nil { // the first writes
		t.Fatal(err)
	}
	m.Remember([]string{b})
	if err := m.Flush(t.Context()); err != nil { // kept: one path, within the hour
		t.Fatal(err)
	}
	other := open(t, file, time.Hour)
	if got := present(t, other, time.Time{}); !got[a] || got[b] {
		t.Fatalf("after two Flushes, another reader sees %v, want only a", got)
	}

	batch := make([]string, memo.FlushBatch)
	for i := range batch {
		batch[i] = fmt.Sprintf("/nix/store/%032d-x", i)
	}
	m.Remember(batch)
	if err := m.Flush(t.Context()); err != nil { // a full batch is written
		t.Fatal(err)
	}
	got, err := other.Present(t.Context(), append(batch[:1:1], b), time.Time{})
	if err != nil || !got[batch[0]] || !got[b] {
		t.Fatalf("after a full batch, another reader sees %v (%v), want both", got, err)
	}

	m.Remember([]string{c})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := present(t, other, time.Time{}); !got[c] {
		t.Errorf("after Close, another reader sees %v, want c", got)
	}
}

// A path whose hash part is not 32 characters is no store path: neither
// memo remembers it, and asking about it beside real paths changes
// nothing for them.
func TestNoStorePathIsNeverKnown(t *testing.T) {
	odd := []string{"/nix/store/short-x", "/nix/store/" + strings.Repeat("a", 33) + "-x", "/nix/store/"}
	file := open(t, filepath.Join(t.TempDir(), "x"+memo.FileSuffix), time.Hour)
	for name, m := range map[string]memo.Memo{"File": file, "Memory": memo.NewMemory(time.Hour)} {
		m.Remember(append([]string{a}, odd...))
		for _, flush := range []bool{false, true} {
			if flush {
				if err := m.Flush(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			got, err := m.Present(t.Context(), append([]string{a, b}, odd...), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || !got[a] {
				t.Errorf("%s (flushed %v): Present = %v, want only %s", name, flush, got, a)
			}
		}
		if err := m.Forget(t.Context(), odd); err != nil {
			t.Errorf("%s: Forget: %v", name, err)
		}
	}
}
