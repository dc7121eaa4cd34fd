// Package watcher finds store paths as they become valid and records them
// in the queue. The Nix DB is the truth: every ValidPaths row above a saved
// high-water mark is new. fsnotify events on the store directory (a build's
// .lock file removed) and on the DB directory (the DB or its WAL written)
// only say "look now"; a slow poll covers lost events and inotify overflow.
package watcher

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"nixpush/nixstore"
)

// batchSize bounds one scan's read transaction and enqueue transaction.
const batchSize = 5000

// Store is what the watcher reads of the local Nix store (a
// *nixstore.Store).
type Store interface {
	// RegisteredAfter lists up to limit paths registered with an id above
	// mark, in id order.
	RegisteredAfter(ctx context.Context, mark int64, limit int) ([]nixstore.Registration, error)
	RealStoreDir() string // watched for .lock removals
	DBDir() string        // watched for DB and WAL writes
}

// Sink records new paths together with the mark they reach, atomically:
// after a crash, either both are recorded or neither.
type Sink interface {
	Add(ctx context.Context, paths []string, mark int64) error
}

// Watcher moves newly valid paths from the Nix DB into a Sink.
type Watcher struct {
	Store Store
	Sink  Sink
	// Mark is where the watcher starts: paths registered with a greater
	// id are new. It moves as batches land in the Sink.
	Mark int64
	Keep func(path string) bool // name-based filter applied before the Sink; nil keeps all
	Poll time.Duration          // safety poll interval
	Log  *zap.Logger
	// Enqueued, when set, is told after each batch lands in the Sink.
	Enqueued func(paths []string)
	// Detected, when set, is told how long after its registration each
	// new path was found (the detection latency metric).
	Detected func(time.Duration)
	// Ready, when set, is called once the watches are in place and the
	// first scan is done: from then on no registration is missed.
	Ready func()
	// Fatal, when set, picks the scan errors no later scan can get past
	// (a damaged queue): Run returns them instead of trying again.
	Fatal func(error) bool
}

// Run scans now, then again on every wake-up and poll, until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch nix store: %w", err)
	}
	defer fsw.Close()
	for _, dir := range []string{w.Store.RealStoreDir(), w.Store.DBDir()} {
		if err := fsw.Add(dir); err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
	}
	poll := time.NewTicker(w.Poll)
	defer poll.Stop()
	// A look again shortly after each wake-up: SQLite writes a commit to
	// the WAL (the event) before it updates the WAL index that readers
	// consult (a memory map, no event), so a scan woken by the write can
	// miss the commit it announces, and nothing else would wake us until
	// the poll: 4 of 15 single paths took 7-10 s instead of 0.1 s.
	settle := time.NewTimer(0)
	defer settle.Stop()
	ready := w.Ready
	var failing scanFailures
	for {
		if err := w.Scan(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if w.Fatal != nil && w.Fatal(err) {
				return err
			}
			// The DB may be briefly locked or mid-migration, the queue's
			// disk full: the next wake-up or poll tries again. Every file
			// event wakes the watcher, so the log says it once per
			// interval, not once per event.
			failing.failed(time.Now(), err, w.Log)
		} else {
			failing.succeeded(w.Log)
		}
		if ready != nil {
			ready()
			ready = nil
		}
		woke, err := waitForChange(ctx, fsw, poll.C, settle.C, w.Log)
		if err != nil {
			return nil
		}
		if woke {
			settle.Reset(settleDelay)
		}
	}
}

// settleDelay is how long after a wake-up the watcher looks again.
const settleDelay = 100 * time.Millisecond

// waitForChange blocks until an event that may mean a new valid path
// (woke), a poll tick or the settle timer, or the end of ctx (returned as
// an error).
func waitForChange(ctx context.Context, fsw *fsnotify.Watcher, poll, settle <-chan time.Time, log *zap.Logger) (woke bool, err error) {
	for {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-poll:
			return false, nil
		case <-settle:
			return false, nil
		case err := <-fsw.Errors:
			// Usually an inotify queue overflow: events were lost, so look.
			log.Debug("fsnotify", zap.Error(err))
			return true, nil
		case ev := <-fsw.Events:
			if relevant(ev) {
				return true, nil
			}
		}
	}
}

// relevant picks the events that follow a registration: Nix removes a
// path's .lock once it is valid, and commits registrations to the DB/WAL.
func relevant(ev fsnotify.Event) bool {
	switch {
	case strings.HasSuffix(ev.Name, ".lock"):
		return ev.Has(fsnotify.Remove)
	case strings.HasSuffix(ev.Name, "db.sqlite"), strings.HasSuffix(ev.Name, "db.sqlite-wal"):
		return ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create)
	}
	return false
}

// Scan hands every path registered above the mark to the Sink, in
// batches, moving the mark with each batch. Scan must not run
// concurrently with itself.
func (w *Watcher) Scan(ctx context.Context) error {
	for {
		regs, err := w.Store.RegisteredAfter(ctx, w.Mark, batchSize)
		if err != nil || len(regs) == 0 {
			return err
		}
		paths := make([]string, 0, len(regs))
		var kept []nixstore.Registration
		for _, r := range regs {
			if w.Keep == nil || w.Keep(r.Path) {
				paths = append(paths, r.Path)
				kept = append(kept, r)
			}
		}
		mark := regs[len(regs)-1].ID
		if err := w.Sink.Add(ctx, paths, mark); err != nil {
			return err
		}
		w.Mark = mark
		now := time.Now()
		for _, r := range kept {
			if w.Detected != nil {
				w.Detected(now.Sub(r.Registered))
			}
		}
		if len(paths) > 0 {
			w.Log.Debug("enqueued new paths", zap.Int("count", len(paths)), zap.Int64("mark", w.Mark))
			if w.Enqueued != nil {
				w.Enqueued(paths)
			}
		}
		if len(regs) < batchSize {
			return nil
		}
	}
}

// scanLogInterval is how often a scan that keeps failing is logged.
const scanLogInterval = 30 * time.Second

// scanFailures rate-limits the log of failing scans.
type scanFailures struct {
	since, logged time.Time
	count         int
}

func (f *scanFailures) failed(now time.Time, err error, log *zap.Logger) {
	f.count++
	if f.since.IsZero() {
		f.since = now
	}
	if now.Sub(f.logged) >= scanLogInterval {
		log.Warn("scan nix db failed, retrying at the next change", zap.Error(err),
			zap.Int("failures", f.count), zap.Duration("failing_for", now.Sub(f.since)))
		f.logged = now
	}
}

func (f *scanFailures) succeeded(log *zap.Logger) {
	if f.count > 0 {
		log.Info("scan nix db recovered", zap.Int("failures", f.count), zap.Duration("after", time.Since(f.since)))
	}
	*f = scanFailures{}
}
