package queue

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Claim takes up to n pending rows whose next attempt is at or before now,
// oldest (first inserted) first, marks them uploading by this process and
// returns them. The select and the update share one IMMEDIATE transaction,
// so concurrent claimers — goroutines or processes — never get the same
// row. If only is non-empty, just rows with those paths are eligible (a
// `push` drains its own items); the cost then grows with len(only).
// Returns nil when nothing is due.
//
// Errors: only database errors, after which nothing was claimed.
func (q *Queue) Claim(ctx context.Context, n int, now time.Time, only []string) ([]Item, error) {
	if n <= 0 {
		return nil, nil
	}
	var claimed []Item
	err := q.write(ctx, func(tx *sql.Tx) error {
		claimed = nil
		rows, err := candidates(ctx, tx, n, nanos(now), only)
		if err != nil {
			return err
		}
		upd, err := tx.PrepareContext(ctx,
			`UPDATE items SET state = 'uploading', owner = ?, owner_token = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer upd.Close()
		for _, r := range rows {
			if _, err := upd.ExecContext(ctx, q.pid, q.token, r.id); err != nil {
				return err
			}
			r.item.State, r.item.Owner = Uploading, q.pid
			claimed = append(claimed, r.item)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim items: %w", err)
	}
	return claimed, nil
}

// row is a candidate for Claim: its id orders the queue.
type row struct {
	id   int64
	item Item
}

// candidates selects the rows Claim will take, oldest first.
func candidates(ctx context.Context, tx *sql.Tx, n int, now int64, only []string) ([]row, error) {
	if len(only) == 0 {
		// Left to itself the planner ranges over items_state_next and sorts
		// every due row to find the first n — milliseconds per claim with a
		// large backlog. Walking items_state_id stops after n.
		return queryRows(ctx, tx, `SELECT `+itemCols+` FROM items INDEXED BY items_state_id
			WHERE state = 'pending' AND next_attempt <= ? ORDER BY id LIMIT ?`, now, n)
	}
	const base = `SELECT ` + itemCols + ` FROM items
		WHERE state = 'pending' AND next_attempt <= ?`
	// Sorted copy without duplicates: the caller's slice is not ours to
	// reorder, and a path in two chunks would be claimed twice.
	only = slices.Compact(slices.Sorted(slices.Values(only)))
	var all []row
	// Each chunk yields its own oldest n; the oldest n overall are among them.
	for _, chunk := range chunks(only) {
		marks, args := placeholders(chunk)
		args = append([]any{now}, append(args, n)...)
		rows, err := queryRows(ctx, tx, base+` AND path IN (`+marks+`) ORDER BY id LIMIT ?`, args...)
		if err != nil {
			return nil, err
		}
		all = append(all, rows...)
	}
	slices.SortFunc(all, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	return all[:min(n, len(all))], nil
}

func queryRows(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]row, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []row
	for rows.Next() {
		id, it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, row{id, it})
	}
	return out, rows.Err()
}

// settle applies an outcome to path if this process has it uploading.
func (q *Queue) settle(ctx context.Context, verb, path, set string, args ...any) error {
	args = append(args, path, q.pid, q.token)
	err := q.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE items SET `+set+`, owner = 0, owner_token = ''
			WHERE path = ? AND state = 'uploading' AND owner = ? AND owner_token = ?`, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err == nil && n == 0 {
			err = ErrNotClaimed
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%s item %s: %w", verb, path, err)
	}
	return nil
}

// Complete records path as uploaded, with the compressed size sent.
//
// Errors: ErrNotClaimed if this process does not have path uploading;
// otherwise database errors. On error the row is unchanged.
func (q *Queue) Complete(ctx context.Context, path string, bytes int64, now time.Time) error {
	return q.settle(ctx, "complete", path,
		`state = 'done', bytes = ?, finished_at = ?, last_error = ''`, bytes, nanos(now))
}

// Skip records that path needs no upload, and why (e.g. it was
// garbage-collected before its turn).
//
// Errors: as Complete.
func (q *Queue) Skip(ctx context.Context, path, reason string, now time.Time) error {
	return q.settle(ctx, "skip", path,
		`state = 'skipped', last_error = ?, finished_at = ?`, reason, nanos(now))
}

// Fail records a permanent failure of path: it counts an attempt and keeps
// reason until RetryFailed or Requeue revives the row.
//
// Errors: as Complete.
func (q *Queue) Fail(ctx context.Context, path, reason string, now time.Time) error {
	return q.settle(ctx, "fail", path,
		`state = 'failed', attempts = attempts + 1, last_error = ?, finished_at = ?`,
		reason, nanos(now))
}

// Retry returns path to pending after a transient failure: it counts an
// attempt, keeps reason, and makes the row due at next.
//
// Errors: as Complete.
func (q *Queue) Retry(ctx context.Context, path, reason string, next time.Time) error {
	return q.settle(ctx, "retry", path,
		`state = 'pending', attempts = attempts + 1, last_error = ?, next_attempt = ?`,
		reason, nanos(next))
}

// Unclaim returns path to pending without counting an attempt, for a
// graceful shutdown that abandons an upload it did not get to finish.
//
// Errors: as Complete.
func (q *Queue) Unclaim(ctx context.Context, path string) error {
	return q.settle(ctx, "unclaim", path, `state = 'pending'`)
}

// RecoverOrphans returns to pending, due now, every uploading row whose
// owner process has exited (or is a later process reusing its pid). Rows of
// live processes — including other daemons sharing the file — are left
// alone, so no path is uploaded by two processes at once. A recovered row
// counts an attempt and records the interruption as its last error: a path
// that kills its uploader must not be retried forever unnoticed. Returns
// how many rows it recovered. Call it at start and periodically.
//
// Errors: only database errors, after which nothing was recovered.
func (q *Queue) RecoverOrphans(ctx context.Context) (int, error) {
	type owner struct {
		pid   int
		token string
	}
	var recovered int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		recovered = 0
		rows, err := tx.QueryContext(ctx,
			`SELECT DISTINCT owner, owner_token FROM items WHERE state = 'uploading'`)
		if err != nil {
			return err
		}
		var owners []owner
		for rows.Next() {
			var o owner
			if err := rows.Scan(&o.pid, &o.token); err != nil {
				rows.Close()
				return err
			}
			owners = append(owners, o)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, o := range owners {
			if ownerAlive(o.pid, o.token) {
				continue
			}
			res, err := tx.ExecContext(ctx, `UPDATE items SET state = 'pending',
				attempts = attempts + 1, next_attempt = 0, last_error = ?,
				owner = 0, owner_token = ''
				WHERE state = 'uploading' AND owner = ? AND owner_token = ?`,
				fmt.Sprintf("interrupted: uploading process %d exited", o.pid), o.pid, o.token)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			recovered += n
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recover orphaned items: %w", err)
	}
	return int(recovered), nil
}
