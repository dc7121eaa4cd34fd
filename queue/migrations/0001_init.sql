-- 0001: the work queue and a small key/value table.
-- Times are unix nanoseconds; 0 means "unset" (due now / not finished).

-- Marks the file as ours so Open can refuse a foreign SQLite database
-- (for example Nix's own db.sqlite given by mistake) instead of adding
-- tables to it. 0x6e787175 is "nxqu".
PRAGMA application_id = 1853387125;

CREATE TABLE items (
    id           INTEGER PRIMARY KEY,
    path         TEXT    NOT NULL UNIQUE,
    state        TEXT    NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'uploading', 'done', 'failed', 'skipped')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT    NOT NULL DEFAULT '',
    enqueued_at  INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL DEFAULT 0,
    bytes        INTEGER NOT NULL DEFAULT 0,
    -- pid and incarnation token of the claiming process while uploading;
    -- the token tells a crashed owner from a later process reusing its pid.
    owner        INTEGER NOT NULL DEFAULT 0,
    owner_token  TEXT    NOT NULL DEFAULT ''
);

-- Claim walks pending rows in insertion order; next_attempt lets it skip
-- rows in backoff without reading them from the table.
CREATE INDEX items_state_id ON items (state, id, next_attempt);
-- NextDue, and pending rows with errors newest first.
CREATE INDEX items_state_next ON items (state, next_attempt);
-- Status: last success, recent failures, throughput (bytes makes it covering); Prune.
CREATE INDEX items_state_finished ON items (state, finished_at, bytes);
-- Status: oldest pending.
CREATE INDEX items_state_enqueued ON items (state, enqueued_at);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
