-- 0002: scopes, the items one run (a push, a watch-exec) waits for.
-- A run claims only its scope's rows and ends when none is left pending
-- or uploading; a row that reaches done, skipped or failed leaves every
-- scope, so both cost a few rows per call however large the scope.

-- The process owning a scope: its rows go when it has exited.
CREATE TABLE scopes (
    id          INTEGER PRIMARY KEY,
    owner       INTEGER NOT NULL,
    owner_token TEXT    NOT NULL DEFAULT ''
);

-- The unfinished items of each scope, walked in item (queue) order.
CREATE TABLE scope_items (
    scope INTEGER NOT NULL,
    item  INTEGER NOT NULL,
    PRIMARY KEY (scope, item)
) WITHOUT ROWID;

-- Settle takes a finished item out of every scope.
CREATE INDEX scope_items_item ON scope_items (item);
