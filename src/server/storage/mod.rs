//! Durable storage of documents, behind a small trait.
//!
//! # Layout
//! - [`sqlite`]: the default engine, an embedded SQLite file in WAL mode.
//! - [`postgres`]: PostgreSQL, the store several instances share.
//! - [`private_files`]: the data directory, database and backups, readable by their owner only.
//! - [`versions`]: versions of a document, kept for its History.
//! - [`capabilities`]: the links to a document, kept as hashes.
//!
//! A document is stored as a snapshot (the whole state as one yrs update) plus a log of the
//! updates accepted since. Loading applies the snapshot and then the log; compaction merges
//! the two in one transaction. Nothing here knows about rooms or sockets: the sync code sees
//! only [`DocStore`], so another engine can be added beside SQLite without touching it.

pub mod capabilities;
pub mod postgres;
pub mod private_files;
pub mod sqlite;
pub mod versions;

pub use versions::{NewVersion, Version, VersionInfo};

use crate::doc_id::DocId;
use std::path::{Path, PathBuf};

/// Everything stored for one document.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    /// Updates after the snapshot, oldest first.
    pub updates: Vec<Vec<u8>>,
    /// Log position of the newest update (0 when there is none).
    pub last_seq: i64,
    pub meta: DocMeta,
}

impl StoredDoc {
    /// Rebuilds the document from its snapshot and log. The error names the record that does
    /// not read.
    ///
    /// Each record is applied in a transaction of its own, as it was when it was accepted: in
    /// one transaction, yrs would join the log's runs (text typed at the end, record after
    /// record) at commit, copying text quadratically (a thousand 4 KB records took 2 GB).
    pub fn replica(&self) -> Result<yrs::Doc, String> {
        use yrs::updates::decoder::Decode;
        use yrs::Transact;
        let doc = crate::protocol::new_doc();
        for (i, bytes) in self.snapshot.iter().chain(&self.updates).enumerate() {
            let update = yrs::Update::decode_v1(bytes).map_err(|e| format!("record {i}: {e}"))?;
            doc.transact_mut()
                .apply_update(update)
                .map_err(|e| format!("record {i}: {e}"))?;
        }
        Ok(doc)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocMeta {
    pub title: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// What the store holds of a document beyond a log position: what an instance that missed
/// updates (a lost message, a Redis restart) reads to catch up.
#[derive(Debug, Clone, Default)]
pub struct LogSince {
    /// The whole compacted state, when compaction merged positions after the one asked for
    /// into it (those updates are no longer in the log).
    pub snapshot: Option<Vec<u8>>,
    /// The logged updates after the position asked for, oldest first, with their positions.
    pub updates: Vec<(i64, Vec<u8>)>,
    /// The document's newest position when this was read.
    pub last_seq: i64,
}

/// One update to append.
#[derive(Debug, Clone)]
pub struct NewUpdate {
    pub doc: DocId,
    pub data: Vec<u8>,
    /// The document's title after this update.
    pub title: String,
}

/// A compaction: `snapshot` replaces the stored snapshot and every logged update up to and
/// including `upto`.
#[derive(Debug, Clone)]
pub struct Compaction {
    pub doc: DocId,
    pub snapshot: Vec<u8>,
    pub upto: i64,
    pub title: String,
}

/// Why the store failed. The conditions an operator acts on (a full disk, a read-only or locked
/// database, a damaged file) have their own variants, so callers match on them rather than on
/// message text; the messages are written to be shown to people (they end up in close reasons).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file system is out of space, or the database reached its configured size cap.
    #[error("the disk is full (or the storage cap is reached)")]
    Full,
    #[error("the database is read-only")]
    ReadOnly,
    /// Another process holds the database's write lock for longer than the store waits.
    #[error("the database is locked by another process")]
    Busy,
    #[error("the database file is damaged")]
    Corrupt,
    /// The engine panicked during the call; nothing of that call was stored.
    #[error("the storage engine failed unexpectedly")]
    Panicked,
    #[error("storage I/O: {0}")]
    Io(#[source] std::io::Error),
    #[error("storage engine: {0}")]
    Engine(#[source] rusqlite::Error),
    #[error("migrating the schema: {0}")]
    Migration(#[source] rusqlite_migration::Error),
    #[error("PostgreSQL: {}", postgres::describe(.0))]
    Postgres(#[source] tokio_postgres::Error),
    #[error("migrating the PostgreSQL schema: {0}")]
    PostgresMigration(#[source] refinery::Error),
    /// No connection to the database server within the wait.
    #[error("the database server cannot be reached: {0}")]
    Unreachable(String),
    /// The engine refused a setting the store relies on.
    #[error("could not configure the database: {0}")]
    Setup(String),
    /// A backup never replaces anything, a symbolic link included.
    #[error("{} already exists; choose a new file", .0.display())]
    Exists(PathBuf),
    #[error("no database at {}", .0.display())]
    NoDatabase(PathBuf),
    /// The document was deleted (or never made): its links cannot be changed.
    #[error("the document was deleted")]
    Deleted,
    /// This store does not keep what was asked of it.
    #[error("this store does not keep {0}")]
    Unsupported(&'static str),
    /// The same failure as another, told to one more caller (see [`StoreError::shared`]).
    #[error("{0}")]
    Shared(String),
}

impl StoreError {
    /// Whether every write would fail the same way now, whatever it holds: the store is down,
    /// full, read-only, locked or damaged. Retrying the updates of a failed batch one by one
    /// only makes sense otherwise.
    pub fn is_store_wide(&self) -> bool {
        matches!(
            self,
            StoreError::Full
                | StoreError::ReadOnly
                | StoreError::Busy
                | StoreError::Corrupt
                | StoreError::Io(_)
                | StoreError::Unreachable(_)
        )
    }

    /// This failure again, for another caller: the conditions callers match on keep their
    /// variant, anything else keeps its message.
    pub fn shared(&self) -> StoreError {
        match self {
            StoreError::Full => StoreError::Full,
            StoreError::ReadOnly => StoreError::ReadOnly,
            StoreError::Busy => StoreError::Busy,
            StoreError::Corrupt => StoreError::Corrupt,
            StoreError::Panicked => StoreError::Panicked,
            StoreError::Unreachable(why) => StoreError::Unreachable(why.clone()),
            StoreError::Unsupported(what) => StoreError::Unsupported(what),
            other => StoreError::Shared(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => StoreError::Full,
            std::io::ErrorKind::ReadOnlyFilesystem => StoreError::ReadOnly,
            _ => StoreError::Io(error),
        }
    }
}

/// Classified by SQLite's primary result code; anything else keeps the engine's own error.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match error.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => StoreError::Full,
            Some(ErrorCode::ReadOnly) => StoreError::ReadOnly,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt,
            _ => StoreError::Engine(error),
        }
    }
}

/// Classified by PostgreSQL's SQLSTATE; a connection that failed, closed or was refused is
/// unreachable.
impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let Some(code) = error.code() else {
            let io = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<std::io::Error>());
            return if error.is_closed() || io {
                StoreError::Unreachable(postgres::describe(&error))
            } else {
                StoreError::Postgres(error)
            };
        };
        let busy = [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::QUERY_CANCELED,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        let gone = [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
        ];
        if *code == SqlState::DISK_FULL {
            StoreError::Full
        } else if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
            StoreError::ReadOnly
        } else if busy.contains(code) {
            StoreError::Busy
        } else if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
            StoreError::Corrupt
        } else if code.code().starts_with("08") || gone.contains(code) {
            StoreError::Unreachable(postgres::describe(&error))
        } else {
            StoreError::Postgres(error)
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::{PoolError, TimeoutType};
        match error {
            PoolError::Backend(error) => error.into(),
            // Every connection is in use: the server is there, only busy.
            PoolError::Timeout(TimeoutType::Wait) => StoreError::Busy,
            other => StoreError::Unreachable(other.to_string()),
        }
    }
}

impl From<refinery::Error> for StoreError {
    fn from(error: refinery::Error) -> Self {
        StoreError::PostgresMigration(error)
    }
}

impl From<rusqlite_migration::Error> for StoreError {
    fn from(error: rusqlite_migration::Error) -> Self {
        match error {
            rusqlite_migration::Error::RusqliteError { err, .. } => err.into(),
            other => StoreError::Migration(other),
        }
    }
}

/// A place documents are kept. Calls block (they do disk I/O): run them on a blocking thread.
pub trait DocStore: Send + Sync + 'static {
    /// Everything stored for `doc`; `None` if it was never stored.
    fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError>;

    /// Appends updates in one transaction: all or none are stored. Returns each update's
    /// log position, in order.
    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError>;

    /// Applies a compaction in one transaction.
    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError>;

    /// Writes a consistent copy of the whole store to `destination` while it is in use.
    fn backup(&self, destination: &Path) -> Result<(), StoreError>;

    /// Keeps a version of a document (see [`versions`]); `None` when it repeats the newest
    /// one kept. Drops the oldest beyond [`versions::MAX_VERSIONS`].
    fn add_version(&self, _version: &NewVersion) -> Result<Option<i64>, StoreError> {
        Err(StoreError::Unsupported("versions"))
    }

    /// The versions kept of `doc`, newest first.
    fn versions(&self, _doc: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
        Err(StoreError::Unsupported("versions"))
    }

    /// One version of `doc`, if it is kept.
    fn version(&self, _doc: &DocId, _id: i64) -> Result<Option<Version>, StoreError> {
        Err(StoreError::Unsupported("versions"))
    }

    /// Whether a write would succeed now, found without storing anything; cheap enough to be
    /// polled every few seconds. Engines with nothing to check are always writable.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The live link whose token hashes to `token_hash` (see [`capabilities`]).
    fn resolve(
        &self,
        _token_hash: &[u8; 32],
    ) -> Result<Option<capabilities::Capability>, StoreError> {
        Err(StoreError::Unsupported("links"))
    }

    /// [`DocStore::resolve`] answered at once, where the store can answer without waiting
    /// (for a lock, the disk's busy owner, a network round trip): `None` says ask `resolve`
    /// on a blocking thread. Every connection looks its link up; handing each lookup to a
    /// blocking thread and back costs more than the lookup itself when the answer is one
    /// indexed read away.
    fn resolve_at_hand(
        &self,
        _token_hash: &[u8; 32],
    ) -> Option<Result<Option<capabilities::Capability>, StoreError>> {
        None
    }

    /// The generation of each of `doc`'s live links.
    fn links(
        &self,
        _doc: &DocId,
    ) -> Result<Vec<(crate::server::capability::Role, u32)>, StoreError> {
        Err(StoreError::Unsupported("links"))
    }

    /// Replaces `doc`'s link of `role` with `link`, at once: the old token opens nothing.
    fn set_link(
        &self,
        _doc: &DocId,
        _role: crate::server::capability::Role,
        _link: capabilities::NewLink,
    ) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("links"))
    }

    /// Whether `token_hash` is the hash of a link of a deleted document.
    fn is_gone(&self, _token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("links"))
    }

    /// Removes every row of `doc` (its metadata, log, versions and links) at once, keeping
    /// only the hashes of its links, so they answer "gone". Returns whether it was stored.
    fn delete_document(&self, _doc: &DocId) -> Result<bool, StoreError> {
        Err(StoreError::Unsupported("deleting documents"))
    }

    /// What is stored of `doc` after log position `after` (see [`LogSince`]); `None` if the
    /// document was never stored. Only a store several instances share needs this.
    fn log_since(&self, _doc: &DocId, _after: i64) -> Result<Option<LogSince>, StoreError> {
        Err(StoreError::Unsupported("reading the log from a position"))
    }

    /// The newest log position of each of `docs` that is stored, in one query: how an instance
    /// notices, without Redis, that another one stored updates it has not seen.
    fn log_heads(&self, _docs: &[DocId]) -> Result<Vec<(DocId, i64)>, StoreError> {
        Err(StoreError::Unsupported("reading log positions"))
    }

    /// What tells this store from any other, also from a copy of it restored elsewhere: the
    /// instances sharing it, and only they, share their Redis channels.
    fn identity(&self) -> Result<String, StoreError> {
        Err(StoreError::Unsupported("an identity"))
    }

    /// How many documents are stored.
    fn document_count(&self) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("a document count"))
    }

    /// Bytes the store takes where it keeps them (the database file and its log, or the
    /// database on the server), as `tandem stats` and `/metrics` report it.
    fn stored_bytes(&self) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported("its size"))
    }
}

/// Milliseconds since the epoch, for metadata.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
