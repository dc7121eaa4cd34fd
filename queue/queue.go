// Package queue is nixpush's persistent work queue: a SQLite table of opaque
// item paths moving pending → uploading → done/failed/skipped. It knows
// nothing of Nix. Every change is a short transaction, so a crash at any
// point loses no row; an upload interrupted by a crash is found again by
// RecoverOrphans.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is where an item is in its life.
type State string

const (
	Pending   State = "pending"   // waiting for its next attempt
	Uploading State = "uploading" // claimed by the process in Item.Owner
	Done      State = "done"      // uploaded
	Failed    State = "failed"    // given up; RetryFailed or Requeue revive it
	Skipped   State = "skipped"   // nothing to upload (e.g. garbage-collected)
)

// States lists every State, in pipeline order.
var States = []State{Pending, Uploading, Done, Failed, Skipped}

// Item is one row of the queue.
type Item struct {
	// ID is the row's id: the queue's order. Settle finds a claimed item
	// by it (Outcome.ID).
	ID          int64
	Path        string
	State       State
	Attempts    int
	NextAttempt time.Time // zero when due now
	LastError   string
	EnqueuedAt  time.Time
	FinishedAt  time.Time // zero unless done/failed/skipped
	Bytes       int64     // compressed bytes uploaded (done rows)
	Owner       int       // pid of the claiming process while uploading
}

var (
	// ErrNewerSchema means the file was migrated by a newer nixpush; this
	// build refuses it rather than misreading columns it does not know.
	ErrNewerSchema = errors.New("queue database written by a newer nixpush")
	// ErrCorrupt means the file is not a nixpush queue database or is
	// damaged. Open never modifies such a file. Every method returns it
	// too when a query finds the file damaged after Open (SQLITE_CORRUPT,
	// SQLITE_NOTADB, a failed read of a page); the message then names the
	// file and says what to do. Retrying cannot help.
	ErrCorrupt = errors.New("not a nixpush queue database or damaged")
	// ErrNotClaimed is returned by Complete, Skip, Fail, Retry and Unclaim
	// when the row is not uploading by this process (it was requeued,
	// pruned or recovered meanwhile); the caller's outcome is dropped.
	ErrNotClaimed = errors.New("item not claimed by this process")
	// ErrBusy means another process held the queue's write lock for longer
	// than the busy timeout (SQLITE_BUSY or SQLITE_LOCKED). Nothing was
	// written; the same call may be made again later.
	ErrBusy = errors.New("queue locked by another process past the busy timeout")
)

// Queue is an open queue database. It is safe for concurrent use by many
// goroutines, and several processes may open the same file.
type Queue struct {
	path string
	// w carries every write: one connection whose transactions begin
	// IMMEDIATE, so writers queue on SQLite's lock up front instead of
	// failing to upgrade a read lock halfway through.
	w *sql.DB
	// r carries reads (Get, Status, …); WAL lets them run beside a writer.
	r *sql.DB
	// pid and token identify this process as the owner of claimed rows.
	pid   int
	token string
	// readOnly is set by OpenReadOnly, which leaves w nil.
	readOnly bool
}

// busyTimeout is how long a statement waits for another process's write
// lock before failing with ErrBusy. A variable so tests need not wait 10 s.
var busyTimeout = 10 * time.Second

// Open opens or creates the queue database at path, creating its parent
// directory (0700) if needed, and applies pending migrations.
//
// Errors: a file that is not SQLite, is damaged (PRAGMA quick_check), or is
// another program's SQLite database returns an error wrapping ErrCorrupt; a
// schema version above the one this build knows returns an error wrapping
// ErrNewerSchema. Both messages are one line naming the file, and the file
// and any -wal beside it are left byte for byte as they were (at most an
// empty -wal and a -shm appear). An empty (0-byte) file is initialised.
// A write lock another process holds past the busy timeout wraps ErrBusy;
// a file or directory this process cannot write (read-only file system,
// permissions) wraps ErrReadOnly. Other failures (a full disk) are
// returned wrapped with the path.
func Open(path string) (*Queue, error) { return open(path, true) }

// OpenFast is Open without PRAGMA quick_check, whose cost grows with the
// file (tens of milliseconds at 100,000 rows): for short-lived commands
// such as status and a post-build-hook's enqueue, which must be quick. A
// damaged page still fails with ErrCorrupt when a query reads it; the
// long-running daemon opens with Open and checks the whole file.
func OpenFast(path string) (*Queue, error) { return open(path, false) }

func open(path string, checkPages bool) (*Queue, error) {
	q, err := openWritable(path, checkPages)
	if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerSchema) && !errors.Is(err, ErrBusy) {
		if ro := notWritable(path); ro != nil {
			return nil, ro
		}
	}
	return q, err
}

func openWritable(path string, checkPages bool) (*Queue, error) {
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create queue dir: %w", err)
	}
	if err := inspect(ctx, path, checkPages); err != nil {
		return nil, err
	}
	q := &Queue{path: path, pid: os.Getpid(), token: processToken(os.Getpid())}
	var err error
	q.w, err = sql.Open(driver, dsn(path, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	q.w.SetMaxOpenConns(1)
	if err := q.prepare(ctx); err != nil {
		q.w.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, q.classify(err))
	}
	q.r, err = sql.Open(driver, dsn(path, "_query_only=1"))
	if err != nil {
		q.w.Close()
		return nil, fmt.Errorf("open queue %s: %w", path, err)
	}
	return q, nil
}

// prepare switches a file inspect accepted to WAL and migrates it.
func (q *Queue) prepare(ctx context.Context) error {
	var mode string
	if err := q.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set wal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set wal mode: journal mode is still %q", mode)
	}
	// Checkpoint every 32 MiB of log, not SQLite's 4 MiB: a page a push
	// writes over and over (an index's end, the scope's rows) is copied
	// back once a checkpoint however often it was committed. In a
	// 100,000-path push that is 3–6 µs a path of the queue's 45–50.
	if _, err := q.w.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 8192"); err != nil {
		return fmt.Errorf("set checkpoint interval: %w", err)
	}
	return q.migrate(ctx)
}

// Close closes the database. Rows this process still has uploading stay so
// until Unclaim or ReleaseClaims is called first, or RecoverOrphans runs
// after this process has exited.
func (q *Queue) Close() error {
	// optimize keeps the planner's statistics current for the indexes
	// Status relies on; it is cheap and skipped when nothing changed.
	var errW error
	if q.w != nil {
		_, _ = q.w.Exec("PRAGMA optimize")
		errW = q.w.Close()
	}
	errR := q.r.Close()
	if err := errors.Join(errW, errR); err != nil {
		return fmt.Errorf("close queue: %w", err)
	}
	return nil
}

// write runs fn in one IMMEDIATE transaction on the write connection.
func (q *Queue) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if q.readOnly {
		return fmt.Errorf("%w (%s)", ErrReadOnly, q.path)
	}
	tx, err := q.w.BeginTx(ctx, nil)
	if err != nil {
		return q.classify(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return q.classify(err)
	}
	return q.classify(tx.Commit())
}

// classify is classify for this queue's file.
func (q *Queue) classify(err error) error {
	return classify(q.path, err)
}

// nanos stores t as unix nanoseconds, the zero Time as 0.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}
