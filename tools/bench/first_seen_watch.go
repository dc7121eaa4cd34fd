package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// firstSeenWatch records when a kind of file event first happened for
// each store path, using inotify rather than a stat loop: a loop tight
// enough for millisecond figures would take CPU from the daemon it
// measures.
type firstSeenWatch struct {
	dir     string
	key     func(fsnotify.Event) (storeName string, ok bool)
	fsw     *fsnotify.Watcher
	mu      sync.Mutex
	seen    map[string]time.Time // store path base name → first seen
	err     error                // an inotify error (overflow): figures incomplete
	changed chan struct{}        // closed and replaced on every new key
	stopped chan struct{}
}

// narinfoAppeared keys a narinfo appearing in a cache dir. Caches write a
// narinfo complete (a linked O_TMPFILE, or temp file + rename), so its
// name appearing is the moment a client could use it. The key is the
// narinfo's hash part; storeKey maps a store path to it.
func narinfoAppeared(ev fsnotify.Event) (string, bool) {
	name := filepath.Base(ev.Name)
	if !ev.Has(fsnotify.Create) || !strings.HasSuffix(name, ".narinfo") {
		return "", false
	}
	return strings.TrimSuffix(name, ".narinfo"), true
}

// lockRemoved keys a store path's .lock file being deleted: nix-store
// --add deletes it as it returns from registering the path, right after
// the DB commit.
func lockRemoved(ev fsnotify.Event) (string, bool) {
	name := filepath.Base(ev.Name)
	if !ev.Has(fsnotify.Remove) || !strings.HasSuffix(name, ".lock") {
		return "", false
	}
	hash, _, _ := strings.Cut(strings.TrimSuffix(name, ".lock"), "-")
	return hash, true
}

// storeKey is the key of a store path: its hash part.
func storeKey(storePath string) string {
	hash, _, _ := strings.Cut(filepath.Base(storePath), "-")
	return hash
}

// watchFirstSeen starts watching dir, which must exist.
func watchFirstSeen(dir string, key func(fsnotify.Event) (string, bool)) (*firstSeenWatch, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	if err := fsw.Add(dir); err != nil {
		fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	n := &firstSeenWatch{dir: dir, key: key, fsw: fsw, seen: map[string]time.Time{},
		changed: make(chan struct{}), stopped: make(chan struct{})}
	go n.loop()
	return n, nil
}

func (n *firstSeenWatch) loop() {
	defer close(n.stopped)
	for {
		select {
		case ev, ok := <-n.fsw.Events:
			if !ok {
				return
			}
			at := time.Now()
			k, ok := n.key(ev)
			if !ok {
				continue
			}
			n.mu.Lock()
			if _, dup := n.seen[k]; !dup {
				n.seen[k] = at
				close(n.changed)
				n.changed = make(chan struct{})
			}
			n.mu.Unlock()
		case err, ok := <-n.fsw.Errors:
			if !ok {
				return
			}
			n.mu.Lock()
			n.err = err
			n.mu.Unlock()
		}
	}
}

// SeenAt returns when the event of storePath was first seen.
func (n *firstSeenWatch) SeenAt(storePath string) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.seen[storeKey(storePath)]
	return at, ok
}

// Err is the inotify error, if events were lost.
func (n *firstSeenWatch) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// WaitAll waits until the event of every path has been seen.
func (n *firstSeenWatch) WaitAll(ctx context.Context, paths []string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		n.mu.Lock()
		missing, changed, werr := 0, n.changed, n.err
		for _, p := range paths {
			if _, ok := n.seen[storeKey(p)]; !ok {
				missing++
			}
		}
		n.mu.Unlock()
		if werr != nil {
			return fmt.Errorf("watch %s: %w", n.dir, werr)
		}
		if missing == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("%d of %d paths not seen in %s after %s", missing, len(paths), n.dir, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops watching.
func (n *firstSeenWatch) Close() {
	n.fsw.Close()
	<-n.stopped
}
