package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// LoadUpload returns the state saved for path's upload in progress, nil
// when there is none.
//
// Errors: only database errors.
func (q *Queue) LoadUpload(ctx context.Context, path string) ([]byte, error) {
	var state []byte
	err := q.r.QueryRowContext(ctx, `SELECT state FROM uploads WHERE path = ?`, path).Scan(&state)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read upload state of %s: %w", path, q.classify(err))
	}
	return state, nil
}

// SaveUpload records the state of path's upload in progress; nil deletes
// it (the upload completed, or was given up).
//
// Errors: only database errors, after which the old state remains.
func (q *Queue) SaveUpload(ctx context.Context, path string, state []byte) error {
	err := q.write(ctx, func(tx *sql.Tx) error {
		if state == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE path = ?`, path)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO uploads (path, state, updated) VALUES (?, ?, ?)
			ON CONFLICT (path) DO UPDATE SET state = excluded.state, updated = excluded.updated`,
			path, state, time.Now().UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("save upload state of %s: %w", path, err)
	}
	return nil
}

// SavedUpload is an upload in progress recorded by SaveUpload.
type SavedUpload struct {
	Path  string
	State []byte
}

// AbandonedUploads lists the uploads no process will continue: those
// whose path has no pending or uploading row (it was pushed, failed for
// good, was skipped, or left the queue). Their parts stay on the server,
// billed, until someone aborts them.
//
// Errors: only database errors.
func (q *Queue) AbandonedUploads(ctx context.Context) ([]SavedUpload, error) {
	rows, err := q.r.QueryContext(ctx, `SELECT u.path, u.state FROM uploads u
		LEFT JOIN items i ON i.path_hash = path_hash(u.path) AND i.path = u.path
			AND i.state IN ('pending', 'uploading')
		WHERE i.id IS NULL`)
	if err != nil {
		return nil, fmt.Errorf("list abandoned uploads: %w", q.classify(err))
	}
	defer rows.Close()
	var out []SavedUpload
	for rows.Next() {
		var u SavedUpload
		if err := rows.Scan(&u.Path, &u.State); err != nil {
			return nil, fmt.Errorf("list abandoned uploads: %w", q.classify(err))
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list abandoned uploads: %w", q.classify(err))
	}
	return out, nil
}
