package main

// A queue file damaged while nixpush runs, or found damaged by the
// commands that only read it: every one says what is wrong and exits
// non-zero, the daemon in the way its unit does not restart.

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"nixpush/pipeline"
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

// damagedQueue makes a state dir whose one queue holds three paths, one
// of them failed, with the pages of the items table's indexes overwritten
// by empty ones: every query that goes by an index finds nothing (status
// would say "0 pending"), and only SQLite's integrity check sees that the
// indexes and the table disagree.
func damagedQueue(t *testing.T) (stateDir, file string) {
	t.Helper()
	stateDir = filepath.Join(t.TempDir(), "state")
	paths := []string{"/nix/store/00000000000000000000000000000001-a", "/nix/store/00000000000000000000000000000002-b", "/nix/store/00000000000000000000000000000003-c"}
	if r := runMain(t, "", append([]string{"enqueue", "--state-dir", stateDir, "--to", "file:///srv/cache"}, paths...)...); r.code != 0 {
		t.Fatal(r)
	}
	file = pipeline.QueueFile(stateDir, "file:///srv/cache")
	db, err := sql.Open("sqlite3", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	var pageSize int64
	var roots []int64
	_, err = db.Exec(`UPDATE items SET state = 'failed', last_error = '403 Forbidden' WHERE path = ?`, paths[0])
	if err == nil {
		err = db.QueryRow(`SELECT page_size FROM pragma_page_size`).Scan(&pageSize)
	}
	if err == nil {
		var rows *sql.Rows
		if rows, err = db.Query(`SELECT rootpage FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'items'`); err == nil {
			for rows.Next() {
				var r int64
				err = errors.Join(err, rows.Scan(&r))
				roots = append(roots, r)
			}
			err = errors.Join(err, rows.Err(), rows.Close())
		}
	}
	if err := errors.Join(err, db.Close()); err != nil { // the last close checkpoints the -wal into the file
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// An empty leaf page of an index b-tree: type 0x0a, no cells, the
	// cell content area starting at the page's end.
	empty := make([]byte, pageSize)
	empty[0], empty[5], empty[6] = 0x0a, byte(pageSize>>8), byte(pageSize)
	for _, root := range roots {
		if _, err := f.WriteAt(empty, (root-1)*pageSize); err != nil {
			t.Fatal(err)
		}
	}
	return stateDir, file
}

// TestReadersReportDamagedQueue: status (text and JSON) and retry check
// the file they report on: a damaged page is named as damage, exit
// non-zero, never "0 pending" or "requeued 0 paths".
func TestReadersReportDamagedQueue(t *testing.T) {
	t.Parallel()
	state, file := damagedQueue(t)
	for _, args := range [][]string{
		{"status", "--state-dir", state},
		{"status", "--state-dir", state, "--json"},
		{"status", "--state-dir", state, "--to", "file:///srv/cache"},
		{"retry", "--state-dir", state, "--failed"},
		{"retry", "--state-dir", state, "/nix/store/00000000000000000000000000000001-a"},
	} {
		r := runMain(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "damaged") || !strings.Contains(r.stdout+r.stderr, file) {
			t.Errorf("nixpush %s on a damaged queue: want non-zero, naming the file as damaged:\n%s", strings.Join(args, " "), r)
		}
		if strings.Contains(r.stdout+r.stderr, "requeued 0") {
			t.Errorf("nixpush %s says it requeued nothing, as if all were well:\n%s", strings.Join(args, " "), r)
		}
	}
}

// TestStatusOfEmptyQueueFile: a queue file a full disk left empty (created,
// never initialised) is reported as that, not as an older schema.
func TestStatusOfEmptyQueueFile(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	file := pipeline.QueueFile(state, "file:///srv/cache")
	writeFile(t, file, nil, 0o600)
	r := runMain(t, "", "status", "--state-dir", state)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "empty") || strings.Contains(r.stdout+r.stderr, "older") {
		t.Errorf("status of an empty queue file: want non-zero, saying it is empty:\n%s", r)
	}
}

// TestReadersOfUnreadableStateDir: a user who cannot read the state dir
// (root's, mode 700) is told so by status and retry, not "no queues".
func TestReadersOfUnreadableStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test switches to an unprivileged user and must run as root (make test does)")
	}
	t.Parallel()
	state, _ := damagedQueue(t)
	if err := os.Chmod(state, 0o700); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	bin := filepath.Join(home, "nixpush")
	linkBinary(t, bin)
	for d := home; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for d := filepath.Dir(state); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"status", "--state-dir", state},
		{"status", "--state-dir", state, "--json"},
		{"status", "--state-dir", state, "--to", "file:///srv/cache"},
		{"retry", "--state-dir", state, "--failed"},
	} {
		cmd := binCmd(t, args...)
		cmd.Path = bin
		cmd.Env = append(procEnv(t), "HOME="+home)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		r := runCmd(t, cmd, "")
		if r.code == 0 || !strings.Contains(r.stderr, "permission denied") || !strings.Contains(r.stderr, state) {
			t.Errorf("nixpush %s as a user who cannot read the state dir: want non-zero, saying so:\n%s", strings.Join(args, " "), r)
		}
	}
}

// TestRetryNamesWhatItCannotRequeue: a path that is not a store path, or
// that no queue holds, is named, and retry fails.
func TestRetryNamesWhatItCannotRequeue(t *testing.T) {
	t.Parallel()
	state := filepath.Join(t.TempDir(), "state")
	if r := runMain(t, "", "enqueue", "--state-dir", state, "--to", "file:///srv/cache", "/nix/store/00000000000000000000000000000001-a"); r.code != 0 {
		t.Fatal(r)
	}
	for _, tc := range []struct{ arg, want string }{
		{"/etc/passwd", "not a store path"},
		{"/nix/store/00000000000000000000000000000009-z", "not queued"},
	} {
		r := runMain(t, "", "retry", "--state-dir", state, tc.arg)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, tc.arg) {
			t.Errorf("retry %s: want non-zero, saying %q:\n%s", tc.arg, tc.want, r)
		}
	}
	if r := runMain(t, "", "retry", "--state-dir", state, "/nix/store/00000000000000000000000000000001-a"); r.code != 0 || !strings.Contains(r.stderr, "requeued 0 paths (1 path pending and due already)") {
		t.Errorf("retry of a queued path: %s", r)
	}
}
