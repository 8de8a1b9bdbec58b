-- The links to each document (see server::capability): the hash of each live token, the
-- document it opens, what it lets its holder do, and which generation of that link it is.
CREATE TABLE capabilities (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    doc         TEXT NOT NULL REFERENCES documents(id),
    role        TEXT NOT NULL CHECK (role IN ('edit', 'view')),
    generation  INTEGER NOT NULL
) STRICT;

CREATE INDEX capabilities_by_doc ON capabilities(doc, role);

-- The hashes of the links of deleted documents, so that they answer "gone" rather than "not
-- found". Nothing else of a deleted document is kept.
CREATE TABLE gone_links (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    deleted_at  INTEGER NOT NULL
) STRICT;
