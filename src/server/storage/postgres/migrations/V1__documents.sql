-- A document's metadata, its compacted state and the position of its newest logged update.
CREATE TABLE documents (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,  -- milliseconds since the epoch
    updated_at  BIGINT NOT NULL,
    snapshot    BYTEA,            -- the whole document as one yrs v1 update, or NULL
    -- The newest log position the snapshot holds. A compaction only ever moves it forward, so
    -- of two instances compacting at once, the one with the older snapshot changes nothing.
    snapshot_upto BIGINT NOT NULL DEFAULT 0,
    -- Positions are per document and without gaps: an instance that sees position n + 2
    -- after n knows it missed one. The row lock taken to advance it orders concurrent appends
    -- from several instances.
    last_seq    BIGINT NOT NULL DEFAULT 0
);

-- Updates accepted since the last compaction, in the order they were accepted.
CREATE TABLE updates (
    doc   TEXT NOT NULL REFERENCES documents(id),
    seq   BIGINT NOT NULL,
    data  BYTEA NOT NULL,
    PRIMARY KEY (doc, seq)
);
