package drainer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"nixpush/internal/fulldisk"
	"nixpush/queue"
	"nixpush/uploader"
)

// pushFunc is a Pusher that runs a function, then reports every root
// pushed.
type pushFunc func()

func (f pushFunc) Push(_ context.Context, roots []string) map[string]uploader.RootResult {
	f()
	res := map[string]uploader.RootResult{}
	for _, r := range roots {
		res[r] = uploader.RootResult{Bytes: 1}
	}
	return res
}

const testPath = "/nix/store/00000000000000000000000000000000-x"

// queueOnTmpfs is a queue on a small tmpfs holding testPath in a scope,
// as a push leaves it before draining.
func queueOnTmpfs(t *testing.T) (*queue.Queue, queue.Scope, string) {
	dir := fulldisk.Mount(t, 2<<20)
	q, err := queue.Open(filepath.Join(dir, "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	scope, err := q.NewScope(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.RequeueIn(context.Background(), scope, []string{testPath}); err != nil {
		t.Fatal(err)
	}
	return q, scope, dir
}

// runUntilEmpty runs a push's drain and fails the test if it does not end.
func runUntilEmpty(t *testing.T, d *Drainer, scope queue.Scope) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := d.Run(ctx, Scope{Items: scope, UntilEmpty: true})
	if ctx.Err() != nil {
		t.Fatal("the drain did not end: a row was stranded")
	}
	return err
}

// The state dir fills while a path uploads: its outcome cannot be
// recorded. Once the space comes back, the write lands and the run ends
// with the row done (before: the row stayed uploading and push hung).
func TestOutcomeWrittenOnceDiskFrees(t *testing.T) {
	q, scope, dir := queueOnTmpfs(t)
	var filler string
	d := &Drainer{Queue: q, Log: zapNop(), ShutdownTimeout: 20 * time.Second,
		Uploader: pushFunc(func() {
			filler = fulldisk.Fill(t, dir)
			time.AfterFunc(500*time.Millisecond, func() { os.Remove(filler) })
		})}
	if err := runUntilEmpty(t, d, scope); err != nil {
		t.Fatal(err)
	}
	items, err := q.Get(context.Background(), []string{testPath})
	if err != nil || items[testPath].State != queue.Done {
		t.Fatalf("row %+v, %v; want done", items[testPath], err)
	}
}

// The disk stays full: a run that must end (push, watch-exec) gives up
// after its shutdown timeout with the error, instead of waiting forever.
func TestOutcomeNeverWrittenEndsTheRun(t *testing.T) {
	q, scope, dir := queueOnTmpfs(t)
	d := &Drainer{Queue: q, Log: zapNop(), ShutdownTimeout: time.Second,
		Uploader: pushFunc(func() { fulldisk.Fill(t, dir) })}
	err := runUntilEmpty(t, d, scope)
	if err == nil {
		t.Fatal("the run ended without error although no outcome was recorded")
	}
	t.Logf("run ended with: %v", err)
}

// A queue locked by another process past the busy timeout is waited out,
// not fatal.
func TestBusyQueueIsNotFatal(t *testing.T) {
	d := &Drainer{Log: zapNop()}
	busy := errors.Join(errors.New("claim items"), queue.ErrBusy)
	if err := d.queueTrouble(context.Background(), busy, false); err != nil {
		t.Fatalf("daemon: %v", err)
	}
	if err := d.queueTrouble(context.Background(), busy, true); err != nil {
		t.Fatalf("push: %v", err)
	}
}

// A damaged queue stops a push and the daemon alike, with the error: the
// daemon then exits in the way its unit does not restart.
func TestDamagedQueue(t *testing.T) {
	d := &Drainer{Log: zapNop()}
	damaged := errors.Join(errors.New("claim items"), queue.ErrCorrupt)
	for _, untilEmpty := range []bool{true, false} {
		if err := d.queueTrouble(context.Background(), damaged, untilEmpty); !errors.Is(err, queue.ErrCorrupt) {
			t.Errorf("untilEmpty %v: %v, want the damage", untilEmpty, err)
		}
	}
}
