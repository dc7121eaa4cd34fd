package queue

import (
	"context"
	"testing"
)

// TestEnqueueWithMeta: rows and the meta value land together; a path that
// has a row is left alone, and the value is replaced.
func TestEnqueueWithMeta(t *testing.T) {
	ctx := context.Background()
	q, _ := openTest(t)
	paths := storePaths("meta", 3)
	if n, err := q.EnqueueWithMeta(ctx, paths[:2], "mark", "7"); err != nil || n != 2 {
		t.Fatalf("EnqueueWithMeta = %d, %v; want 2 added", n, err)
	}
	if n, err := q.EnqueueWithMeta(ctx, paths, "mark", "9"); err != nil || n != 1 {
		t.Fatalf("second EnqueueWithMeta = %d, %v; want 1 added", n, err)
	}
	if v, ok, err := q.GetMeta(ctx, "mark"); err != nil || !ok || v != "9" {
		t.Fatalf("mark = %q, %v, %v; want 9", v, ok, err)
	}
	for _, p := range paths {
		if it := mustGet(t, q, p); it.State != Pending {
			t.Errorf("%s is %s, want pending", p, it.State)
		}
	}
	if _, err := q.EnqueueWithMeta(ctx, []string{""}, "mark", "10"); err == nil {
		t.Fatal("an empty path was accepted")
	}
	if v, _, _ := q.GetMeta(ctx, "mark"); v != "9" {
		t.Errorf("a refused call moved the mark to %q", v)
	}
}
