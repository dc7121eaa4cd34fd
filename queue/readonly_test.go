package queue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/internal/fulldisk"
)

// A read-only queue answers every read and refuses every write, on a file
// nixpush could not write: a read-only mount (root ignores permissions),
// or a full disk, with and without a daemon holding the file open.
func TestOpenReadOnly(t *testing.T) {
	tests := []struct {
		name string
		// setup leaves a queue with fixture rows and returns the path to
		// open read-only, and a writer process that has it open, if any.
		setup func(t *testing.T) (string, *shell)
	}{
		{"read-only mount", func(t *testing.T) (string, *shell) {
			dir := fulldisk.Mount(t, 4<<20)
			path := filepath.Join(dir, "queue.db")
			closeWithFixture(t, path)
			chmod(t, path, 0o444)
			chmod(t, dir, 0o555)
			remountReadOnly(t, dir)
			return path, nil
		}},
		{"read-only view of a file a daemon has open", func(t *testing.T) (string, *shell) {
			dir := fulldisk.Mount(t, 4<<20)
			path := filepath.Join(dir, "queue.db")
			closeWithFixture(t, path)
			return filepath.Join(bindReadOnly(t, dir), "queue.db"), daemonOn(t, path)
		}},
		{"full disk", func(t *testing.T) (string, *shell) {
			dir := fulldisk.Mount(t, 4<<20)
			path := filepath.Join(dir, "queue.db")
			closeWithFixture(t, path)
			fulldisk.Fill(t, dir)
			return path, nil
		}},
		{"full disk, a daemon has the file open", func(t *testing.T) (string, *shell) {
			dir := fulldisk.Mount(t, 4<<20)
			path := filepath.Join(dir, "queue.db")
			closeWithFixture(t, path)
			daemon := daemonOn(t, path)
			fulldisk.Fill(t, dir)
			return path, daemon
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, daemon := tt.setup(t)
			before := readFile(t, path)
			q, err := OpenReadOnly(path)
			if err != nil {
				t.Fatalf("OpenReadOnly: %v", err)
			}
			defer q.Close()
			checkFixture(t, q)
			if daemon != nil && !strings.Contains(tt.name, "full") {
				// A daemon's later commits are seen: status is live.
				daemon.exec(`UPDATE items SET state = 'uploading', owner = 1 WHERE path = '/pending'`)
				if st := mustStatus(t, q); st.Counts[Uploading] != 2 {
					t.Errorf("after the daemon claimed one more: uploading = %d, want 2", st.Counts[Uploading])
				}
			}
			checkWritesRefused(t, q)
			if daemon == nil && !bytes.Equal(readFile(t, path), before) {
				t.Error("OpenReadOnly changed the file")
			}
		})
	}
}

// daemonOn starts another process that keeps path open, with its -wal and
// -shm, and has written to it since, as a running daemon would have.
func daemonOn(t *testing.T, path string) *shell {
	sh := openShell(t, path)
	sh.exec(`INSERT INTO meta (key, value) VALUES ('daemon', 'up')`)
	if _, err := os.Stat(path + "-shm"); err != nil {
		t.Fatalf("no -shm beside a file sqlite3 has open: %v", err)
	}
	return sh
}

func TestOpenReadOnlyRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenReadOnly(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want os.ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created the file: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	writeFile(t, empty, nil)
	if _, err := OpenReadOnly(empty); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty file: %v, want ErrEmpty (a full disk left it so; it is no older schema)", err)
	}
	newer := filepath.Join(dir, "newer.db")
	closeNew(t, newer)
	execRaw(t, newer, `PRAGMA user_version = 99`)
	if _, err := OpenReadOnly(newer); !errors.Is(err, ErrNewerSchema) {
		t.Errorf("newer schema: %v, want ErrNewerSchema", err)
	}
}

// A file of an older schema is read if it has the columns the reads use;
// a file of this build's schema without them is damaged.
func TestOpenReadOnlyOlderSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	closeWithFixture(t, path)
	lacking := filepath.Join(t.TempDir(), "lacking.db")
	closeWithFixture(t, lacking)
	execRaw(t, lacking, `DROP INDEX items_state_finished`)
	execRaw(t, lacking, `ALTER TABLE items DROP COLUMN bytes`)

	if _, err := OpenReadOnly(lacking); !errors.Is(err, ErrCorrupt) {
		t.Errorf("current schema lacking a column: %v, want ErrCorrupt", err)
	}
	// Pretend this build is one migration ahead of the files.
	saved := migrations
	migrations = append(append([]string{}, saved...), `ALTER TABLE items ADD COLUMN future INTEGER`)
	defer func() { migrations = saved }()

	q, err := OpenReadOnly(path)
	if err != nil {
		t.Fatalf("older schema with every column needed: %v", err)
	}
	checkFixture(t, q)
	q.Close()
	_, err = OpenReadOnly(lacking)
	if !errors.Is(err, ErrOldSchema) {
		t.Fatalf("older schema lacking items.bytes: %v, want ErrOldSchema", err)
	}
	t.Log(err)
}

// openWithFixture opens a queue at path holding three rows: /done (42
// bytes), /claimed (uploading) and /pending, and the meta key "mark".
func openWithFixture(t *testing.T, path string) *Queue {
	t.Helper()
	ctx := context.Background()
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	mustEnqueue(t, q, "/done", "/claimed")
	mustClaim(t, q, t0)
	if err := q.Complete(ctx, "/done", 42, t0); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, "/pending")
	if err := q.SetMeta(ctx, "mark", "7"); err != nil {
		t.Fatal(err)
	}
	return q
}

func closeWithFixture(t *testing.T, path string) {
	t.Helper()
	if err := openWithFixture(t, path).Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("-wal left after Close: %v", err)
	}
}

func checkFixture(t *testing.T, q *Queue) {
	t.Helper()
	ctx := context.Background()
	st := mustStatus(t, q)
	if st.Counts[Done] != 1 || st.Counts[Uploading] != 1 || st.Counts[Pending] < 1 {
		t.Errorf("Status counts = %v", st.Counts)
	}
	if it := mustGet(t, q, "/done"); it.State != Done || it.Bytes != 42 {
		t.Errorf("Get /done = %+v", it)
	}
	if v, ok, err := q.GetMeta(ctx, "mark"); err != nil || !ok || v != "7" {
		t.Errorf("GetMeta = %q, %v, %v", v, ok, err)
	}
	if next, ok, err := q.NextDue(ctx); err != nil || !ok || !next.IsZero() {
		t.Errorf("NextDue = %v, %v, %v", next, ok, err)
	}
}

func checkWritesRefused(t *testing.T, q *Queue) {
	t.Helper()
	ctx := context.Background()
	writes := map[string]func() error{
		"Enqueue": func() error { _, err := q.Enqueue(ctx, []string{"/x"}); return err },
		"Claim":   func() error { _, err := q.Claim(ctx, 1, t0, Everything); return err },
		"Settle": func() error {
			_, err := q.Settle(ctx, []Outcome{{Path: "/claimed", State: Done}}, t0)
			return err
		},
		"SetMeta":        func() error { return q.SetMeta(ctx, "k", "v") },
		"RetryFailed":    func() error { _, err := q.RetryFailed(ctx); return err },
		"RecoverOrphans": func() error { _, err := q.RecoverOrphans(ctx); return err },
		"Prune":          func() error { _, err := q.Prune(ctx, time.Now()); return err },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only queue: %v, want ErrReadOnly", name, err)
		}
	}
}

func mustStatus(t *testing.T, q *Queue) Status {
	t.Helper()
	st, err := q.Status(context.Background(), t0)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// Open on a queue nixpush cannot write says so (ErrReadOnly), rather than
// SQLite's "unable to open database file: no such file or directory"
// about the -shm it could not create; a full disk is not read-only.
func TestOpenNotWritable(t *testing.T) {
	ro := fulldisk.Mount(t, 1<<20)
	closeWithFixture(t, filepath.Join(ro, "queue.db"))
	remountReadOnly(t, ro)
	full := fulldisk.Mount(t, 1<<20)
	closeWithFixture(t, filepath.Join(full, "queue.db"))
	fulldisk.Fill(t, full)

	for name, open := range openers {
		for _, path := range []string{filepath.Join(ro, "queue.db"), filepath.Join(ro, "new.db")} {
			_, err := open(path)
			if !errors.Is(err, ErrReadOnly) || !errors.Is(err, syscall.EROFS) {
				t.Errorf("%s %s on a read-only mount: %v, want ErrReadOnly and EROFS", name, filepath.Base(path), err)
			}
		}
		q, err := open(filepath.Join(full, "queue.db"))
		if err == nil {
			q.Close()
		} else if errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a full disk: %v, want not ErrReadOnly", name, err)
		}
	}
	_, err := Open(filepath.Join(ro, "queue.db"))
	t.Log(err)
}
