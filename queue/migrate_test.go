package queue

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateHashesPaths: a queue that version 3 left, with rows in
// several states, a scope and a saved upload, opens with every row as it
// was and found by path through its new hash.
func TestMigrateHashesPaths(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.queue.db")
	execRaw(t, path, strings.Join(migrations[:3], ";\n")+`;
		PRAGMA user_version = 3;
		INSERT INTO items (id, path, state, attempts, last_error, enqueued_at, bytes) VALUES
			(3, '/nix/store/aaaa-done', 'done', 1, '', 10, 1234),
			(5, '/nix/store/bbbb-failed', 'failed', 3, 'HTTP 403', 11, 0),
			(9, '/nix/store/cccc-pending', 'pending', 0, '', 12, 0);
		INSERT INTO scopes (id, owner) VALUES (1, 1);
		INSERT INTO scope_items (scope, item) VALUES (1, 9);
		INSERT INTO uploads (path, state, updated) VALUES ('/nix/store/bbbb-failed', x'01', 1);`)

	q, err := Open(path)
	if err != nil {
		t.Fatalf("Open of a version 3 queue: %v", err)
	}
	defer q.Close()

	rows, err := q.r.QueryContext(ctx, `SELECT path, path_hash FROM items`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var p string
		var h int64
		if err := rows.Scan(&p, &h); err != nil {
			t.Fatal(err)
		}
		if h != pathHash(p) {
			t.Errorf("path_hash of %s = %d, want %d", p, h, pathHash(p))
		}
		n++
	}
	rows.Close()
	if n != 3 {
		t.Fatalf("%d rows after migration, want 3", n)
	}

	got, err := q.Get(ctx, []string{"/nix/store/aaaa-done", "/nix/store/bbbb-failed", "/nix/store/cccc-pending"})
	if err != nil {
		t.Fatal(err)
	}
	if it := got["/nix/store/aaaa-done"]; it.ID != 3 || it.State != Done || it.Bytes != 1234 {
		t.Errorf("done row after migration: %+v", it)
	}
	if it := got["/nix/store/bbbb-failed"]; it.ID != 5 || it.State != Failed || it.Attempts != 3 || it.LastError != "HTTP 403" {
		t.Errorf("failed row after migration: %+v", it)
	}
	// Nothing else keeps a path to one row now: Enqueue must.
	added, err := q.Enqueue(ctx, []string{"/nix/store/cccc-pending", "/nix/store/dddd-new", "/nix/store/dddd-new"})
	if err != nil || added != 1 {
		t.Errorf("Enqueue of one queued and one new path (twice) = %d, %v; want 1", added, err)
	}
	// The upload of a failed path is abandoned: its join goes by hash too.
	abandoned, err := q.AbandonedUploads(ctx)
	if err != nil || len(abandoned) != 1 || abandoned[0].Path != "/nix/store/bbbb-failed" {
		t.Errorf("AbandonedUploads = %+v, %v", abandoned, err)
	}
	if done, err := q.ScopeDone(ctx, 1); err != nil || done {
		t.Errorf("ScopeDone of the scope holding the pending row = %v, %v", done, err)
	}
}

// TestSharedHash: two paths with one path_hash are two rows, each found
// as itself. (FNV's 48 bits are not made to collide on demand: the
// colliding row is written by hand.)
func TestSharedHash(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	mine, other := "/nix/store/1111-mine", "/nix/store/2222-other"
	if _, err := q.w.ExecContext(ctx, `INSERT INTO items (path, path_hash, state, enqueued_at)
		VALUES (?, ?, 'done', 1)`, other, pathHash(mine)); err != nil {
		t.Fatal(err)
	}
	scope, err := q.NewScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.RequeueIn(ctx, scope, []string{mine}); err != nil || n != 1 {
		t.Fatalf("RequeueIn of a path whose hash another row has = %d, %v; want 1 added", n, err)
	}
	got, err := q.Get(ctx, []string{mine, other})
	if err != nil {
		t.Fatal(err)
	}
	if got[mine].State != Pending || got[other].State != Done {
		t.Errorf("rows sharing a hash: mine %s, other %s; want pending and done", got[mine].State, got[other].State)
	}
	items, err := q.Claim(ctx, 10, t0, scope)
	if err != nil || len(items) != 1 || items[0].Path != mine {
		t.Fatalf("Claim(scope) = %v, %v; want only %s", pathsOf(items), err, mine)
	}
	// Settled by path (no id): the row of the path, not the other's.
	if n, err := q.Settle(ctx, []Outcome{{Path: mine, State: Failed, Reason: "x"}}, t0); err != nil || n != 1 {
		t.Fatalf("Settle by path = %d, %v", n, err)
	}
	got, _ = q.Get(ctx, []string{mine, other})
	if got[mine].State != Failed || got[other].State != Done {
		t.Errorf("after Settle: mine %s, other %s; want failed and done", got[mine].State, got[other].State)
	}
}
