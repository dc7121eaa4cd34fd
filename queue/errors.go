package queue

import (
	"errors"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// damagedError is a queue file found damaged by a query after Open
// accepted it (a disk error, another program writing into it). Nothing
// the process does next can repair it, so the message says what the
// operator does; errors.Is matches ErrCorrupt and the SQLite error.
type damagedError struct {
	path  string
	cause error
}

func (e *damagedError) Error() string {
	return fmt.Sprintf("queue file %s is damaged (%v): stop nixpush and move the file away; "+
		"its pending paths are found again with `nixpush watch-store --backfill`", e.path, e.cause)
}

func (e *damagedError) Unwrap() []error { return []error{ErrCorrupt, e.cause} }

// errBadValue marks a value read from the file that nixpush cannot have
// written: a state it does not know, text where it stores a number.
// Damage inside a row's payload passes SQLite's own checks, so only the
// reader can tell.
var errBadValue = errors.New("value nixpush never writes")

// scanFailed reports whether err is database/sql's failure to convert a
// column into the destination its query was written for — a column of
// the wrong type, which for our own fixed queries means a damaged row.
// database/sql gives these errors no type of their own, only this text,
// which it has kept since Go 1.
func scanFailed(err error) bool {
	return strings.Contains(err.Error(), "sql: Scan error on column")
}

// classify makes SQLite's errors match this package's sentinels, so callers
// need only errors.Is whatever the operation: damage (SQLITE_CORRUPT,
// SQLITE_NOTADB, a failed or short read of a page) matches ErrCorrupt, a
// lock held past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED) ErrBusy.
// path names the file in the message.
func classify(path string, err error) error {
	var se sqlite3.Error
	switch {
	case err == nil || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrBusy):
		return err
	case errors.Is(err, errBadValue) || scanFailed(err):
		return &damagedError{path: path, cause: err}
	case !errors.As(err, &se):
		return err
	}
	switch {
	case se.Code == sqlite3.ErrCorrupt, se.Code == sqlite3.ErrNotADB,
		se.ExtendedCode == sqlite3.ErrIoErrRead, se.ExtendedCode == sqlite3.ErrIoErrShortRead:
		return &damagedError{path: path, cause: err}
	case se.Code == sqlite3.ErrBusy, se.Code == sqlite3.ErrLocked:
		return fmt.Errorf("%w (queue %s): %w", ErrBusy, path, err)
	}
	return err
}

// inspectErr classifies an error of the fixed queries that look at a file
// before it is used. A plain SQL error there ("unsupported file format", a
// schema SQLite cannot parse) can only come from the file's own header or
// schema, so it is damage too.
func inspectErr(path, verb string, err error) error {
	var se sqlite3.Error
	if errors.Is(classify(path, err), ErrCorrupt) || errors.As(err, &se) && se.Code == sqlite3.ErrError {
		return corrupt(path, err.Error())
	}
	return fmt.Errorf("%s queue %s: %w", verb, path, classify(path, err))
}
