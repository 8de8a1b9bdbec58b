//! Durable storage of documents, behind a small trait.
//!
//! # Layout
//! - [`sqlite`]: the default engine, an embedded SQLite file in WAL mode.
//!
//! A document is stored as a snapshot (the whole state as one yrs update) plus a log of the
//! updates accepted since. Loading applies the snapshot and then the log; compaction merges
//! the two in one transaction. Nothing here knows about rooms or sockets: the sync code sees
//! only [`DocStore`], so another engine can be added beside SQLite without touching it.

pub mod sqlite;

use crate::doc_id::DocId;
use std::path::Path;

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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocMeta {
    pub title: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub updated_at: i64,
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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
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
}

/// Milliseconds since the epoch, for metadata.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
