package queue

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Scope names the items one run waits for (a push, a watch-exec), so
// that it claims only those and knows when they are all finished, at a
// cost per call that does not grow with the number of items (claiming
// from a list of paths grew with the list: quadratic for a 100,000-path
// push). The zero Scope is every item of the queue.
//
// A scope holds its items while they are pending or uploading; an item
// that is settled done, skipped or failed leaves every scope. A scope
// belongs to the process that made it and goes with it (CloseScope, or
// RecoverOrphans once the process has exited).
type Scope int64

// Everything is the scope of the whole queue (the daemon, push --drain).
const Everything Scope = 0

// NewScope makes an empty scope owned by this process.
//
// Errors: only database errors.
func (q *Queue) NewScope(ctx context.Context) (Scope, error) {
	var id int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO scopes (owner, owner_token) VALUES (?, ?)`, q.pid, q.token)
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("new scope: %w", err)
	}
	return Scope(id), nil
}

// RequeueIn is Requeue (for a push: every path pending and due now,
// whatever its state) and adds the paths to scope, in one transaction.
//
// Errors: as Requeue.
func (q *Queue) RequeueIn(ctx context.Context, scope Scope, paths []string) (int, error) {
	return q.addToScope(ctx, "requeue paths", scope, paths, true)
}

// EnqueueIn is Enqueue (rows only for paths that have none) and adds the
// paths still pending or uploading to scope, in one transaction: what a
// watch-exec finds its command registered.
//
// Errors: as Enqueue.
func (q *Queue) EnqueueIn(ctx context.Context, scope Scope, paths []string) (int, error) {
	return q.addToScope(ctx, "enqueue paths", scope, paths, false)
}

// addToScope is RequeueIn (again) or EnqueueIn.
func (q *Queue) addToScope(ctx context.Context, verb string, scope Scope, paths []string, again bool) (int, error) {
	if err := checkPaths(paths); err != nil {
		return 0, fmt.Errorf("%s: %w", verb, err)
	}
	if len(paths) == 0 {
		return 0, nil
	}
	now := nanos(time.Now())
	list := pathList(paths)
	var changed int64
	err := q.write(ctx, func(tx *sql.Tx) error {
		changed = 0
		var err error
		if again {
			changed, err = requeue(ctx, tx, list, now)
		} else {
			var n int
			n, err = insertPending(ctx, tx, list, now)
			changed = int64(n)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, linkScope, scope, list)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", verb, err)
	}
	return int(changed), nil
}

// ScopeDone reports whether no item of scope is pending or uploading any
// more (for Everything: none in the whole queue).
//
// Errors: only database errors.
func (q *Queue) ScopeDone(ctx context.Context, scope Scope) (bool, error) {
	query := `SELECT NOT EXISTS (SELECT 1 FROM scope_items s CROSS JOIN items i ON i.id = s.item
		WHERE s.scope = ? AND i.state IN ('pending', 'uploading'))`
	args := []any{scope}
	if scope == Everything {
		query = `SELECT NOT EXISTS (SELECT 1 FROM items WHERE state IN ('pending', 'uploading'))`
		args = nil
	}
	var done bool
	if err := q.r.QueryRowContext(ctx, query, args...).Scan(&done); err != nil {
		return false, q.classify(fmt.Errorf("check scope: %w", err))
	}
	return done, nil
}

// CloseScope forgets scope; its items stay in the queue as they are.
//
// Errors: only database errors.
func (q *Queue) CloseScope(ctx context.Context, scope Scope) error {
	if scope == Everything {
		return nil
	}
	err := q.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM scope_items WHERE scope = ?`, scope); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM scopes WHERE id = ?`, scope)
		return err
	})
	if err != nil {
		return fmt.Errorf("close scope: %w", err)
	}
	return nil
}

// dropDeadScopes deletes, in tx, the scopes of processes that have exited.
func dropDeadScopes(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, owner, owner_token FROM scopes`)
	if err != nil {
		return err
	}
	var dead []int64
	for rows.Next() {
		var id int64
		var pid int
		var token string
		if err := rows.Scan(&id, &pid, &token); err != nil {
			rows.Close()
			return err
		}
		if !ownerAlive(pid, token) {
			dead = append(dead, id)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, id := range dead {
		if _, err := tx.ExecContext(ctx, `DELETE FROM scope_items WHERE scope = ?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM scopes WHERE id = ?`, id); err != nil {
			return err
		}
	}
	return nil
}
