package memo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the database/sql driver
)

var _ Memo = (*File)(nil)

// FileSuffix ends a memo file's name; it must not end in the queue's
// suffix (".queue.db"), which marks the files status reads as queues.
const FileSuffix = ".present.db"

// chunk bounds the parameters of one statement (SQLite's limit is 32,766).
const chunk = 500

const schema = `CREATE TABLE IF NOT EXISTS present (
	hash TEXT PRIMARY KEY, -- the store path's hash part, as in its narinfo's name
	seen INTEGER NOT NULL  -- unix milliseconds when it was last written or found
) WITHOUT ROWID`

// The persistent Memo holds, for one cache, the store
// paths known to be in it, kept in a small SQLite file beside the cache's
// queue in the state dir, so that a re-run asks the cache only about the
// paths it does not know.
//
// A file of its own rather than a table in the queue, because the two
// hold different kinds of data. The queue is state that must not be lost:
// it is versioned, migrated, checked at open, and a damaged queue stops
// pushing. The memo is a cache of the cache: losing it at any moment costs
// only existence checks, so a memo that cannot be opened is started afresh
// and one that fails is ignored. Its rows (every path of every closure
// checked, hundreds of thousands on a busy builder) would also grow the
// queue file, and its writes would queue behind the queue's single writer
// lock with every claim and settle of every process sharing the cache.

// File is a Memo in an SQLite file. Remember buffers in memory until
// Flush; Present sees the buffer at once.
type File struct {
	db  *sql.DB
	ttl time.Duration

	mu      sync.Mutex
	pending map[key]int64 // hash → seen, not yet written
	flushed time.Time     // when a flush last took the buffer
}

// Flush writes at most once per flushEvery unless flushBatch paths wait;
// Close writes the rest. Each write is a commit, and its cost is the pages
// it dirties: with random hashes, a write of B paths into a table of P
// pages dirties about min(B, P) of them. Flushed after every batch of a
// 100,000-path push (256 paths), the memo cost 15 µs a path, twice what it
// cost at 20,000. In writes of 4,096 (at 100,000 paths, a page for every
// fourth path), its writes cost 2.5–3.5 µs a path at 20,000 and 4.5–5.6
// at 100,000; in writes of up to 65,536 or every 10 s, 2.0–3.0 and
// 2.5–2.8. The buffer holds about 5 MB at most, and one lost in a crash
// costs only checks.
var flushEvery = 10 * time.Second

const flushBatch = 1 << 16

// Open opens (creating) the memo file at file, whose entries expire after
// ttl, and drops the expired ones. A file that is not a memo (damaged,
// or an older layout) is replaced by an empty one.
func Open(file string, ttl time.Duration) (*File, error) {
	m, err := open(file, ttl)
	if err != nil && !errors.Is(err, errBusy) {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(file + suffix)
		}
		m, err = open(file, ttl)
	}
	return m, err
}

var errBusy = errors.New("memo file is locked")

func open(file string, ttl time.Duration) (*File, error) {
	// The state dir, as the queue makes it: the memo may be opened first.
	if err := os.MkdirAll(path.Dir(file), 0o700); err != nil {
		return nil, fmt.Errorf("open cache memo: %w", err)
	}
	// An 8 MiB page cache holds the memo of 150,000 paths: lookups and
	// writes of random hashes in a larger table than SQLite's default 2
	// MiB read a page from the kernel each.
	db, err := sql.Open("sqlite3", "file:"+file+"?_busy_timeout=5000&_journal_mode=WAL&_synchronous=NORMAL&_txlock=immediate&_cache_size=-8192")
	if err != nil {
		return nil, fmt.Errorf("open cache memo: %w", err)
	}
	// One connection: writes are serialised anyway, and it keeps the
	// per-connection pragmas in force.
	db.SetMaxOpenConns(1)
	m := &File{db: db, ttl: ttl, pending: map[key]int64{}}
	if _, err := db.Exec(schema + ";" + metaSchema); err != nil {
		db.Close()
		if strings.Contains(err.Error(), "locked") || strings.Contains(err.Error(), "busy") {
			return nil, fmt.Errorf("open cache memo: %w: %v", errBusy, err)
		}
		return nil, fmt.Errorf("open cache memo: %w", err)
	}
	if _, err := db.Exec(`DELETE FROM present WHERE seen <= ?`, m.expiry(time.Time{})); err != nil {
		db.Close()
		return nil, fmt.Errorf("prune cache memo: %w", err)
	}
	return m, nil
}

// expiry is the unix millisecond at or before which entries are not trusted.
func (m *File) expiry(since time.Time) int64 {
	e := time.Now().Add(-m.ttl).UnixMilli()
	if !since.IsZero() {
		e = max(e, since.UnixMilli()-1)
	}
	return e
}

// hashPart is the key of a store path: its 32-character hash.
func hashPart(storePath string) string {
	h, _, _ := strings.Cut(path.Base(storePath), "-")
	return h
}

// Present returns which of paths were remembered at or after since (to
// the millisecond) and within the TTL.
func (m *File) Present(ctx context.Context, paths []string, since time.Time) (map[string]bool, error) {
	byKey := make(map[key]string, len(paths))
	keys := make([]key, 0, len(paths))
	for _, p := range paths {
		if k, ok := keyOf(p); ok {
			byKey[k] = p
			keys = append(keys, k)
		}
	}
	known, err := m.known(ctx, keys, m.expiry(since))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(known))
	for _, k := range known {
		out[byKey[k]] = true
	}
	return out, nil
}

// known returns the keys seen after the unix millisecond after.
func (m *File) known(ctx context.Context, keys []key, after int64) ([]key, error) {
	var out []key
	var ask []any
	m.mu.Lock()
	for _, k := range keys {
		if seen, ok := m.pending[k]; ok && seen > after {
			out = append(out, k)
		} else {
			ask = append(ask, string(k[:]))
		}
	}
	m.mu.Unlock()
	for len(ask) > 0 {
		n := min(len(ask), chunk)
		args := append([]any{after}, ask[:n]...)
		ask = ask[n:]
		rows, err := m.db.QueryContext(ctx, `SELECT hash FROM present WHERE seen > ? AND hash IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("read cache memo: %w", err)
		}
		for rows.Next() {
			var h []byte
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read cache memo: %w", err)
			}
			// A row matched one of ask, so h is a key's length: checked
			// anyway, as converting a shorter slice to an array panics.
			if len(h) == len(key{}) {
				out = append(out, key(h))
			}
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read cache memo: %w", err)
		}
	}
	return out, nil
}

// The memo describes one cache, named by the ID in its nix-cache-info
// (cache.IDKey): a cache wiped and made again under the same URL has
// another ID, and what the memo knew of the old one is worth nothing.
const metaSchema = `CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) WITHOUT ROWID`

// cacheIDKey is the meta row of the cache's ID.
const cacheIDKey = "cache-id"

// CacheID is the ID of the cache this memo describes, "" when it does not
// know (a new memo, or one from a nixpush before IDs).
func (m *File) CacheID(ctx context.Context) (string, error) {
	var id string
	err := m.db.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, cacheIDKey).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cache memo: %w", err)
	}
	return id, nil
}

// Reset forgets every path, and records that the memo now describes the
// cache with this ID.
func (m *File) Reset(ctx context.Context, id string) error {
	m.mu.Lock()
	m.pending = map[key]int64{}
	m.mu.Unlock()
	err := m.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM present`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, cacheIDKey, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("reset cache memo: %w", err)
	}
	return nil
}

// Remember records paths as present now, in memory until Flush.
func (m *File) Remember(paths []string) {
	now := time.Now().UnixMilli()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range paths {
		if k, ok := keyOf(p); ok {
			m.pending[k] = now
		}
	}
}

// Flush writes what Remember buffered, in one transaction, or keeps it
// for a later Flush or Close (see flushEvery).
func (m *File) Flush(ctx context.Context) error { return m.flush(ctx, false) }

func (m *File) flush(ctx context.Context, all bool) error {
	m.mu.Lock()
	if !all && len(m.pending) < flushBatch && time.Since(m.flushed) < flushEvery {
		m.mu.Unlock()
		return nil
	}
	batch := m.pending
	m.pending = map[key]int64{}
	m.flushed = time.Now()
	m.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := m.write(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO present (hash, seen) VALUES (?, ?)
			ON CONFLICT (hash) DO UPDATE SET seen = max(seen, excluded.seen)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for k, seen := range batch {
			if _, err := stmt.ExecContext(ctx, string(k[:]), seen); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// Put them back, unless forgotten meanwhile: the next Flush tries again.
		m.mu.Lock()
		for k, seen := range batch {
			if _, ok := m.pending[k]; !ok {
				m.pending[k] = seen
			}
		}
		m.mu.Unlock()
		return fmt.Errorf("write cache memo: %w", err)
	}
	return nil
}

// Forget drops paths from the buffer and the file.
func (m *File) Forget(ctx context.Context, paths []string) error {
	hashes := make([]any, 0, len(paths))
	m.mu.Lock()
	for _, p := range paths {
		if k, ok := keyOf(p); ok {
			delete(m.pending, k)
			hashes = append(hashes, string(k[:]))
		}
	}
	m.mu.Unlock()
	err := m.write(ctx, func(tx *sql.Tx) error {
		for len(hashes) > 0 {
			n := min(len(hashes), chunk)
			if _, err := tx.ExecContext(ctx, `DELETE FROM present WHERE hash IN (?`+strings.Repeat(",?", n-1)+`)`, hashes[:n]...); err != nil {
				return err
			}
			hashes = hashes[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("forget in cache memo: %w", err)
	}
	return nil
}

func (m *File) write(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Close writes what is buffered and closes the file.
func (m *File) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(m.flush(ctx, true), m.db.Close())
}
