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
	now := nanos(time.Now())
	var added int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		added = 0
		stmt, err := tx.PrepareContext(ctx,
			`INSERT INTO items (path, enqueued_at) VALUES (?, ?) ON CONFLICT (path) DO NOTHING`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, p := range paths {
			res, err := stmt.ExecContext(ctx, p, now)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			added += n
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue paths: %w", err)
	}
	return int(added), nil
}
