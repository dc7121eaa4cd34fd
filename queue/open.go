package queue

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// appID is PRAGMA application_id of a nixpush queue ("nxqu"); migration
// 0001 sets it.
const appID = 0x6e787175

// sqliteMagic starts every SQLite 3 database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// dsn builds a mattn/go-sqlite3 URI for path. Characters SQLite's URI parser
// treats specially are escaped so any file name works.
func dsn(path, extra string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return fmt.Sprintf("file:%s?_busy_timeout=%d&_foreign_keys=on&_synchronous=NORMAL&%s",
		esc, busyTimeout.Milliseconds(), extra)
}

// corrupt reports path as not a usable queue, on one line.
func corrupt(path, detail string) error {
	detail = strings.Join(strings.Fields(detail), " ")
	return fmt.Errorf("open queue %s: %w (%s)", path, ErrCorrupt, detail)
}

// inspect refuses a file that is not a healthy queue of a schema this build
// knows, without writing to it: the checks run on a read-only connection,
// which never checkpoints a -wal into the main file nor rolls a journal
// back, so a refused file stays byte for byte as it was — what is left to
// salvage is the user's to decide.
func inspect(ctx context.Context, path string, checkPages bool) error {
	exists, err := checkHeader(path)
	if err != nil || !exists {
		return err
	}
	db, err := sql.Open(driver, dsn(path, "mode=ro"))
	if err != nil {
		return fmt.Errorf("open queue %s: %w", path, err)
	}
	defer db.Close()
	if checkPages {
		if err := checkIntegrity(ctx, db, path); err != nil {
			return err
		}
	}
	version, err := checkOwnership(ctx, db, path)
	if err != nil || version < len(migrations) {
		return err // migrations will create what is missing
	}
	return checkColumns(ctx, db, path, version)
}

// checkHeader rejects a non-empty file that does not start with the SQLite
// magic before SQLite opens it at all. It reports whether the file exists.
func checkHeader(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("open queue %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("stat queue %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return false, corrupt(path, "not a regular file")
	}
	if st.Size() == 0 {
		return true, nil
	}
	head := make([]byte, 100) // the SQLite database header
	if _, err := io.ReadFull(f, head); err != nil {
		return false, corrupt(path, "shorter than an SQLite header")
	}
	if !bytes.HasPrefix(head, sqliteMagic) {
		return false, corrupt(path, "not an SQLite database")
	}
	// Bytes 18 and 19 are the file format versions needed to write and to
	// read: 1 (rollback journal) or 2 (WAL). SQLite treats a higher write
	// version as read-only, which would fail Open's first write with a
	// misleading "readonly database".
	if w, r := head[18], head[19]; w < 1 || w > 2 || r < 1 || r > 2 {
		return false, corrupt(path, fmt.Sprintf("file format versions %d/%d", w, r))
	}
	return true, nil
}

// checkIntegrity runs PRAGMA quick_check: it verifies b-tree structure
// without cross-checking indexes against tables, which keeps it under
// 100 ms for a 100,000-row queue (see BenchmarkOpen100k).
func checkIntegrity(ctx context.Context, db *sql.DB, path string) error {
	var first string
	err := db.QueryRowContext(ctx, "PRAGMA quick_check(1)").Scan(&first)
	if err != nil {
		return inspectErr(path, "check", err)
	}
	if first != "ok" {
		return corrupt(path, "quick_check: "+first)
	}
	return nil
}

// Check runs SQLite's full integrity check of the file, through this
// queue's read connection (it works on a queue opened read-only): beyond
// Open's quick_check it finds indexes that disagree with the table, which
// let queries answer "nothing" instead of failing. Its cost grows with the
// file (about 0.25 s at 100,000 rows), so the commands a person runs to
// look at or change a queue (status, retry) call it; the daemon does not.
//
// Errors: damage wraps ErrCorrupt, naming the file and the first problem.
func (q *Queue) Check(ctx context.Context) error {
	var first string
	if err := q.r.QueryRowContext(ctx, "PRAGMA integrity_check(1)").Scan(&first); err != nil {
		return inspectErr(q.path, "check", err)
	}
	if first != "ok" {
		return corrupt(q.path, "integrity_check: "+first)
	}
	return nil
}

// checkOwnership refuses a database this build must not write to: one
// from a newer nixpush, or one belonging to another program. It returns
// the schema version.
func checkOwnership(ctx context.Context, db *sql.DB, path string) (int, error) {
	var version, id, objects int
	row := db.QueryRowContext(ctx, `SELECT
		(SELECT user_version FROM pragma_user_version),
		(SELECT application_id FROM pragma_application_id),
		(SELECT count(*) FROM sqlite_schema)`)
	if err := row.Scan(&version, &id, &objects); err != nil {
		return 0, inspectErr(path, "read schema of", err)
	}
	latest := len(migrations)
	switch {
	case version > latest:
		return 0, fmt.Errorf("open queue %s: %w (schema version %d, this build knows %d)",
			path, ErrNewerSchema, version, latest)
	case version < 0:
		// Only a damaged header holds one: migrations count up from 0.
		return 0, corrupt(path, fmt.Sprintf("negative schema version %d", version))
	case id != 0 && id != appID:
		return 0, corrupt(path, fmt.Sprintf("application_id %#x is not nixpush's", id))
	case id == 0 && (version != 0 || objects != 0):
		return 0, corrupt(path, "an SQLite database of another program")
	case version == 0 && objects != 0:
		// Migration 0001 sets the id, creates the tables and the version
		// in one transaction; migrating again would fail halfway.
		return 0, corrupt(path, "schema version 0 with tables in it")
	}
	return version, nil
}
