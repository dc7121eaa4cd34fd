package drainer

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"nixpush/queue"
)

// TestRunWaitsForAScopeStillFilling: a push enqueues its closure a part
// at a time while the first parts upload; a run that finds its scope
// empty before the last part is in must not end, and drains that part.
func TestRunWaitsForAScopeStillFilling(t *testing.T) {
	ctx := context.Background()
	q, err := queue.Open(filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	scope, err := q.NewScope(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first, last := "/nix/store/00000000000000000000000000000000-first", "/nix/store/11111111111111111111111111111111-last"
	if _, err := q.RequeueIn(ctx, scope, []string{first}); err != nil {
		t.Fatal(err)
	}
	pushed := make(chan struct{}, 2)
	d := &Drainer{Queue: q, Log: zapNop(), ShutdownTimeout: time.Second,
		Uploader: pushFunc(func() { pushed <- struct{}{} })}
	complete := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, Scope{Items: scope, UntilEmpty: true, Complete: complete}) }()
	<-pushed // the first part is uploaded: the scope is empty now
	select {
	case err := <-done:
		t.Fatalf("the run ended (%v) with a part of its closure still to come", err)
	case <-time.After(500 * time.Millisecond): // it has looked at its empty scope by now
	}
	if _, err := q.RequeueIn(ctx, scope, []string{last}); err != nil {
		t.Fatal(err)
	}
	close(complete)
	d.Wake()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the run did not end once its scope was complete and drained")
	}
	items, err := q.Get(ctx, []string{first, last})
	if err != nil || items[first].State != queue.Done || items[last].State != queue.Done {
		t.Fatalf("rows %+v (%v); want both done", items, err)
	}
}
