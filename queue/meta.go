package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// GetMeta returns the value stored under key by SetMeta; ok is false when
// there is none. Other components keep small state here (e.g. the
// watcher's high-water mark) so it commits with the same durability as
// the queue.
//
// Errors: only database errors.
func (q *Queue) GetMeta(ctx context.Context, key string) (string, bool, error) {
	var value string
	err := q.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&value)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("get meta %q: %w", key, q.classify(err))
	}
	return value, true, nil
}

// SetMeta stores value under key, replacing any previous value.
//
// Errors: only database errors, after which the old value remains.
func (q *Queue) SetMeta(ctx context.Context, key, value string) error {
	err := q.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
		return err
	})
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}
