-- Versions of a document kept for its History: the title and the Markdown at one moment, and
-- the names of the people who wrote since the version before. The text is deflated.
CREATE TABLE versions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    doc         TEXT NOT NULL,
    created_at  INTEGER NOT NULL,  -- milliseconds since the epoch
    authors     TEXT NOT NULL,     -- a JSON array of names
    title       TEXT NOT NULL,
    content     BLOB NOT NULL      -- the Markdown, deflated (zlib)
) STRICT;

CREATE INDEX versions_by_doc ON versions(doc, id);
