package queue

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// t0 is an arbitrary fixed "now" for tests that pass times explicitly.
var t0 = time.Unix(1_700_000_000, 0)

func openTest(t testing.TB) (*Queue, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return q, path
}

// storePaths returns n distinct store-path-like strings; the queue treats
// them as opaque.
func storePaths(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("/nix/store/%032d-%s-%d", i, prefix, i)
	}
	return out
}

// deadPid returns the pid of a process that has exited and been reaped.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run true: %v", err)
	}
	return cmd.Process.Pid
}

func mustEnqueue(t *testing.T, q *Queue, paths ...string) {
	t.Helper()
	if _, err := q.Enqueue(context.Background(), paths); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

// mustClaim claims every due pending row (they are few in tests).
func mustClaim(t *testing.T, q *Queue, now time.Time) []Item {
	t.Helper()
	items, err := q.Claim(context.Background(), 1000, now, Everything)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return items
}

func mustGet(t *testing.T, q *Queue, path string) Item {
	t.Helper()
	m, err := q.Get(context.Background(), []string{path})
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	it, ok := m[path]
	if !ok {
		t.Fatalf("Get %s: no row", path)
	}
	return it
}

// setOwner rewrites who holds an uploading row, standing in for another
// process that claimed it.
func setOwner(t *testing.T, q *Queue, path string, pid int, token string) {
	t.Helper()
	_, err := q.w.Exec(`UPDATE items SET owner = ?, owner_token = ? WHERE path = ?`, pid, token, path)
	if err != nil {
		t.Fatalf("set owner: %v", err)
	}
}

func itoa(n int) string { return fmt.Sprint(n) }
