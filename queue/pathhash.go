package queue

import (
	"database/sql"
	"hash/fnv"

	"github.com/mattn/go-sqlite3"
)

// pathHash is the path_hash of a row (migration 0004): 48 bits of the
// path's FNV-1a hash, which SQLite stores in 6 bytes. Two paths sharing
// one cost a second row read, never a wrong row: every lookup matches the
// path too.
func pathHash(path string) int64 {
	h := fnv.New64a()
	h.Write([]byte(path))
	return int64(h.Sum64() >> 16)
}

// hashedList is paths as the JSON list of [path_hash, path] pairs the
// batch statements take: the hashes are computed here, not by calling
// path_hash in SQL, which costs a call from C into Go a row (0.9 µs).
func hashedList(paths []string) string {
	pairs := make([][2]any, len(paths))
	for i, p := range paths {
		pairs[i] = [2]any{pathHash(p), p}
	}
	return jsonList(pairs)
}

// driver is go-sqlite3 with path_hash defined on every connection, for
// the migration that adds the column to existing rows, and for the rare
// statement that joins by a path read from another table.
const driver = "sqlite3_nixpush_queue"

func init() {
	sql.Register(driver, &sqlite3.SQLiteDriver{
		ConnectHook: func(conn *sqlite3.SQLiteConn) error {
			return conn.RegisterFunc("path_hash", pathHash, true)
		},
	})
}
