// Package nixstore is nixpush's read-only view of a local Nix store: the
// files under the store directory and the metadata in the Nix DB.
//
// It never writes to the store or the DB. The DB is opened read-only in
// WAL-aware mode (never immutable=1: Nix writes to it while we read, and an
// immutable open would serve stale pages), and every query runs in a short
// transaction so Nix's writers are never held up.
package nixstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
	"golang.org/x/sys/unix"
)

// StoreDir is the logical store directory. Paths keep this prefix even when
// the files live under another root (Nix's --store ROOT).
const StoreDir = "/nix/store"

// ErrNotValid is returned for a store path that has no row in the Nix DB:
// it was never built, or has been garbage-collected.
var ErrNotValid = errors.New("not a valid path in the Nix store")

// Store reads one Nix store, either the machine's own (root "/") or a
// chroot store like the one `nix-build --store ROOT` creates.
type Store struct {
	root string
	db   *sql.DB

	mu sync.Mutex
	// noRealisationsSince: when the DB was last found without the tables
	// of ca-derivations (see QueryRealisations); zero when it has them.
	noRealisationsSince time.Time
}

// Open opens the store whose files live under root (empty or "/" for the
// real store). The DB must exist: a missing DB is an error, not an empty
// store.
func Open(root string) (*Store, error) {
	if root == "" {
		root = "/"
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open nix store: %w", err)
	}
	// Resolve symlinks in the root itself (/tmp -> /private/tmp, say), so
	// Resolve can recognise physical paths under it.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	s := &Store{root: root}
	if _, err := os.Stat(s.DBPath()); err != nil {
		return nil, fmt.Errorf("open nix db: %w", err)
	}
	// mode=ro: we never write. _busy_timeout: Nix may hold a write lock
	// briefly (checkpoints); wait instead of failing.
	dsn := "file:" + (&url.URL{Path: s.DBPath()}).EscapedPath() +
		"?mode=ro&_busy_timeout=10000"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open nix db: %w", err)
	}
	db.SetMaxOpenConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open nix db %s: %w%s", s.DBPath(), err, s.walHint())
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name = 'ValidPaths'`).Scan(&n); err != nil || n == 0 {
		db.Close()
		if err == nil {
			err = errors.New("no ValidPaths table")
		}
		return nil, fmt.Errorf("open nix db %s: not a Nix database: %w", s.DBPath(), err)
	}
	s.db = db
	return s, nil
}

// walHint explains the one way a read-only open of a healthy DB fails: a
// WAL database can be read only if its -shm file exists or can be created.
// An unprivileged user (multi-user Nix) cannot create it; it exists while
// the nix-daemon has the DB open, as during any build.
func (s *Store) walHint() string {
	if _, err := os.Stat(s.DBPath() + "-shm"); err == nil || unix.Access(s.DBDir(), unix.W_OK) == nil {
		return ""
	}
	return " (the DB's -shm file is missing and this user may not create it: run as root, or while the nix-daemon has the DB open, e.g. during a build)"
}

// Close releases the DB connections.
func (s *Store) Close() error { return s.db.Close() }

// Root is the filesystem root the store lives under ("/" for the real store).
func (s *Store) Root() string { return s.root }

// DBDir is the directory holding the Nix DB (watched for changes).
func (s *Store) DBDir() string { return filepath.Join(s.root, "nix/var/nix/db") }

// DBPath is the Nix DB file.
func (s *Store) DBPath() string { return filepath.Join(s.DBDir(), "db.sqlite") }

// RealStoreDir is where the store's files are on this filesystem.
func (s *Store) RealStoreDir() string { return filepath.Join(s.root, StoreDir) }

// RealPath maps a logical store path to the file that holds it.
func (s *Store) RealPath(storePath string) string { return filepath.Join(s.root, storePath) }

// readTx runs fn in one short read transaction, so that a multi-query read
// (a closure, say) sees one consistent snapshot of the DB.
func (s *Store) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("read nix db: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to undo
	return fn(tx)
}
