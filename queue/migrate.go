package queue

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// migrationFS holds the schema history; migration N takes the database
// from user_version N-1 to N. Files are never edited once released: a
// change is a new file.
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migrations[i] is the SQL of version i+1.
var migrations = mustLoadMigrations()

func mustLoadMigrations() []string {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		panic(err) // the pattern is constant
	}
	// Glob returns names sorted, so zero-padded numbers come in order.
	out := make([]string, 0, len(names))
	for i, name := range names {
		num, _, _ := strings.Cut(path.Base(name), "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			// A build-time mistake in this package, caught by any test.
			panic(fmt.Sprintf("queue: migration %s out of sequence, want %04d", name, i+1))
		}
		b, err := migrationFS.ReadFile(name)
		if err != nil {
			panic(err)
		}
		out = append(out, string(b))
	}
	return out
}

// migrate applies every migration above the file's user_version in one
// transaction, so a crash leaves either the old schema or the new one.
// The version is re-read under the write lock because another process
// may have migrated since checkOwnership looked.
func (q *Queue) migrate(ctx context.Context) error {
	return q.write(ctx, func(tx *sql.Tx) error {
		var version int
		if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		switch {
		case version > len(migrations):
			return fmt.Errorf("%w (schema version %d, this build knows %d)",
				ErrNewerSchema, version, len(migrations))
		case version < 0:
			// Changed since checkOwnership looked: damaged meanwhile.
			return fmt.Errorf("%w (negative schema version %d)", ErrCorrupt, version)
		}
		if version == len(migrations) {
			return nil // nothing written: a run that queues nothing writes no page
		}
		for v := version + 1; v <= len(migrations); v++ {
			if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
				// A plain SQL error ("table uploads already exists") means
				// the schema disagrees with its version: damage, as
				// inspectErr says of the schema checks before.
				return inspectErr(q.path, fmt.Sprintf("apply migration %d to", v), err)
			}
		}
		// PRAGMA takes no bound parameters; the number is this build's own.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
			return fmt.Errorf("set schema version: %w", err)
		}
		return nil
	})
}
