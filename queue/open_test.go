package queue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenRefusesWithoutTouching(t *testing.T) {
	random := make([]byte, 64<<10)
	rand.NewChaCha8([32]byte{1}).Read(random)

	tests := []struct {
		name  string
		setup func(t *testing.T, path string) // leaves a file at path
		want  error
	}{
		{"random bytes", func(t *testing.T, path string) { writeFile(t, path, random) }, ErrCorrupt},
		{"short file", func(t *testing.T, path string) { writeFile(t, path, []byte("hello")) }, ErrCorrupt},
		{"sqlite header then garbage", func(t *testing.T, path string) {
			writeFile(t, path, append(append([]byte{}, sqliteMagic...), random...))
		}, ErrCorrupt},
		{"another program's database", func(t *testing.T, path string) {
			execRaw(t, path, `CREATE TABLE ValidPaths (id INTEGER PRIMARY KEY, path TEXT)`)
		}, ErrCorrupt},
		{"damaged queue", func(t *testing.T, path string) {
			fillQueue(t, path)
			damage(t, path)
		}, ErrCorrupt},
		{"damaged queue with a -wal from a crash", func(t *testing.T, path string) {
			crashWithWAL(t, path)
			damage(t, path)
		}, ErrCorrupt},
		{"newer schema", func(t *testing.T, path string) {
			closeNew(t, path)
			execRaw(t, path, `PRAGMA user_version = 99`)
		}, ErrNewerSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "queue.db")
			tt.setup(t, path)
			before, walBefore := readFile(t, path), readIfExists(t, path+"-wal")

			q, err := Open(path)
			if err == nil {
				q.Close()
				t.Fatal("Open succeeded, want error")
			}
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open error = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Errorf("error %q should be one line naming %s", msg, path)
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Error("Open modified the file")
			}
			// A read-only connection may leave an empty -wal, never a changed one.
			if wal := readIfExists(t, path+"-wal"); !bytes.Equal(wal, walBefore) {
				t.Errorf("Open changed the -wal: %d bytes before, %d after", len(walBefore), len(wal))
			}
		})
	}
}

func TestOpenInitialises(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"missing file and dirs", func(t *testing.T, path string) {}},
		{"empty file", func(t *testing.T, path string) {
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, path, nil)
		}},
		{"existing queue", closeNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state", "nixpush", "queue.db")
			tt.setup(t, path)
			q, err := Open(path)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer q.Close()
			if n, err := q.Enqueue(context.Background(), []string{"/a"}); err != nil || n != 1 {
				t.Fatalf("Enqueue = %d, %v; want 1, nil", n, err)
			}
			var mode string
			if err := q.w.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal", mode, err)
			}
		})
	}
}

func TestOpenCreatesPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	q, err := Open(filepath.Join(dir, "queue.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o700 {
		t.Errorf("dir mode = %o, want 700", perm)
	}
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "queue.db")
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, "/a", "/b", "/c")
	claimed := mustClaim(t, q, t0)
	if len(claimed) != 3 {
		t.Fatalf("claimed %d, want 3", len(claimed))
	}
	if err := q.Complete(ctx, "/a", 42, t0); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, "/b", "boom", t0); err != nil {
		t.Fatal(err)
	}
	if err := q.SetMeta(ctx, "watcher.mark", "1234"); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q, err = Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer q.Close()
	got, err := q.Get(ctx, []string{"/a", "/b", "/c"})
	if err != nil {
		t.Fatal(err)
	}
	if a := got["/a"]; a.State != Done || a.Bytes != 42 || !a.FinishedAt.Equal(t0) {
		t.Errorf("/a = %+v", a)
	}
	if b := got["/b"]; b.State != Failed || b.LastError != "boom" || b.Attempts != 1 {
		t.Errorf("/b = %+v", b)
	}
	if c := got["/c"]; c.State != Uploading || c.Owner != os.Getpid() {
		t.Errorf("/c = %+v", c)
	}
	if v, ok, err := q.GetMeta(ctx, "watcher.mark"); err != nil || !ok || v != "1234" {
		t.Errorf("GetMeta = %q, %v, %v", v, ok, err)
	}
}

// fillQueue leaves a queue of a few thousand rows at path, closed.
func fillQueue(t *testing.T, path string) {
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, storePaths("x", 2000)...)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

// crashWithWAL leaves at path the files of a queue whose process died with
// commits still in its -wal.
func crashWithWAL(t *testing.T, path string) {
	live := filepath.Join(t.TempDir(), "live.db")
	fillQueue(t, live)
	q, err := Open(live)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.w.Exec(`PRAGMA wal_autocheckpoint = 0`); err != nil {
		t.Fatal(err)
	}
	mustEnqueue(t, q, storePaths("y", 100)...)
	writeFile(t, path, readFile(t, live))
	writeFile(t, path+"-wal", readFile(t, live+"-wal"))
}

// damage overwrites pages in the middle of the file at path.
func damage(t *testing.T, path string) {
	b := readFile(t, path)
	const page = 4096
	if len(b) < 8*page {
		t.Fatalf("queue only %d bytes", len(b))
	}
	for i := 3 * page; i < 6*page; i++ {
		b[i] = 0xA5
	}
	writeFile(t, path, b)
}

func readIfExists(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return b
}

func closeNew(t *testing.T, path string) {
	q, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}

func execRaw(t *testing.T, path, stmt string) {
	db, err := sql.Open(driver, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeepsCommitsOfACrashedProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	crashWithWAL(t, path)
	q, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer q.Close()
	st, err := q.Status(context.Background(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Counts[Pending]; got != 2100 {
		t.Errorf("pending = %d, want 2100 (2000 checkpointed + 100 only in the -wal)", got)
	}
}

func TestOpenOddFileName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "my queue?#%41.db")
	q, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	mustEnqueue(t, q, "/a")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Size() == 0 {
		t.Fatalf("queue not at %q: %v", path, err)
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("files beside the queue after Close: %v", entries)
	}
}

// TestOpenUpToDateWritesNothing: opening a queue of this build's schema
// and closing it writes no page (a re-run that queues nothing paid a WAL
// commit and three fsyncs for "PRAGMA user_version = N", 14 ms of a
// 61 ms run).
func TestOpenUpToDateWritesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queue.db")
	closeNew(t, path)
	before := readFile(t, path)
	q, err := OpenFast(path)
	if err != nil {
		t.Fatal(err)
	}
	var frames int
	if err := q.w.QueryRow(`PRAGMA wal_checkpoint`).Scan(new(int), &frames, new(int)); err != nil {
		t.Fatal(err)
	}
	q.Close()
	if frames != 0 {
		t.Errorf("open wrote %d WAL frames, want 0", frames)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Error("open and close changed the file")
	}
}
