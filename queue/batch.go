package queue

import "encoding/json"

// The statements below take a whole batch of items as one JSON list
// (json_each), not one statement an item: binding and stepping a
// statement cost 5–15 µs, most of a small path's queue work (a first push
// of 100,000 paths: 42 → 29 µs a path in BenchmarkPush).
//
// They find their rows by id, or by path through its hash (pathhash.go:
// the lists of paths are [path_hash, path] pairs), never by state: "+state" keeps
// SQLite (which has no statistics) from walking a state index instead,
// every done row for every batch. TestBatchPlans holds them to that.

// claimIDs marks the rows of a JSON list of ids uploading by ?1, ?2.
const claimIDs = `UPDATE items SET state = 'uploading', owner = ?1, owner_token = ?2
	WHERE id IN (SELECT value FROM json_each(?3))`

// settleSQL applies a JSON list of outcomes [path, bytes, reason, next,
// attempt, id, path_hash] of one kind (set: outcomeSQL) at time ?2, to rows
// uploading by ?3, ?4, and returns their ids. A row is found by its id
// when the outcome has one (null: by path), and is the outcome's only if
// its path matches too.
func settleSQL(set string) string {
	return `UPDATE items SET ` + set + `, owner = 0, owner_token = ''
	FROM (SELECT value ->> 0 AS path, value ->> 1 AS bytes, value ->> 2 AS reason,
		value ->> 3 AS next, value ->> 4 AS attempt, value ->> 5 AS id, value ->> 6 AS hash
		FROM json_each(?1)) AS o
	WHERE items.id = coalesce(o.id, (SELECT id FROM items WHERE path_hash = o.hash AND path = o.path))
	AND items.path = o.path AND +state = 'uploading' AND owner = ?3 AND owner_token = ?4
	RETURNING items.id`
}

// unlinkItems takes the items of a JSON list of ids out of every scope.
const unlinkItems = `DELETE FROM scope_items WHERE item IN (SELECT value FROM json_each(?1))`

// insertPendingSQL adds a pending row, enqueued at ?2, for each path of a
// hashed list that has none, in the list's order. The list must not hold
// a path twice: nothing else keeps a path to one row.
const insertPendingSQL = `INSERT INTO items (path_hash, path, enqueued_at)
	SELECT json_each.value ->> 0, json_each.value ->> 1, ?2 FROM json_each(?1)
	WHERE NOT EXISTS (SELECT 1 FROM items WHERE items.path_hash = json_each.value ->> 0
		AND items.path = json_each.value ->> 1)`

// inHashedList is true of the rows of the hashed list in parameter ?N.
func inHashedList(n string) string {
	return `path_hash IN (SELECT value ->> 0 FROM json_each(?` + n + `))
	AND path IN (SELECT value ->> 1 FROM json_each(?` + n + `))`
}

// notFresh lists the rows of a hashed list that are not pending, due and
// clean: those a requeue resets.
var notFresh = `SELECT id, state, owner, owner_token FROM items
	WHERE ` + inHashedList("1") + `
	AND NOT (+state = 'pending' AND attempts = 0 AND next_attempt = 0 AND last_error = '')`

// resetSQL makes the rows of a JSON list of ids (?2) pending, due and
// clean; a finished one counts as enqueued anew at ?1.
const resetSQL = `UPDATE items SET state = 'pending',
	attempts = 0, next_attempt = 0, last_error = '', finished_at = 0,
	bytes = 0, owner = 0, owner_token = '',
	enqueued_at = CASE WHEN state IN ('done', 'failed', 'skipped') THEN ?1 ELSE enqueued_at END
	WHERE id IN (SELECT value FROM json_each(?2))`

// linkScope adds the unfinished items of a hashed list (?2) to scope ?1.
var linkScope = `INSERT OR IGNORE INTO scope_items (scope, item)
	SELECT ?1, id FROM items WHERE ` + inHashedList("2") + `
	AND +state IN ('pending', 'uploading')`

// jsonList is v (strings and numbers) as the JSON list a batch statement
// takes.
func jsonList(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return string(b)
}
