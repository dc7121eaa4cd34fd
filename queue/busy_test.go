package queue

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// A write lock held by another process past the busy timeout is ErrBusy
// from every write, so the caller can wait and carry on instead of dying;
// reads go on meanwhile, and writes work again once the lock is released.
func TestWriteLockHeldElsewhereIsErrBusy(t *testing.T) {
	saved := busyTimeout
	busyTimeout = 50 * time.Millisecond
	defer func() { busyTimeout = saved }()

	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q := openWithFixture(t, path)
	other := openShell(t, path)
	other.exec("BEGIN IMMEDIATE")

	writes := map[string]func() error{
		"Enqueue": func() error { _, err := q.Enqueue(ctx, []string{"/x"}); return err },
		"Requeue": func() error { _, err := q.Requeue(ctx, []string{"/done"}); return err },
		"Claim":   func() error { _, err := q.Claim(ctx, 1, t0, Everything); return err },
		"Settle": func() error {
			_, err := q.Settle(ctx, []Outcome{{Path: "/claimed", State: Done}}, t0)
			return err
		},
		"Complete":       func() error { return q.Complete(ctx, "/claimed", 1, t0) },
		"ReleaseClaims":  func() error { _, err := q.ReleaseClaims(ctx); return err },
		"SetMeta":        func() error { return q.SetMeta(ctx, "k", "v") },
		"RecoverOrphans": func() error { _, err := q.RecoverOrphans(ctx); return err },
		"OpenFast": func() error {
			q2, err := OpenFast(path)
			if err == nil {
				q2.Close()
			}
			return err
		},
	}
	for name, write := range writes {
		start := time.Now()
		err := write()
		if !errors.Is(err, ErrBusy) {
			t.Errorf("%s while another process holds the write lock: %v, want ErrBusy", name, err)
		}
		if waited := time.Since(start); waited < busyTimeout {
			t.Errorf("%s gave up after %v, before the busy timeout", name, waited)
		}
	}
	t.Log(writes["Claim"]())
	if st := mustStatus(t, q); st.Counts[Uploading] != 1 {
		t.Errorf("Status while locked: uploading = %d, want 1", st.Counts[Uploading])
	}

	other.exec("COMMIT")
	if n, err := q.Settle(ctx, []Outcome{{Path: "/claimed", State: Done}}, t0); err != nil || n != 1 {
		t.Errorf("Settle after the lock was released = %d, %v; want 1, nil", n, err)
	}
}
