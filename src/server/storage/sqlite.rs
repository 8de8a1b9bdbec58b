//! The default store: one SQLite file in the data directory.
//!
//! WAL mode lets loads read while the journal writes. `synchronous = FULL` makes every commit
//! durable against power loss, not only against a crashed process; the journal's group commit
//! keeps that affordable by committing many updates per transaction. The schema lives in
//! `migrations/`, embedded in the binary and applied on open.
//!
//! One connection writes, shared by the journal's commits and the compactor through a fair
//! mutex, rather than a second writing connection for compaction: SQLite admits one writer at
//! a time either way, and a second connection would make commits poll on the busy handler (and
//! fail after its timeout) behind a long compaction instead of queueing for their turn.
//! Compaction holds the writer for its one transaction, then gives freed pages back in small
//! steps with commits in between.

use super::private_files::{self, create_private_file_if_missing, new_private_file};
use super::{
    Compaction, DocMeta, DocStore, NewUpdate, NewVersion, StoreError, StoredDoc, Version,
    VersionInfo,
};
use crate::doc_id::DocId;
use parking_lot::{Mutex, MutexGuard};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "tandem.db";

/// The schema's steps, in order. The third moves documents made before links had roles to
/// new internal ids (see [`rekey_legacy_documents`]).
pub(crate) fn migrations() -> Vec<M<'static>> {
    vec![
        M::up(include_str!("migrations/0001_documents.sql")),
        M::up(include_str!("migrations/0002_versions.sql")),
        M::up_with_hook(
            include_str!("migrations/0003_capabilities.sql"),
            |txn: &rusqlite::Transaction| -> Result<(), rusqlite_migration::HookError> {
                rekey_legacy_documents(txn).map_err(rusqlite_migration::HookError::from)
            },
        ),
    ]
}

/// Documents made before links had roles are stored under their link: each gets a new random
/// internal id (its rows in every table move to it), and the old id becomes its edit
/// capability at generation 0, stored as a hash only. Old links keep working; the database no
/// longer holds them.
fn rekey_legacy_documents(txn: &rusqlite::Transaction) -> rusqlite::Result<()> {
    // What is deleted is overwritten, so the old links are not left in free pages.
    txn.pragma_update(None, "secure_delete", true)?;
    let old_ids: Vec<String> = txn
        .prepare("SELECT id FROM documents")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for old in old_ids {
        let Ok(token) = DocId::parse(&old) else {
            continue; // never written by Tandem: left as it is, and opened by no link
        };
        let new = DocId::from_random_bytes(rand::random());
        txn.execute(
            "INSERT INTO documents (id, title, created_at, updated_at, snapshot)
             SELECT ?1, title, created_at, updated_at, snapshot FROM documents WHERE id = ?2",
            params![new.as_str(), old],
        )?;
        txn.execute(
            "UPDATE updates SET doc = ?1 WHERE doc = ?2",
            params![new.as_str(), old],
        )?;
        txn.execute(
            "UPDATE versions SET doc = ?1 WHERE doc = ?2",
            params![new.as_str(), old],
        )?;
        txn.execute("DELETE FROM documents WHERE id = ?1", [&old])?;
        txn.execute(
            "INSERT INTO capabilities (token_hash, doc, role, generation) VALUES (?1, ?2, 'edit', 0)",
            params![&crate::server::capability::token_hash(&token)[..], new.as_str()],
        )?;
    }
    Ok(())
}

mod capabilities;
mod versions;

/// How long a write waits for another process's lock before failing with [`StoreError::Busy`].
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the writability probe waits for that lock: enough to ride out another process's
/// commit, short enough that a readiness poll answers promptly.
const PROBE_BUSY_TIMEOUT: Duration = Duration::from_millis(250);
/// The probe's pretend write: if this much cannot be allocated, the next real one may fail.
const PROBE_BYTES: i64 = 64 * 1024;
/// Below this much free space on the file system the store counts as full: a commit needs
/// room in the write-ahead log before it can reach the database file.
const MIN_FREE_DISK: u64 = 1024 * 1024;
/// Pages handed back to the file system per step after a compaction; the writer is released
/// between steps so that commits interleave with a long vacuum.
const VACUUM_STEP_PAGES: u32 = 512;

pub struct SqliteStore {
    path: PathBuf,
    /// The connection that writes. The journal's commits and the compactor's compactions take
    /// turns on it; a fair mutex hands it over in the order they asked.
    writer: Mutex<Connection>,
    /// A separate connection for loads, so reading a document never waits for a commit.
    reader: Mutex<Connection>,
    /// A third, for the link lookups answered on the async runtime (see
    /// [`DocStore::resolve_at_hand`]): it never waits for a lock, in SQLite or here, so a
    /// runtime worker is held for one indexed read at most.
    quick: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir` and brings its schema up to date.
    /// `max_bytes` caps the database file's size (0: no cap); past it writes fail as if the
    /// disk were full.
    ///
    /// A new data directory is created with mode 0700 and a new database with mode 0600;
    /// SQLite gives its `-wal` and `-shm` files the database's mode.
    pub fn open(data_dir: &Path, max_bytes: u64) -> Result<Self, StoreError> {
        private_files::create_private_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        create_private_file_if_missing(&path, "database")?;
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        Migrations::new(migrations()).to_latest(&mut writer)?;
        if max_bytes > 0 {
            let page_size: i64 = writer.pragma_query_value(None, "page_size", |r| r.get(0))?;
            let pages = (max_bytes as i64 / page_size).max(1);
            writer.pragma_update(None, "max_page_count", pages)?;
        }
        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(BUSY_TIMEOUT)?;
        let quick = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Busy (a recovery, a checkpoint resetting the log, another process's lock): fail at
        // once, and the lookup is asked again on a blocking thread.
        quick.busy_timeout(Duration::ZERO)?;
        // It reads one small index: a small page cache is enough.
        quick.pragma_update(None, "cache_size", -256)?;
        Ok(SqliteStore {
            path,
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
            quick: Mutex::new(quick),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database occupies on disk once its write-ahead log is checkpointed.
    pub fn disk_size(&self) -> Result<u64, StoreError> {
        let conn = self.writer.lock();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(std::fs::metadata(&self.path)?.len())
    }

    /// Returns freed pages to the file system a step at a time, handing the writer to any
    /// waiting commit between steps.
    fn vacuum_in_steps(&self) -> Result<(), StoreError> {
        let mut left = i64::MAX;
        loop {
            let conn = self.writer.lock();
            {
                // The pragma frees pages as it is stepped, so step it to the end.
                let mut vacuum = conn
                    .prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))?;
                let mut steps = vacuum.query([])?;
                while steps.next()?.is_some() {}
            }
            let now: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
            MutexGuard::unlock_fair(conn);
            // Only compactions free pages and they run one at a time, so the free list shrinks
            // at every step; stop if it ever does not.
            if now == 0 || now >= left {
                return Ok(());
            }
            left = now;
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Lets compaction give freed pages back to the file system. Takes effect when the
    // database is created (before any table exists).
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Setup(format!(
            "WAL mode refused (journal mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl DocStore for SqliteStore {
    fn resolve(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<super::capabilities::Capability>, StoreError> {
        capabilities::resolve(&self.reader.lock(), token_hash)
    }

    /// On a connection of its own, when no other lookup holds it, which waits for nothing: in
    /// WAL mode a read does not wait for the writer, and one that finds the database busy
    /// fails at once (`None`: asked again on a blocking thread, as after any failure). What is
    /// left is one lookup in the links' index, its pages in the operating system's cache.
    fn resolve_at_hand(
        &self,
        token_hash: &[u8; 32],
    ) -> Option<Result<Option<super::capabilities::Capability>, StoreError>> {
        let quick = self.quick.try_lock()?;
        // Any failure is met again, and reported, by the lookup on the blocking thread.
        capabilities::resolve(&quick, token_hash).ok().map(Ok)
    }

    fn links(
        &self,
        doc: &DocId,
    ) -> Result<Vec<(crate::server::capability::Role, u32)>, StoreError> {
        capabilities::links(&self.reader.lock(), doc)
    }

    fn set_link(
        &self,
        doc: &DocId,
        role: crate::server::capability::Role,
        link: super::capabilities::NewLink,
    ) -> Result<(), StoreError> {
        capabilities::set_link(&mut self.writer.lock(), doc, role, link)
    }

    fn is_gone(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        capabilities::is_gone(&self.reader.lock(), token_hash)
    }

    fn delete_document(&self, doc: &DocId) -> Result<bool, StoreError> {
        capabilities::delete_document(&mut self.writer.lock(), doc)
    }

    fn add_version(&self, version: &NewVersion) -> Result<Option<i64>, StoreError> {
        versions::add(&mut self.writer.lock(), version)
    }

    fn versions(&self, doc: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
        versions::list(&self.reader.lock(), doc)
    }

    fn version(&self, doc: &DocId, id: i64) -> Result<Option<Version>, StoreError> {
        versions::get(&self.reader.lock(), doc, id)
    }

    fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        let mut conn = self.reader.lock();
        // One read transaction: the snapshot and the log are seen as of the same commit, even
        // while a compaction replaces one with the other.
        let txn = conn.transaction()?;
        let row = txn
            .query_row(
                "SELECT title, created_at, updated_at, snapshot FROM documents WHERE id = ?1",
                [doc.as_str()],
                |r| {
                    Ok((
                        DocMeta {
                            title: r.get(0)?,
                            created_at: r.get(1)?,
                            updated_at: r.get(2)?,
                        },
                        r.get::<_, Option<Vec<u8>>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((meta, snapshot)) = row else {
            return Ok(None);
        };
        let mut stored = StoredDoc {
            snapshot,
            updates: Vec::new(),
            last_seq: 0,
            meta,
        };
        {
            let mut query =
                txn.prepare_cached("SELECT seq, data FROM updates WHERE doc = ?1 ORDER BY seq")?;
            let mut rows = query.query([doc.as_str()])?;
            while let Some(row) = rows.next()? {
                stored.last_seq = row.get(0)?;
                stored.updates.push(row.get(1)?);
            }
        }
        txn.finish()?;
        Ok(Some(stored))
    }

    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.writer.lock();
        let txn = conn.transaction()?;
        let now = super::now_millis();
        let mut seqs = Vec::with_capacity(updates.len());
        {
            let mut upsert = txn.prepare_cached(
                "INSERT INTO documents (id, title, created_at, updated_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(id) DO UPDATE SET title = excluded.title, updated_at = excluded.updated_at",
            )?;
            let mut insert =
                txn.prepare_cached("INSERT INTO updates (doc, data) VALUES (?1, ?2)")?;
            for update in updates {
                upsert.execute(params![update.doc.as_str(), update.title, now])?;
                insert.execute(params![update.doc.as_str(), update.data])?;
                seqs.push(txn.last_insert_rowid());
            }
        }
        txn.commit()?;
        Ok(seqs)
    }

    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        {
            let mut conn = self.writer.lock();
            let txn = conn.transaction()?;
            let now = super::now_millis();
            txn.execute(
                "INSERT INTO documents (id, title, created_at, updated_at, snapshot) VALUES (?1, ?2, ?3, ?3, ?4)
                 ON CONFLICT(id) DO UPDATE SET title = excluded.title, snapshot = excluded.snapshot",
                params![compaction.doc.as_str(), compaction.title, now, compaction.snapshot],
            )?;
            txn.execute(
                "DELETE FROM updates WHERE doc = ?1 AND seq <= ?2",
                params![compaction.doc.as_str(), compaction.upto],
            )?;
            txn.commit()?;
            MutexGuard::unlock_fair(conn);
        }
        self.vacuum_in_steps()
    }

    fn backup(&self, destination: &Path) -> Result<(), StoreError> {
        let conn = self.reader.lock();
        vacuum_into(&conn, destination)
    }

    fn document_count(&self) -> Result<u64, StoreError> {
        let conn = self.reader.lock();
        let count: i64 = conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
        Ok(count.max(0) as u64)
    }

    /// The file and its write-ahead log as they are now (nothing is checkpointed: another
    /// process may be writing).
    fn stored_bytes(&self) -> Result<u64, StoreError> {
        Ok(database_bytes(&self.path)?)
    }

    /// Checks, without storing anything: free space on the file system, then a write
    /// transaction that allocates [`PROBE_BYTES`] and is rolled back. The transaction takes the
    /// database's write lock (finding a read-only database or another process holding the
    /// lock) and allocates pages (finding the size cap reached); rolled back, it never touches
    /// the disk. It costs tens of microseconds, plus the wait for a commit in progress.
    fn check_writable(&self) -> Result<(), StoreError> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let space = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
        if space.f_bavail.saturating_mul(space.f_frsize) < MIN_FREE_DISK {
            return Err(StoreError::Full);
        }
        let mut conn = self.writer.lock();
        conn.busy_timeout(PROBE_BUSY_TIMEOUT)?;
        let probe = probe_write(&mut conn);
        conn.busy_timeout(BUSY_TIMEOUT)?;
        probe
    }
}

fn probe_write(conn: &mut Connection) -> Result<(), StoreError> {
    let txn = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // No document has an empty id, and the row never outlives the transaction.
    txn.execute(
        "INSERT INTO documents (id, created_at, updated_at, snapshot) VALUES ('', 0, 0, zeroblob(?1))",
        [PROBE_BYTES],
    )?;
    txn.rollback()?;
    Ok(())
}

/// Writes a consistent copy of the database `conn` reads into `destination`, a new file with
/// mode 0600. Refuses any existing path, symbolic links included; the empty file is removed
/// if the copy fails.
fn vacuum_into(conn: &Connection, destination: &Path) -> Result<(), StoreError> {
    let file = new_private_file(destination)?;
    // VACUUM INTO accepts an existing empty file and keeps its mode.
    let copied = conn.execute("VACUUM INTO ?1", [destination.to_string_lossy()]);
    if let Err(error) = copied {
        private_files::remove_if_same(destination, &file);
        return Err(error.into());
    }
    Ok(())
}

/// The schema version of the database at `path` (SQLite's `user_version`, which the
/// migrations set), read without changing anything.
pub fn schema_version(path: &Path) -> Result<usize, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(version.max(0) as usize)
}

/// The schema version this build writes.
pub fn current_schema_version() -> usize {
    migrations().len()
}

/// Takes a consistent copy of the database in `data_dir` into `destination`, from a separate
/// process while a server is running (SQLite's `VACUUM INTO` reads one snapshot).
pub fn backup_data_dir(data_dir: &Path, destination: &Path) -> Result<(), StoreError> {
    let path = data_dir.join(DB_FILE);
    if !path.exists() {
        return Err(StoreError::NoDatabase(path));
    }
    // Refused before the database is opened, so a mistaken path costs nothing.
    if destination.symlink_metadata().is_ok() {
        return Err(StoreError::Exists(destination.to_path_buf()));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    vacuum_into(&conn, destination)
}

/// Bytes of the database file at `path` and its write-ahead log, as they are now: what
/// `tandem stats` prints and `/metrics` reports.
pub fn database_bytes(path: &Path) -> std::io::Result<u64> {
    let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    Ok(std::fs::metadata(path)?.len() + wal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A live link is answered at once while the lookups' connection is free, and left to a
    /// blocking thread while another lookup holds it or the database is busy.
    #[test]
    fn a_link_is_resolved_at_hand_only_while_no_other_lookup_holds_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        let doc = id('D');
        let token = id('T');
        let hash = crate::server::capability::token_hash(&token);
        store
            .set_link(
                &doc,
                crate::server::capability::Role::Edit,
                super::super::capabilities::NewLink {
                    token_hash: hash,
                    generation: 0,
                    new_document: true,
                },
            )
            .unwrap();
        let found = store.resolve_at_hand(&hash).unwrap().unwrap().unwrap();
        assert_eq!((found.doc, found.generation), (doc, 0));
        assert_eq!(
            store
                .resolve_at_hand(&crate::server::capability::token_hash(&id('U')))
                .unwrap()
                .unwrap(),
            None,
            "a token never made opens nothing"
        );
        let held = store.quick.lock();
        assert!(store.resolve_at_hand(&hash).is_none());
        drop(held);
        assert!(store.resolve_at_hand(&hash).is_some());
    }

    /// A database as the version before links had roles left it: its documents are stored
    /// under their links. Migrating moves each to a new internal id, keeps its updates and
    /// versions, and stores the old link only as the hash of an edit capability.
    #[test]
    fn documents_stored_under_their_links_move_to_internal_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DB_FILE);
        let old = id('L');
        {
            let mut conn = Connection::open(&path).unwrap();
            Migrations::new(migrations()[..2].to_vec())
                .to_latest(&mut conn)
                .unwrap();
            conn.execute(
                "INSERT INTO documents (id, title, created_at, updated_at) VALUES (?1, 'T', 1, 2)",
                [old.as_str()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO updates (doc, data) VALUES (?1, x'0102')",
                [old.as_str()],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO versions (doc, created_at, authors, title, content)
                 VALUES (?1, 1, '[]', 'T', x'00')",
                [old.as_str()],
            )
            .unwrap();
        }
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        let conn = store.reader.lock();
        let new: String = conn
            .query_row("SELECT id FROM documents", [], |r| r.get(0))
            .unwrap();
        assert_ne!(new, old.as_str());
        let (hash, doc, role, generation): (Vec<u8>, String, String, i64) = conn
            .query_row(
                "SELECT token_hash, doc, role, generation FROM capabilities",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        assert_eq!(hash, crate::server::capability::token_hash(&old));
        assert_eq!(
            (doc.as_str(), role.as_str(), generation),
            (new.as_str(), "edit", 0)
        );
        for table in ["updates", "versions"] {
            let moved: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM {table} WHERE doc = ?1"),
                    [&new],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(moved, 1, "{table}");
        }
        drop(conn);
        store.disk_size().unwrap();
        drop(store);
        // The old link is nowhere in the database file.
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes
            .windows(old.as_str().len())
            .any(|w| w == old.as_str().as_bytes()));
    }

    fn id(c: char) -> DocId {
        DocId::parse(&c.to_string().repeat(22)).unwrap()
    }

    fn update(doc: &DocId, data: &[u8]) -> NewUpdate {
        NewUpdate {
            doc: doc.clone(),
            data: data.to_vec(),
            title: "T".into(),
        }
    }

    #[test]
    fn append_load_and_compact() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        let (a, b) = (id('a'), id('b'));
        assert!(store.load(&a).unwrap().is_none());

        let seqs = store
            .append(&[update(&a, b"1"), update(&b, b"x"), update(&a, b"2")])
            .unwrap();
        assert_eq!(seqs.len(), 3);
        let loaded = store.load(&a).unwrap().unwrap();
        assert_eq!(loaded.updates, vec![b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(loaded.last_seq, seqs[2]);
        assert_eq!(loaded.meta.title, "T");
        assert!(loaded.meta.created_at > 0);

        store.append(&[update(&a, b"3")]).unwrap();
        store
            .compact(&Compaction {
                doc: a.clone(),
                snapshot: b"S".to_vec(),
                upto: seqs[2],
                title: "T2".into(),
            })
            .unwrap();
        let loaded = store.load(&a).unwrap().unwrap();
        assert_eq!(loaded.snapshot.as_deref(), Some(&b"S"[..]));
        assert_eq!(
            loaded.updates,
            vec![b"3".to_vec()],
            "only what came after the snapshot"
        );
        assert_eq!(
            store.load(&b).unwrap().unwrap().updates,
            vec![b"x".to_vec()]
        );
    }

    #[test]
    fn compaction_gives_the_log_space_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        let a = id('e');
        let chunk = vec![3u8; 4096];
        let batch: Vec<_> = (0..1000).map(|_| update(&a, &chunk)).collect();
        let seqs = store.append(&batch).unwrap();
        let full = store.disk_size().unwrap();
        assert!(full > 4_000_000, "{full}");
        store
            .compact(&Compaction {
                doc: a.clone(),
                snapshot: b"S".to_vec(),
                upto: *seqs.last().unwrap(),
                title: String::new(),
            })
            .unwrap();
        let compacted = store.disk_size().unwrap();
        assert!(compacted < full / 10, "{full} -> {compacted}");
    }

    #[test]
    fn reopening_keeps_everything_and_backup_copies_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = id('c');
        {
            let store = SqliteStore::open(dir.path(), 0).unwrap();
            store.append(&[update(&a, b"kept")]).unwrap();
        }
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        assert_eq!(
            store.load(&a).unwrap().unwrap().updates,
            vec![b"kept".to_vec()]
        );

        let copy = dir.path().join("copy");
        std::fs::create_dir(&copy).unwrap();
        backup_data_dir(dir.path(), &copy.join(DB_FILE)).unwrap();
        let restored = SqliteStore::open(&copy, 0).unwrap();
        assert_eq!(
            restored.load(&a).unwrap().unwrap().updates,
            vec![b"kept".to_vec()]
        );
        assert!(
            backup_data_dir(dir.path(), &copy.join(DB_FILE)).is_err(),
            "never overwrites"
        );
    }

    #[test]
    fn a_size_cap_makes_writes_fail_and_keeps_what_was_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 64 * 1024).unwrap();
        let a = id('d');
        store.append(&[update(&a, b"small")]).unwrap();
        let big = vec![7u8; 256 * 1024];
        let error = store.append(&[update(&a, &big)]).unwrap_err();
        assert!(matches!(error, StoreError::Full), "{error:?}");
        assert_eq!(
            store.load(&a).unwrap().unwrap().updates,
            vec![b"small".to_vec()]
        );
    }

    #[test]
    fn a_damaged_file_is_reported_as_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x5a; 8192]).unwrap();
        let error = SqliteStore::open(dir.path(), 0).err().expect("refused");
        assert!(matches!(error, StoreError::Corrupt), "{error:?}");
    }

    #[test]
    fn the_probe_finds_another_process_holding_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        store.check_writable().unwrap();

        let other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let error = store.check_writable().unwrap_err();
        assert!(matches!(error, StoreError::Busy), "{error:?}");
        other.execute_batch("ROLLBACK").unwrap();
        store.check_writable().unwrap();
        // The probe leaves nothing behind.
        assert!(store
            .load(&DocId::parse(&"p".repeat(22)).unwrap())
            .unwrap()
            .is_none());
        let rows: i64 = other
            .query_row("SELECT count(*) FROM documents", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }

    #[test]
    fn backup_writes_a_private_copy_and_never_replaces_anything() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), 0).unwrap();
        store.append(&[update(&id('f'), b"x")]).unwrap();
        let copy = dir.path().join("copy.db");
        store.backup(&copy).unwrap();
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let error = store.backup(&copy).unwrap_err();
        assert!(matches!(error, StoreError::Exists(_)), "{error:?}");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink(dir.path().join("elsewhere.db"), &link).unwrap();
        let error = store.backup(&link).unwrap_err();
        assert!(matches!(error, StoreError::Exists(_)), "{error:?}");
        assert!(!dir.path().join("elsewhere.db").exists());
    }
}
