-- 0003: uploads in progress, beside the queue row of the path each is
-- for: what a backend saved of a multipart upload (its id, the parts
-- done), so that a process started after a crash continues it instead
-- of sending the NAR again. The state is the uploader's, opaque here.
CREATE TABLE uploads (
    path    TEXT    PRIMARY KEY,
    state   BLOB    NOT NULL,
    updated INTEGER NOT NULL -- unix ns
) WITHOUT ROWID;
