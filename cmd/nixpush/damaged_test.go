package main

// A queue file damaged while nixpush runs, or found damaged by the
// commands that only read it: every one says what is wrong and exits
// non-zero, the daemon in the way its unit does not restart.

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDaemonStopsOnQueueDamagedWhileRunning: the queue file truncated
// under a running watch-store is noticed as soon as a new path is queued:
// an error-level line saying what to do, and exit 78 (the unit's
// RestartPreventExitStatus), as when the damage is found at start.
func TestDaemonStopsOnQueueDamagedWhileRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "damaged-run-1")
	d := e.startDaemon("daemon")
	files, _ := filepath.Glob(filepath.Join(e.stateDir, "*.queue.db"))
	if len(files) != 1 {
		t.Fatalf("queue files %q", files)
	}
	// The pages go from the -wal into the file, as SQLite's automatic
	// checkpoints do in a daemon that has run a while; then the file is cut.
	checkpoint(t, files[0])
	if err := os.Truncate(files[0], 0); err != nil {
		t.Fatal(err)
	}
	fibOutputs(t, e.store, "damaged-run", 2) // a new path for the watcher to queue

	if code := d.wait(20 * time.Second); code != exitPermanent {
		t.Errorf("watch-store exit %d with a damaged queue, want %d", code, exitPermanent)
	}
	var said bool
	for _, l := range d.logs() {
		if l.Level == "error" && strings.Contains(l.Msg+l.Error, "damaged") && strings.Contains(l.Msg+l.Error, "move the file away") {
			said = true
		}
	}
	if !said {
		t.Errorf("no error-level log line says the queue is damaged and what to do:\n%s", d.stderr.String())
	}
}

// checkpoint moves every page of a queue's -wal into its file and empties
// the -wal, beside the processes that have it open.
func checkpoint(t *testing.T, file string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+file+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var busy, logFrames, done int
	if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &done); err != nil || busy != 0 {
		t.Fatalf("checkpoint %s: busy %d, %v", file, busy, err)
	}
}
