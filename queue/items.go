package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// itemCols are the columns scanItem reads, in order.
const itemCols = `id, path, state, attempts, next_attempt, last_error,
	enqueued_at, finished_at, bytes, owner`

// pruneBatch bounds the rows one Prune transaction deletes, so a large
// prune never holds the write lock long enough to stall a claimer.
const pruneBatch = 5000

func scanItem(s interface{ Scan(...any) error }) (Item, error) {
	var (
		it                             Item
		next, enqueued, finished, size int64
	)
	err := s.Scan(&it.ID, &it.Path, &it.State, &it.Attempts, &next, &it.LastError,
		&enqueued, &finished, &size, &it.Owner)
	it.NextAttempt, it.EnqueuedAt, it.FinishedAt = fromNanos(next), fromNanos(enqueued), fromNanos(finished)
	it.Bytes = size
	if err == nil {
		err = it.State.check()
	}
	return it, err
}

// check returns an error wrapping errBadValue unless s is a known State.
func (s State) check() error {
	if !slices.Contains(States, s) {
		return fmt.Errorf("%w: state %q", errBadValue, s)
	}
	return nil
}

func checkPaths(paths []string) error {
	for _, p := range paths {
		if p == "" {
			return errors.New("empty path")
		}
	}
	return nil
}

// Enqueue adds paths as pending, all in one transaction, and returns how
// many rows it added. A path that already has a row, in any state, is left
// untouched; so is a duplicate within paths.
//
// Errors: an empty path fails the whole call before anything is written;
// any database error rolls the whole call back (0 added).
func (q *Queue) Enqueue(ctx context.Context, paths []string) (int, error) {
	if err := checkPaths(paths); err != nil {
		return 0, fmt.Errorf("enqueue paths: %w", err)
	}
	if len(paths) == 0 {
		return 0, nil
	}
	var added int
	err := q.write(ctx, func(tx *sql.Tx) (err error) {
		added, err = insertPending(ctx, tx, pathList(paths), nanos(time.Now()))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue paths: %w", err)
	}
	return added, nil
}

// insertPending adds a pending row for each path of list (pathList) that
// has none, in tx, in the list's order (the queue's order), and returns
// how many it added.
func insertPending(ctx context.Context, tx *sql.Tx, list string, now int64) (int, error) {
	res, err := tx.ExecContext(ctx, insertPendingSQL, list, now)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// pathList is paths as the hashed list every statement of one call takes,
// made once a call: without repeats (insertPendingSQL needs that), in
// their order.
func pathList(paths []string) string { return hashedList(distinct(paths)) }

// distinct is paths without repeats, in their order.
func distinct(paths []string) []string {
	seen := make(map[string]bool, len(paths))
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Requeue makes paths pending and due now with attempts and last error
// reset, whatever their state, adding rows for paths that have none; it
// is what `push` and `retry PATH…` use. A finished row counts as enqueued
// anew. A row uploading by a live process is left alone (that upload is
// under way); one whose owner died is taken back. Returns the rows added or
// changed — a path already pending, due and clean is not counted.
//
// Errors: an empty path fails the call before anything is written; a
// database error rolls the whole call back (0 changed).
func (q *Queue) Requeue(ctx context.Context, paths []string) (int, error) {
	if err := checkPaths(paths); err != nil {
		return 0, fmt.Errorf("requeue paths: %w", err)
	}
	if len(paths) == 0 {
		return 0, nil
	}
	now := nanos(time.Now())
	var changed int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		var err error
		changed, err = requeue(ctx, tx, pathList(paths), now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("requeue paths: %w", err)
	}
	return int(changed), nil
}

// requeue is Requeue in tx, of the paths of list (pathList).
func requeue(ctx context.Context, tx *sql.Tx, list string, now int64) (int64, error) {
	rows, err := tx.QueryContext(ctx, notFresh, list)
	if err != nil {
		return 0, err
	}
	var reset []int64
	for rows.Next() {
		var (
			id    int64
			token string
			st    State
			owner int
		)
		if err := rows.Scan(&id, &st, &owner, &token); err != nil {
			rows.Close()
			return 0, err
		}
		if st != Uploading || !ownerAlive(owner, token) {
			reset = append(reset, id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	var changed int64
	if len(reset) > 0 {
		res, err := tx.ExecContext(ctx, resetSQL, now, jsonList(reset))
		if err != nil {
			return 0, err
		}
		changed, _ = res.RowsAffected()
	}
	added, err := insertPending(ctx, tx, list, now)
	return changed + int64(added), err
}

// RetryFailed makes every failed row pending and due now, with attempts and
// last error reset and enqueued anew. Returns how many rows it moved.
//
// Errors: only database errors, after which nothing was moved.
func (q *Queue) RetryFailed(ctx context.Context) (int, error) {
	var n int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE items SET state = 'pending',
			attempts = 0, next_attempt = 0, last_error = '', finished_at = 0,
			enqueued_at = ? WHERE state = 'failed'`, nanos(time.Now()))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("retry failed items: %w", err)
	}
	return int(n), nil
}

// Get returns the rows of paths, keyed by path; a path without a row is
// absent from the map.
//
// Errors: only database errors.
func (q *Queue) Get(ctx context.Context, paths []string) (map[string]Item, error) {
	out := make(map[string]Item, len(paths))
	rows, err := q.r.QueryContext(ctx,
		`SELECT `+itemCols+` FROM items WHERE `+inHashedList("1"), hashedList(paths))
	if err != nil {
		return nil, fmt.Errorf("get items: %w", q.classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("get items: %w", q.classify(err))
		}
		out[it.Path] = it
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get items: %w", q.classify(err))
	}
	return out, nil
}

// Unfinished returns the items of paths that are not done or skipped
// (pending, uploading or failed), in no particular order. A run asks this
// of every path it pushed once it ends, and after a push that went well
// the queue holds few such rows however many it pushed: those are read
// through the state index and matched here, instead of looking up every
// path. When the unfinished rows are the more numerous, it looks up the
// paths.
//
// Errors: only database errors.
func (q *Queue) Unfinished(ctx context.Context, paths []string) ([]Item, error) {
	const unfinished = `state IN ('pending', 'uploading', 'failed')`
	var n int
	if err := q.r.QueryRowContext(ctx, `SELECT count(*) FROM items WHERE `+unfinished).Scan(&n); err != nil {
		return nil, fmt.Errorf("count unfinished items: %w", q.classify(err))
	}
	var out []Item
	if n >= len(paths) {
		items, err := q.Get(ctx, paths)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.State != Done && it.State != Skipped {
				out = append(out, it)
			}
		}
		return out, nil
	}
	mine := make(map[string]bool, len(paths))
	for _, p := range paths {
		mine[p] = true
	}
	rows, err := q.r.QueryContext(ctx, `SELECT `+itemCols+` FROM items WHERE `+unfinished)
	if err != nil {
		return nil, fmt.Errorf("get unfinished items: %w", q.classify(err))
	}
	defer rows.Close()
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, fmt.Errorf("get unfinished items: %w", q.classify(err))
		}
		if mine[it.Path] {
			out = append(out, it)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get unfinished items: %w", q.classify(err))
	}
	return out, nil
}

// NextDue returns the earliest NextAttempt among pending rows — the zero
// Time when one is due now — so a drainer can sleep until then instead of
// polling; ok is false when nothing is pending.
//
// Errors: only database errors.
func (q *Queue) NextDue(ctx context.Context) (time.Time, bool, error) {
	var next sql.NullInt64
	err := q.r.QueryRowContext(ctx,
		`SELECT min(next_attempt) FROM items WHERE state = 'pending'`).Scan(&next)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read next due: %w", q.classify(err))
	}
	if !next.Valid {
		return time.Time{}, false, nil
	}
	return fromNanos(next.Int64), true, nil
}

// Prune deletes done and skipped rows that finished before before, in
// batches so the write lock is never held long. Failed rows are kept: they
// are the record of why something was not uploaded. Returns how many rows
// it deleted.
//
// Errors: a database error stops the prune; batches already committed stay
// deleted, and the count returned with the error says how many.
func (q *Queue) Prune(ctx context.Context, before time.Time) (int, error) {
	total := 0
	for {
		var n int64
		err := q.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, `DELETE FROM items WHERE id IN (
				SELECT id FROM items WHERE state IN ('done', 'skipped')
				AND finished_at < ? LIMIT ?)`, nanos(before), pruneBatch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune items: %w", err)
		}
		total += int(n)
		if n < pruneBatch {
			return total, nil
		}
	}
}
