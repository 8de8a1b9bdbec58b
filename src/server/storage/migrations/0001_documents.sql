-- A document's metadata and its compacted state.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,  -- milliseconds since the epoch
    updated_at  INTEGER NOT NULL,
    snapshot    BLOB               -- the whole document as one yrs v1 update, or NULL
) STRICT;

-- Updates accepted since the last compaction, in the order they were accepted.
CREATE TABLE updates (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    doc   TEXT NOT NULL REFERENCES documents(id),
    data  BLOB NOT NULL
) STRICT;

CREATE INDEX updates_by_doc ON updates(doc, seq);
