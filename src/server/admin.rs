//! The admin commands beside serving: `export`, `import`, `links` and `stats`. Each opens the store on
//! its own, also while servers are using it: SQLite's write-ahead log lets this process read a
//! consistent snapshot and write between the server's commits, and PostgreSQL serves many
//! clients anyway (an imported document has a fresh id, so no open room holds it).

use super::config::Config;
use super::storage::postgres::PostgresStore;
use super::storage::sqlite::SqliteStore;
use super::storage::{DocStore, NewUpdate, StoreError};
use crate::doc_id::DocId;
use std::path::{Path, PathBuf};
use yrs::{Text, Transact};

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0:?} is not a document id: {1}")]
    BadId(String, String),
    #[error("no document {0}")]
    NoDocument(DocId),
    #[error("{0} is a view link; give the document's edit link")]
    NotEditLink(DocId),
    #[error("document {0} does not read: {1}")]
    Unreadable(DocId, String),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} is not UTF-8 text")]
    NotText(PathBuf),
    #[error("{0} is {1} bytes, over the document limit of {2} (--max-doc-bytes)")]
    TooLarge(PathBuf, u64, usize),
    #[error("{0} is not a regular file")]
    NotAFile(PathBuf),
    #[error("cannot write: {0}")]
    Write(std::io::Error),
    #[error("{0}")]
    LinkKey(#[from] super::OpenError),
    #[error(
        "the database is at schema version {found} and this tandem writes version {expected}; \
         run the tandem that serves it (a newer one migrates it when it starts serving)"
    )]
    SchemaMismatch { found: usize, expected: usize },
}

/// What `tandem stats` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub documents: u64,
    /// The database file and its write-ahead log, in bytes.
    pub bytes: u64,
}

/// Where the documents are.
#[derive(Debug, Clone, Copy)]
pub enum Location<'a> {
    /// The SQLite database in this data directory.
    DataDir(&'a Path),
    /// The PostgreSQL database at this URL.
    Postgres(&'a str),
}

impl<'a> Location<'a> {
    /// Where `config` says: its database URL if it has one, its data directory otherwise.
    pub fn of(config: &'a Config) -> Self {
        match &config.database_url {
            Some(url) => Location::Postgres(url),
            None => Location::DataDir(&config.data_dir),
        }
    }
}

/// Opens the store at `location`, which must exist and be at this build's schema version: an
/// admin command never creates a database, nor migrates one a server of another version is
/// using (only serving does that).
fn open_existing(location: Location) -> Result<Box<dyn DocStore>, AdminError> {
    use super::storage::sqlite::{current_schema_version, schema_version};
    let data_dir = match location {
        Location::Postgres(url) => {
            let (store, found) = PostgresStore::open_unmigrated(url)?;
            let expected = PostgresStore::schema_version();
            if found != expected {
                return Err(AdminError::SchemaMismatch { found, expected });
            }
            return Ok(Box::new(store));
        }
        Location::DataDir(data_dir) => data_dir,
    };
    let path = data_dir.join(super::storage::sqlite::DB_FILE);
    if !path.exists() {
        return Err(StoreError::NoDatabase(path).into());
    }
    let (found, expected) = (schema_version(&path)?, current_schema_version());
    if found != expected {
        return Err(AdminError::SchemaMismatch { found, expected });
    }
    Ok(Box::new(SqliteStore::open(data_dir, 0)?))
}

/// Writes document `id`'s Markdown to `out`, as durably stored. When `out` is a terminal,
/// control characters other than newlines and tabs are shown escaped: text strangers wrote
/// must not drive the operator's terminal.
pub fn export(
    location: Location,
    id: &str,
    out: &mut impl std::io::Write,
    terminal: bool,
) -> Result<(), AdminError> {
    let token = DocId::parse(id).map_err(|e| AdminError::BadId(id.to_string(), e.to_string()))?;
    let store = open_existing(location)?;
    // A document is named by one of its links; the internal id is never shown.
    let id = store
        .resolve(&super::capability::token_hash(&token))?
        .ok_or_else(|| AdminError::NoDocument(token.clone()))?
        .doc;
    // Errors name the link given, never the internal id.
    let stored = store
        .load(&id)?
        .ok_or_else(|| AdminError::NoDocument(token.clone()))?;
    let doc = stored
        .replica()
        .map_err(|e| AdminError::Unreadable(token.clone(), e))?;
    let (_, content) = crate::protocol::texts_of(&doc);
    let content = if terminal {
        content
            .chars()
            .map(|c| match c {
                '\n' | '\t' => c.to_string(),
                c if c.is_control() => c.escape_unicode().to_string(),
                c => c.to_string(),
            })
            .collect()
    } else {
        content
    };
    out.write_all(content.as_bytes())
        .and_then(|()| out.flush())
        .map_err(AdminError::Write)
}

/// Creates a document holding `file`'s Markdown, titled `title` (by default the file's name
/// without its extension), with its links, and returns its edit link. The file must be UTF-8
/// and within `max_doc_bytes`. The link key is asked for only once the store is open, so a
/// command refused before then leaves no key behind.
pub fn import(
    location: Location,
    link_key: impl FnOnce() -> Result<super::capability::LinkKey, super::OpenError>,
    file: &Path,
    title: Option<&str>,
    max_doc_bytes: usize,
) -> Result<DocId, AdminError> {
    use std::io::Read;
    let read_error = |e| AdminError::Read(file.to_path_buf(), e);
    // Checked on the open file, so it cannot be swapped in between; and read at most one byte
    // past the limit, so a device, a pipe or a growing file cannot fill memory.
    let opened = std::fs::File::open(file).map_err(read_error)?;
    if !opened.metadata().map_err(read_error)?.is_file() {
        return Err(AdminError::NotAFile(file.to_path_buf()));
    }
    let mut bytes = Vec::new();
    opened
        .take(max_doc_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > max_doc_bytes {
        return Err(AdminError::TooLarge(
            file.to_path_buf(),
            bytes.len() as u64,
            max_doc_bytes,
        ));
    }
    let content = String::from_utf8(bytes).map_err(|_| AdminError::NotText(file.to_path_buf()))?;
    let title = title.map(str::to_string).unwrap_or_else(|| {
        file.file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let doc = crate::protocol::new_doc();
    let data = {
        let content_text = doc.get_or_insert_text(crate::protocol::CONTENT);
        let title_text = doc.get_or_insert_text(crate::protocol::TITLE);
        let mut txn = doc.transact_mut();
        content_text.insert(&mut txn, 0, &content);
        title_text.insert(&mut txn, 0, &title);
        txn.encode_update_v1()
    };
    // The stored form, not the file, is what the document limit counts.
    if data.len() > max_doc_bytes {
        return Err(AdminError::TooLarge(
            file.to_path_buf(),
            data.len() as u64,
            max_doc_bytes,
        ));
    }
    let store: std::sync::Arc<dyn DocStore> = open_existing(location)?.into();
    // Before anything is written: without a key, nothing is.
    let links = super::links::Links::new(link_key()?, store.clone());
    let id = DocId::from_random_bytes(rand::random());
    store.append(&[NewUpdate {
        doc: id.clone(),
        data,
        title,
    }])?;
    Ok(links.create_for(&id)?)
}

/// The current links of the document `id` is the edit link of, as the server shows them (a
/// view link is refused: whoever may only read is not shown the edit link). The link key is
/// asked for only once the link is found.
pub fn links(
    location: Location,
    link_key: impl FnOnce() -> Result<super::capability::LinkKey, super::OpenError>,
    id: &str,
) -> Result<super::links::DocLinks, AdminError> {
    let token = DocId::parse(id).map_err(|e| AdminError::BadId(id.to_string(), e.to_string()))?;
    let store: std::sync::Arc<dyn DocStore> = open_existing(location)?.into();
    let found = store
        .resolve(&super::capability::token_hash(&token))?
        .ok_or(AdminError::NoDocument(token.clone()))?;
    if found.role != super::capability::Role::Edit {
        return Err(AdminError::NotEditLink(token));
    }
    Ok(super::links::Links::new(link_key()?, store).of(&found.doc)?)
}

/// The number of documents and the database's size.
pub fn stats(location: Location) -> Result<Stats, AdminError> {
    let store = open_existing(location)?;
    Ok(Stats {
        documents: store.document_count()?,
        bytes: store.stored_bytes()?,
    })
}
