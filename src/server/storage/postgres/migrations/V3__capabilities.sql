-- The links to each document (see server::capability): the hash of each live token, the
-- document it opens, what it lets its holder do, and which generation of that link it is.
CREATE TABLE capabilities (
    token_hash  BYTEA PRIMARY KEY,
    doc         TEXT NOT NULL REFERENCES documents(id),
    role        TEXT NOT NULL CHECK (role IN ('edit', 'view')),
    generation  INTEGER NOT NULL
);

CREATE INDEX capabilities_by_doc ON capabilities(doc, role);

-- The hashes of the links of deleted documents, so that they answer "gone" rather than "not
-- found". Nothing else of a deleted document is kept.
CREATE TABLE gone_links (
    token_hash  BYTEA PRIMARY KEY,
    deleted_at  BIGINT NOT NULL
);

-- Documents made before links had roles are moved to internal ids once, in Rust, right after
-- this migration (see storage::postgres); this table says that has not happened yet, and goes
-- in the same transaction as the move.
CREATE TABLE rekey_pending (since BIGINT NOT NULL);
INSERT INTO rekey_pending VALUES (0);
