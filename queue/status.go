package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Status is what `nixpush status` prints.
type Status struct {
	Counts         map[State]int // every State present, 0 when it has no rows
	OldestPending  time.Time     // earliest EnqueuedAt of a pending row; zero when none
	LastSuccess    time.Time     // latest FinishedAt of a done row; zero when none
	RecentFailures []Item        // up to 10 failed rows, most recently finished first
	PendingErrors  []Item        // up to 10 pending rows with a last error, latest retry first
	DoneLastHour   int           // rows done in the hour before now
	BytesLastHour  int64         // compressed bytes of those rows
}

// statusListLen bounds RecentFailures and PendingErrors.
const statusListLen = 10

// Status summarises the queue as of now. Every query is answered from an
// index, so it stays fast on a large queue (see BenchmarkStatus100k), and
// all run in one read transaction, so the figures agree with each other.
// PendingErrors are ordered by next attempt, latest first: with one backoff
// policy that is the most recent error first, and it needs no extra column.
//
// Errors: only database errors.
func (q *Queue) Status(ctx context.Context, now time.Time) (Status, error) {
	st, err := q.status(ctx, now)
	if err != nil {
		return Status{}, fmt.Errorf("read queue status: %w", q.classify(err))
	}
	return st, nil
}

func (q *Queue) status(ctx context.Context, now time.Time) (st Status, err error) {
	tx, err := q.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, err
	}
	defer func() { err = errors.Join(err, tx.Rollback()) }()

	st.Counts = make(map[State]int, len(States))
	for _, s := range States {
		st.Counts[s] = 0
	}
	rows, err := tx.QueryContext(ctx, `SELECT state, count(*) FROM items GROUP BY state`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var s State
		var n int
		if err := errors.Join(rows.Scan(&s, &n), s.check()); err != nil {
			rows.Close()
			return st, err
		}
		st.Counts[s] = n
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return st, err
	}

	var oldest, last sql.NullInt64
	err = tx.QueryRowContext(ctx, `SELECT
		(SELECT min(enqueued_at) FROM items WHERE state = 'pending'),
		(SELECT max(finished_at) FROM items WHERE state = 'done'),
		(SELECT count(*) FROM items WHERE state = 'done' AND finished_at >= ?1),
		(SELECT coalesce(sum(bytes), 0) FROM items WHERE state = 'done' AND finished_at >= ?1)`,
		nanos(now.Add(-time.Hour))).Scan(&oldest, &last, &st.DoneLastHour, &st.BytesLastHour)
	if err != nil {
		return st, err
	}
	st.OldestPending, st.LastSuccess = fromNanos(oldest.Int64), fromNanos(last.Int64)

	if st.RecentFailures, err = listItems(ctx, tx, `WHERE state = 'failed'
		ORDER BY finished_at DESC, id DESC`); err != nil {
		return st, err
	}
	st.PendingErrors, err = listItems(ctx, tx, `WHERE state = 'pending' AND last_error != ''
		ORDER BY next_attempt DESC, id DESC`)
	return st, err
}

// listItems returns up to statusListLen items matching the where/order clause.
func listItems(ctx context.Context, tx *sql.Tx, clause string) ([]Item, error) {
	return queryItems(ctx, tx, `SELECT `+itemCols+` FROM items `+clause+` LIMIT ?`, statusListLen)
}
