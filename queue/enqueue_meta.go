package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// EnqueueWithMeta is Enqueue and SetMeta(key, value) in one transaction:
// a watcher's new rows and the high-water mark they reach commit together,
// so a crash can neither lose rows below the saved mark nor enqueue twice.
// Returns the rows added.
//
// Errors: as Enqueue; on error neither the rows nor the value are written.
func (q *Queue) EnqueueWithMeta(ctx context.Context, paths []string, key, value string) (int, error) {
	if err := checkPaths(paths); err != nil {
		return 0, fmt.Errorf("enqueue paths: %w", err)
	}
	var added int
	err := q.write(ctx, func(tx *sql.Tx) error {
		var err error
		if added, err = insertPending(ctx, tx, pathList(paths), nanos(time.Now())); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue paths: %w", err)
	}
	return added, nil
}
