package queue

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A queue file damaged after Open (a failing disk, another program writing
// into it) must make every method fail with ErrCorrupt and a message that
// says what to do, so the daemon stops instead of running on as a zombie.
func TestDamagedWhileOpen(t *testing.T) {
	garbage := func(t *testing.T, path string) {
		b := readFile(t, path)
		// Page 1 (header and schema) stays: the file still looks like a queue.
		rand.NewChaCha8([32]byte{7}).Read(b[4096:])
		overwrite(t, path, b)
	}
	truncate := func(t *testing.T, path string) {
		// Pages past the end read as zeros: no b-tree page is all zeros.
		if err := os.Truncate(path, 4096); err != nil {
			t.Fatal(err)
		}
	}
	for name, damage := range map[string]func(*testing.T, string){
		"pages overwritten": garbage, "file truncated": truncate,
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "queue.db")
			fillQueue(t, path) // 2000 rows, checkpointed: they live in the file
			q, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			ro, err := OpenReadOnly(path)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			damage(t, path)

			calls := map[string]func() error{
				"Status":    func() error { _, err := q.Status(ctx, t0); return err },
				"Claim":     func() error { _, err := q.Claim(ctx, 5, t0, Everything); return err },
				"Enqueue":   func() error { _, err := q.Enqueue(ctx, []string{"/new"}); return err },
				"Requeue":   func() error { _, err := q.Requeue(ctx, []string{"/new"}); return err },
				"Get":       func() error { _, err := q.Get(ctx, storePaths("x", 3)); return err },
				"NextDue":   func() error { _, _, err := q.NextDue(ctx); return err },
				"GetMeta":   func() error { _, _, err := q.GetMeta(ctx, "mark"); return err },
				"SetMeta":   func() error { return q.SetMeta(ctx, "mark", "1") },
				"Prune":     func() error { _, err := q.Prune(ctx, time.Now()); return err },
				"Retry":     func() error { _, err := q.RetryFailed(ctx); return err },
				"Recover":   func() error { _, err := q.RecoverOrphans(ctx); return err },
				"Release":   func() error { _, err := q.ReleaseClaims(ctx); return err },
				"Settle":    func() error { return q.Complete(ctx, storePaths("x", 1)[0], 1, t0) },
				"RO Status": func() error { _, err := ro.Status(ctx, t0); return err },
				"RO Get":    func() error { _, err := ro.Get(ctx, storePaths("x", 3)); return err },
			}
			for call, fn := range calls {
				err := fn()
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("%s on a damaged queue: %v, want ErrCorrupt", call, err)
					continue
				}
				if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "move") ||
					strings.Contains(msg, "\n") {
					t.Errorf("%s: message %q should be one line naming the file and what to do", call, msg)
				}
			}
			t.Log(calls["Claim"]())
		})
	}
}

// overwrite writes b over the file at path in place, as a disk or another
// program would, keeping its inode.
func overwrite(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
}
