package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrReadOnly is returned by every write method of a Queue opened with
// OpenReadOnly, and by Open and OpenFast when the file or its directory
// cannot be written; OpenReadOnly can still read such a file.
var ErrReadOnly = errors.New("queue is read-only")

// notWritable returns an error wrapping ErrReadOnly if this process may not
// write path or its directory (where SQLite creates the -wal and -shm).
// SQLite itself reports that only as "unable to open database file", or
// "attempt to write a readonly database", about whichever file it tried.
func notWritable(path string) error {
	const wOK = 2 // access(2)'s W_OK
	for _, p := range []string{filepath.Dir(path), path} {
		err := syscall.Access(p, wOK)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("open queue %s: %w (%s: %w)", path, ErrReadOnly, p, err)
		}
	}
	return nil
}

// ErrEmpty means a queue file holds nothing: it was created and never
// initialised (a full disk, a crash at the first start). Open and
// OpenFast initialise such a file; only OpenReadOnly, which writes
// nothing, returns this.
var ErrEmpty = errors.New("queue file is empty: created but never initialised (was the disk full?); the next nixpush command that writes to this queue initialises it")

// ErrOldSchema means a queue file's schema predates this build's and lacks
// what a read-only open needs; a nixpush that may write migrates it.
var ErrOldSchema = errors.New("queue schema older than this nixpush")

// OpenReadOnly opens the queue at path without writing anything: no
// directory is created, no migration runs, no journal mode is set. It
// works when the file or its directory is read-only or the disk is full,
// and beside a daemon writing the same file. Status, Get, GetMeta and
// NextDue work on it; every write method returns an error wrapping
// ErrReadOnly.
//
// Errors: a missing file wraps os.ErrNotExist, an empty one ErrEmpty; a
// file that is not a queue
// or is damaged wraps ErrCorrupt (pages are checked only as queries read
// them, as with OpenFast); a newer schema wraps ErrNewerSchema; an older
// schema without the columns these reads need wraps ErrOldSchema.
func OpenReadOnly(path string) (*Queue, error) {
	ctx := context.Background()
	exists, err := checkHeader(path)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("open queue %s: %w", path, os.ErrNotExist)
	}
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		return nil, fmt.Errorf("open queue %s: %w", path, ErrEmpty)
	}
	db, err := openReader(ctx, path)
	if err != nil {
		return nil, err
	}
	version, err := checkOwnership(ctx, db, path)
	if err == nil {
		err = checkColumns(ctx, db, path, version)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Queue{path: path, r: db, readOnly: true}, nil
}

// openReader opens path with mode=ro. SQLite reads a WAL file read-only
// only if it can open the -shm beside it, or create it — which a
// read-only directory or a full disk forbid once the last writer has
// closed the file and removed its -wal and -shm. The file alone is then
// the whole database and it is opened immutable: SQLite reads it without
// locks or -shm, and sees it as it was when opened. Should a writer start
// meanwhile, reads may see its checkpoint half done, which fails as damage
// rather than lying; status is short-lived, so this is rare and harmless.
func openReader(ctx context.Context, path string) (*sql.DB, error) {
	db, err := pingReader(ctx, path, "mode=ro")
	if err == nil || errors.Is(err, ErrCorrupt) || walInUse(path) {
		return db, err
	}
	if db, errImm := pingReader(ctx, path, "mode=ro&immutable=1"); errImm == nil {
		return db, nil
	}
	return nil, err
}

func pingReader(ctx context.Context, path, mode string) (*sql.DB, error) {
	db, err := sql.Open(driver, dsn(path, mode))
	if err == nil {
		// Opening is lazy: the first read of the schema shows whether
		// SQLite can read the file at all.
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n)
	}
	if err != nil {
		db.Close()
		return nil, inspectErr(path, "open read-only", err)
	}
	return db, nil
}

// walInUse reports whether path has a -wal with commits in it (or one that
// cannot be inspected): those are part of the database and immutable
// would not read them.
func walInUse(path string) bool {
	st, err := os.Stat(path + "-wal")
	return !errors.Is(err, os.ErrNotExist) && (err != nil || st.Size() > 0)
}

// needColumns are the columns reads use, by table.
var needColumns = []struct {
	table string
	cols  []string
}{
	{"items", append(strings.Split(strings.Join(strings.Fields(itemCols), ""), ","), "path_hash")},
	{"meta", []string{"key", "value"}},
}

// checkColumns makes sure the reads of this build can run on a file whose
// schema version is version.
func checkColumns(ctx context.Context, db *sql.DB, path string, version int) error {
	for _, need := range needColumns {
		table, cols := need.table, need.cols
		have := map[string]bool{}
		rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			return inspectErr(path, "read schema of", err)
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return inspectErr(path, "read schema of", err)
			}
			have[name] = true
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return inspectErr(path, "read schema of", err)
		}
		for _, col := range cols {
			if have[col] {
				continue
			}
			if version < len(migrations) {
				return fmt.Errorf("open queue %s: %w (schema version %d lacks %s.%s; "+
					"any nixpush command that writes to the queue migrates it)",
					path, ErrOldSchema, version, table, col)
			}
			return corrupt(path, fmt.Sprintf("table %s lacks column %s", table, col))
		}
	}
	return nil
}
