-- Versions of a document kept for its History: the title and the Markdown at one moment, and
-- the names of the people who wrote since the version before. The text is deflated.
CREATE TABLE versions (
    id          BIGSERIAL PRIMARY KEY,
    doc         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,  -- milliseconds since the epoch
    authors     TEXT NOT NULL,    -- a JSON array of names
    title       TEXT NOT NULL,
    content     BYTEA NOT NULL    -- the Markdown, deflated (zlib)
);

CREATE INDEX versions_by_doc ON versions(doc, id);
