-- 0004: rows are found by path_hash, a 48-bit hash of the path (the Go
-- function pathHash, registered as path_hash), no longer by an index of
-- the path's text. Store paths are random keys: once an index of their
-- text outgrew SQLite's page cache, each path a push enqueued read and
-- dirtied a leaf page of its own, so the queue's cost a path grew with
-- the queue. The hash's index is a quarter the size. Two paths with one
-- hash are two rows: every statement matches the path as well.
--
-- SQLite drops a UNIQUE constraint only by rebuilding the table.
CREATE TABLE items_hashed (
    id           INTEGER PRIMARY KEY,
    path         TEXT    NOT NULL,
    state        TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'uploading', 'done', 'failed', 'skipped')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    enqueued_at  INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    owner        INTEGER NOT NULL DEFAULT 0,
    owner_token  TEXT    NOT NULL DEFAULT '',
    path_hash    INTEGER NOT NULL
);

INSERT INTO items_hashed (id, path, state, attempts, next_attempt, last_error,
    enqueued_at, finished_at, bytes, owner, owner_token, path_hash)
SELECT id, path, state, attempts, next_attempt, last_error,
    enqueued_at, finished_at, bytes, owner, owner_token, path_hash(path)
FROM items;

DROP TABLE items;
ALTER TABLE items_hashed RENAME TO items;

CREATE INDEX items_path_hash ON items (path_hash);
-- The indexes of 0001, as they were.
CREATE INDEX items_state_id ON items (state, id, next_attempt);
CREATE INDEX items_state_next ON items (state, next_attempt);
CREATE INDEX items_state_finished ON items (state, finished_at, bytes);
CREATE INDEX items_state_enqueued ON items (state, enqueued_at);
