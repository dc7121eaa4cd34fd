package watcher

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"nixpush/nixstore"
)

// fakeStore is a Nix DB whose registrations the test adds.
type fakeStore struct {
	mu    sync.Mutex
	regs  []nixstore.Registration
	dir   string
	fails int // RegisteredAfter fails this many more times
	// late are registered only after the next RegisteredAfter has
	// answered: a commit whose file event came before readers saw it.
	late []string
}

func (s *fakeStore) register(paths ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range paths {
		s.regs = append(s.regs, nixstore.Registration{ID: int64(len(s.regs) + 1), Path: p, Registered: time.Now()})
	}
}

func (s *fakeStore) RegisteredAfter(_ context.Context, mark int64, limit int) ([]nixstore.Registration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return nil, errors.New("database is locked")
	}
	defer func() {
		for _, p := range s.late {
			s.regs = append(s.regs, nixstore.Registration{ID: int64(len(s.regs) + 1), Path: p, Registered: time.Now()})
		}
		s.late = nil
	}()
	var out []nixstore.Registration
	for _, r := range s.regs {
		if r.ID > mark && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *fakeStore) RealStoreDir() string { return s.dir }
func (s *fakeStore) DBDir() string        { return s.dir }

// fakeSink records batches; it can be told to fail.
type fakeSink struct {
	mu    sync.Mutex
	paths []string
	mark  int64
	err   error
	added chan struct{}
}

func (k *fakeSink) Add(_ context.Context, paths []string, mark int64) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return k.err
	}
	k.paths = append(k.paths, paths...)
	k.mark = mark
	select {
	case k.added <- struct{}{}:
	default:
	}
	return nil
}

func (k *fakeSink) state() ([]string, int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.paths), k.mark
}

func newWatcher(t *testing.T) (*Watcher, *fakeStore, *fakeSink) {
	st := &fakeStore{dir: t.TempDir()}
	sink := &fakeSink{added: make(chan struct{}, 1)}
	return &Watcher{Store: st, Sink: sink, Poll: time.Hour, Log: zap.NewNop()}, st, sink
}

func TestScanMovesMarkWithBatches(t *testing.T) {
	w, st, sink := newWatcher(t)
	st.register("/nix/store/a-x", "/nix/store/b-x.drv", "/nix/store/c-x")
	w.Keep = func(p string) bool { return filepath.Ext(p) != ".drv" }
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	paths, mark := sink.state()
	if !slices.Equal(paths, []string{"/nix/store/a-x", "/nix/store/c-x"}) || mark != 3 || w.Mark != 3 {
		t.Fatalf("got %v mark %d (watcher %d), want a and c with mark 3", paths, mark, w.Mark)
	}
	// Nothing new: nothing added, mark unchanged.
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, _ := sink.state(); len(p) != 2 {
		t.Fatalf("second scan added %v", p)
	}
}

func TestScanKeepsMarkWhenSinkFails(t *testing.T) {
	w, st, sink := newWatcher(t)
	st.register("/nix/store/a-x")
	sink.err = errors.New("disk full")
	if err := w.Scan(context.Background()); err == nil {
		t.Fatal("Scan succeeded with a failing sink")
	}
	if w.Mark != 0 {
		t.Fatalf("mark moved to %d although nothing was recorded", w.Mark)
	}
	sink.err = nil
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, mark := sink.state(); len(p) != 1 || mark != 1 {
		t.Fatalf("after recovery: %v mark %d", p, mark)
	}
}

func TestScanLargeBacklogInBatches(t *testing.T) {
	w, st, sink := newWatcher(t)
	for i := 0; i < batchSize*2+7; i++ {
		st.register("/nix/store/p" + string(rune('a'+i%26)) + "-x")
	}
	if err := w.Scan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p, mark := sink.state(); len(p) != batchSize*2+7 || mark != int64(batchSize*2+7) {
		t.Fatalf("got %d paths mark %d", len(p), mark)
	}
}

// A .lock removed in the store directory wakes the watcher at once (the
// poll is an hour), and a failing DB read is retried at the next wake-up.
func TestRunWakesOnLockRemoval(t *testing.T) {
	w, st, sink := newWatcher(t)
	ready := make(chan struct{})
	w.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher never became ready")
	}
	wake := func() {
		lock := filepath.Join(st.dir, "x.lock")
		if err := os.WriteFile(lock, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(lock); err != nil {
			t.Fatal(err)
		}
	}
	st.mu.Lock()
	st.fails = 1
	st.mu.Unlock()
	st.register("/nix/store/a-x")
	wake() // this scan fails
	wake() // this one lands
	select {
	case <-sink.added:
	case <-time.After(10 * time.Second):
		t.Fatal("new path not found after .lock removals")
	}
	if p, _ := sink.state(); !slices.Equal(p, []string{"/nix/store/a-x"}) {
		t.Fatalf("got %v", p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v after cancel", err)
	}
}

// TestRunLooksAgainAfterAWakeUp: SQLite writes a commit to the WAL (the
// file event) before readers can see it, so the scan that event wakes
// may find nothing; with no further event, the watcher looks again
// shortly instead of at the next poll (an hour here, 10 s by default:
// 4 of 15 single paths waited for it).
func TestRunLooksAgainAfterAWakeUp(t *testing.T) {
	w, st, sink := newWatcher(t)
	// The WAL exists before the watcher starts: the commit below is one
	// write, one event.
	wal, err := os.OpenFile(filepath.Join(st.dir, "db.sqlite-wal"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer wal.Close()
	ready := make(chan struct{})
	w.Ready = func() { close(ready) }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-ready
	st.mu.Lock()
	st.late = []string{"/nix/store/a-late"}
	st.mu.Unlock()
	if _, err := wal.Write([]byte("commit")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-sink.added:
	case <-time.After(5 * time.Second):
		t.Fatal("a commit seen only after its file event was not found until the poll")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestScanFailuresLoggedOncePerInterval: a scan failing at every file
// event (a full disk under a busy store) is logged once per interval.
func TestScanFailuresLoggedOncePerInterval(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := zap.New(core)
	var f scanFailures
	now := time.Now()
	for i := range 100 {
		f.failed(now.Add(time.Duration(i)*100*time.Millisecond), errors.New("database or disk is full"), log)
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("100 failures in 10 s logged %d lines, want 1", n)
	}
	f.failed(now.Add(scanLogInterval+time.Second), errors.New("still full"), log)
	f.succeeded(log)
	if n := logs.Len(); n != 3 {
		t.Fatalf("after an interval and a recovery: %d lines, want 3", n)
	}
}
