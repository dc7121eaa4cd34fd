// Package watcher finds store paths as they become valid and records them
// in the queue. The Nix DB is the truth: every ValidPaths row above a saved
// high-water mark is new. fsnotify events on the store directory (a build's
// .lock file removed) and on the DB directory (the DB or its WAL written)
// only say "look now"; a slow poll covers lost events and inotify overflow.
package watcher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"nixpush/metrics"
	"nixpush/nixstore"
	"nixpush/queue"
)

// MarkKey is the queue meta key holding the last ValidPaths id seen, so
// paths registered while nixpush was stopped are found at the next start.
const MarkKey = "watcher.nixdb-mark"

// batchSize bounds one scan's read transaction and enqueue transaction.
const batchSize = 5000

// Watcher moves newly valid paths from the Nix DB into the queue.
type Watcher struct {
	Store *nixstore.Store
	Queue *queue.Queue
	Keep  func(path string) bool // name-based filter applied before enqueueing; nil keeps all
	Poll  time.Duration          // safety poll interval
	Log   *zap.Logger
	// Enqueued, when set, is told after each batch lands in the queue.
	Enqueued func(paths []string)
	Metrics  *metrics.Metrics // may be nil
	// Ready, when set, is called once the watches are in place and the
	// first scan is done: from then on no registration is missed.
	Ready func()

	mark    int64
	persist bool // save the mark in the queue (the daemon) or keep it in memory (watch-exec)
}

// Resume makes the watcher continue from the mark saved in the queue, so
// paths registered while nixpush was stopped are found. On first start the
// mark is the DB's current one, so only paths registered from now on are
// pushed, or 0 to backfill the whole store.
func (w *Watcher) Resume(ctx context.Context, backfill bool) error {
	w.persist = true
	v, ok, err := w.Queue.GetMeta(ctx, MarkKey)
	if err != nil {
		return err
	}
	if ok {
		w.mark, err = strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("queue meta %s = %q is not a number", MarkKey, v)
		}
		return nil
	}
	if !backfill {
		if w.mark, err = w.Store.MaxID(ctx); err != nil {
			return err
		}
	}
	return w.Queue.SetMeta(ctx, MarkKey, strconv.FormatInt(w.mark, 10))
}

// StartNow makes the watcher see only paths registered from now on,
// without touching the mark saved in the queue (watch-exec: a daemon may
// own that mark).
func (w *Watcher) StartNow(ctx context.Context) error {
	var err error
	w.mark, err = w.Store.MaxID(ctx)
	return err
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
	ready := w.Ready
	for {
		if err := w.Scan(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The DB may be briefly locked or mid-migration: the next
			// wake-up or poll tries again.
			w.Log.Warn("scan nix db", zap.Error(err))
		}
		if ready != nil {
			ready()
			ready = nil
		}
		if err := waitForChange(ctx, fsw, poll.C, w.Log); err != nil {
			return nil
		}
	}
}

// waitForChange blocks until an event that may mean a new valid path, a
// poll tick, or the end of ctx (returned as an error).
func waitForChange(ctx context.Context, fsw *fsnotify.Watcher, poll <-chan time.Time, log *zap.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll:
			return nil
		case err := <-fsw.Errors:
			// Usually an inotify queue overflow: events were lost, so look.
			log.Debug("fsnotify", zap.Error(err))
			return nil
		case ev := <-fsw.Events:
			if relevant(ev) {
				return nil
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

// Scan enqueues every path registered above the mark, in batches, moving
// the mark after each batch is safely in the queue. Enqueueing is
// idempotent, so a crash between the two steps only repeats work.
// Scan must not run concurrently with itself.
func (w *Watcher) Scan(ctx context.Context) error {
	for {
		regs, err := w.Store.RegisteredAfter(ctx, w.mark, batchSize)
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
		if _, err := w.Queue.Enqueue(ctx, paths); err != nil {
			return err
		}
		now := time.Now()
		for _, r := range kept {
			w.Metrics.Detected(now.Sub(r.Registered))
		}
		w.mark = regs[len(regs)-1].ID
		if w.persist {
			if err := w.Queue.SetMeta(ctx, MarkKey, strconv.FormatInt(w.mark, 10)); err != nil {
				return err
			}
		}
		if len(paths) > 0 {
			w.Log.Debug("enqueued new paths", zap.Int("count", len(paths)), zap.Int64("mark", w.mark))
			if w.Enqueued != nil {
				w.Enqueued(paths)
			}
		}
		if len(regs) < batchSize {
			return nil
		}
	}
}
