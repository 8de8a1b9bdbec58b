//! PostgreSQL, the store several Tandem instances share (`--database-url postgres://…`).
//!
//! The same shape as the SQLite store (a snapshot per document and a log of the updates since),
//! with one difference that matters across instances: log positions count per document and have
//! no gaps. Appending takes the document's row lock to advance its position, so two instances
//! appending to one document are put in one order, and an instance that hears of position
//! n + 2 after n knows what it missed and where to read it.
//!
//! [`DocStore`] is called from blocking threads (the journal's, tokio's blocking pool), so the
//! store runs its async driver (tokio-postgres, pooled by deadpool-postgres) on a small runtime
//! of its own and waits for each call there.

mod capabilities;
mod versions;

use super::{
    Compaction, DocMeta, DocStore, LogSince, NewUpdate, NewVersion, StoreError, StoredDoc, Version,
    VersionInfo,
};
use crate::doc_id::DocId;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{IsolationLevel, NoTls};

refinery::embed_migrations!("src/server/storage/postgres/migrations");

/// Connections kept at most for reading (loads, versions, counts) …
pub const READ_POOL_SIZE: usize = 14;
/// … and for writing (the journal's commits, compactions, versions kept, readiness probes),
/// apart, so a storm of loads never keeps a commit waiting for a connection.
pub const WRITE_POOL_SIZE: usize = 2;

/// How long a call waits for a connection, from the pool or from the server.
const WAIT: Duration = Duration::from_secs(10);

/// How long a call may take in all before it is given up as unanswered: a black-holed
/// network or a lock held elsewhere must not hold the journal for ever.
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// Server-side limits on every connection, unless the URL sets `options` itself: a
/// statement, a wait for a lock, and a transaction left idle.
const SESSION_OPTIONS: &str =
    "-c statement_timeout=30000 -c lock_timeout=10000 -c idle_in_transaction_session_timeout=60000";

/// Where refinery records the migrations applied: a name of Tandem's own, so a database
/// shared with another application that uses refinery keeps the two histories apart.
pub const MIGRATION_TABLE: &str = "tandem_schema_history";

/// The advisory lock that lets one instance at a time migrate the schema.
const MIGRATION_LOCK: i64 = 0x7461_6e64_656d; // "tandem"

pub struct PostgresStore {
    reads: Pool,
    writes: Pool,
    /// Taken only by `Drop`, which shuts it down without waiting (it may run on a runtime).
    runtime: Option<tokio::runtime::Runtime>,
}

impl PostgresStore {
    /// Connects to `url`, applies the migrations this build has and the database lacks (one
    /// instance at a time), and keeps a pool of connections.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let store = Self::connect(url)?;
        store.write(|pool| async move {
            let mut client = pool.get().await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let migrated = migrations::runner()
                .set_migration_table_name(MIGRATION_TABLE)
                .run_async(&mut **client)
                .await;
            // Still under the lock: the step that came with links' roles, until it is done
            // (a start that failed half way tries again at the next).
            let rekeyed = match &migrated {
                Ok(_) => rekey_legacy_documents(&mut client).await,
                Err(_) => Ok(()),
            };
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await?;
            migrated?;
            rekeyed?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Connects to `url` and reads its schema version, migrating nothing: for admin commands,
    /// which must not change a database a server of another version is using.
    pub fn open_unmigrated(url: &str) -> Result<(Self, usize), StoreError> {
        let store = Self::connect(url)?;
        let version = store.run(|pool| async move {
            let client = pool.get().await?;
            let exists: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&MIGRATION_TABLE])
                .await?
                .get(0);
            if !exists {
                return Ok(0);
            }
            let row = client
                .query_one(&format!("SELECT MAX(version) FROM {MIGRATION_TABLE}"), &[])
                .await?;
            Ok(row.get::<_, Option<i32>>(0).unwrap_or(0).max(0) as usize)
        })?;
        Ok((store, version))
    }

    /// The schema version this build writes: the number of its migrations.
    pub fn schema_version() -> usize {
        migrations::runner().get_migrations().len()
    }

    fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Setup(format!("the database URL does not read: {e}")))?;
        // A dead peer is noticed in seconds rather than the system's two hours.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.keepalives_idle(Duration::from_secs(15));
        config.tcp_user_timeout(Duration::from_secs(30));
        if config.get_options().is_none() {
            config.options(SESSION_OPTIONS);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-postgres")
            .enable_all()
            .build()?;
        let pool = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .wait_timeout(Some(WAIT))
                .create_timeout(Some(WAIT))
                .recycle_timeout(Some(WAIT))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Setup(e.to_string()))
        };
        Ok(Self {
            reads: pool(READ_POOL_SIZE)?,
            writes: pool(WRITE_POOL_SIZE)?,
            runtime: Some(runtime),
        })
    }

    /// Runs `call` on the store's runtime and waits for it. The wait is a plain blocking
    /// receive, not a runtime's `block_on`, so it may be called from any thread: a blocking
    /// thread, the journal's, and also from within another runtime at start-up (opening the
    /// store) and in admin commands, as the SQLite store's calls block there too.
    fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_on(&self.reads, call)
    }

    /// The one number `query` answers, read as a count.
    fn count(&self, query: &'static str) -> Result<u64, StoreError> {
        self.run(move |pool| async move {
            let row = pool.get().await?.query_one(query, &[]).await?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    /// [`Self::run`] with a connection for writing.
    fn write<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.run_on(&self.writes, call)
    }

    fn run_on<T, F, Fut>(&self, pool: &Pool, call: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("present until dropped");
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        let call = call(pool.clone());
        runtime.spawn(async move {
            let _ = answer.send(call.await);
        });
        match answered.recv_timeout(CALL_LIMIT) {
            Ok(result) => result,
            // A call that panicked dropped its sender.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Err(StoreError::Panicked),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(StoreError::Unreachable(
                format!("no answer within {} s", CALL_LIMIT.as_secs()),
            )),
        }
    }
}

/// A read-only transaction that sees one snapshot of the database throughout: what several
/// reads of one document find agrees, even while another instance compacts it.
async fn one_snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// Documents made before links had roles are stored under their link: each gets a new random
/// internal id (its rows in every table move to it), and the old id becomes its edit
/// capability at generation 0, stored as a hash only. One transaction for all of them. The old
/// ids stay in dead row versions until PostgreSQL vacuums them (the README says so).
///
/// V3 leaves a row in `rekey_pending`; it is removed in the same transaction as the rekeying,
/// so the step runs exactly once however a start ends, and a start that failed half way does
/// it again. It is not bound by the statement timeout: a large database takes what it takes.
async fn rekey_legacy_documents(client: &mut deadpool_postgres::Client) -> Result<(), StoreError> {
    let txn = client.transaction().await?;
    let pending = txn
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_name = 'rekey_pending'
             AND table_schema = current_schema()",
            &[],
        )
        .await?
        .is_some();
    if !pending {
        return Ok(());
    }
    txn.execute("SET LOCAL statement_timeout = 0", &[]).await?;
    let old_ids: Vec<String> = txn
        // Documents that already have links (made by this version meanwhile) stay.
        .query(
            "SELECT id FROM documents d
             WHERE NOT EXISTS (SELECT 1 FROM capabilities c WHERE c.doc = d.id)",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for old in old_ids {
        let Ok(token) = DocId::parse(&old) else {
            continue; // never written by Tandem: left as it is, and opened by no link
        };
        let new = DocId::from_random_bytes(rand::random()).as_str().to_owned();
        txn.execute(
            "INSERT INTO documents (id, title, created_at, updated_at, snapshot, snapshot_upto, last_seq)
             SELECT $1, title, created_at, updated_at, snapshot, snapshot_upto, last_seq
             FROM documents WHERE id = $2",
            &[&new, &old],
        )
        .await?;
        txn.execute("UPDATE updates SET doc = $1 WHERE doc = $2", &[&new, &old])
            .await?;
        txn.execute("UPDATE versions SET doc = $1 WHERE doc = $2", &[&new, &old])
            .await?;
        txn.execute("DELETE FROM documents WHERE id = $1", &[&old])
            .await?;
        let hash = crate::server::capability::token_hash(&token).to_vec();
        txn.execute(
            "INSERT INTO capabilities (token_hash, doc, role, generation) VALUES ($1, $2, 'edit', 0)",
            &[&hash, &new],
        )
        .await?;
    }
    txn.execute("DROP TABLE rekey_pending", &[]).await?;
    txn.commit().await?;
    Ok(())
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl DocStore for PostgresStore {
    fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        let id = doc.as_str().to_owned();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            // One snapshot of the database: the snapshot column and the log agree even while
            // another instance compacts.
            let txn = one_snapshot(&mut client).await?;
            let Some(row) = txn
                .query_opt(
                    "SELECT title, created_at, updated_at, snapshot, last_seq
                     FROM documents WHERE id = $1",
                    &[&id],
                )
                .await?
            else {
                return Ok(None);
            };
            // The document's newest position, also when compaction emptied the log: positions
            // are never handed out twice.
            let mut stored = StoredDoc {
                snapshot: row.get(3),
                updates: Vec::new(),
                last_seq: row.get(4),
                meta: DocMeta {
                    title: row.get(0),
                    created_at: row.get(1),
                    updated_at: row.get(2),
                },
            };
            let rows = txn
                .query(
                    "SELECT seq, data FROM updates WHERE doc = $1 ORDER BY seq",
                    &[&id],
                )
                .await?;
            for row in rows {
                stored.updates.push(row.get(1));
            }
            txn.commit().await?;
            Ok(Some(stored))
        })
    }

    /// One round trip to advance each document's position and one to insert its updates,
    /// whatever their number: the journal's batches, and a long history replayed at once, cost
    /// two statements per document.
    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        let groups = Group::of(updates);
        let count = updates.len();
        self.write(|pool| async move {
            let mut client = pool.get().await?;
            let txn = client.transaction().await?;
            let advance = txn
                .prepare_cached(
                    "INSERT INTO documents (id, title, created_at, updated_at, last_seq)
                     VALUES ($1, $2, $3, $3, $4)
                     ON CONFLICT (id) DO UPDATE SET title = excluded.title,
                       updated_at = GREATEST(documents.updated_at, excluded.updated_at),
                       last_seq = documents.last_seq + excluded.last_seq
                     RETURNING last_seq",
                )
                .await?;
            let insert = txn
                .prepare_cached(
                    "INSERT INTO updates (doc, seq, data)
                     SELECT $1, seq, data FROM UNNEST($2::int8[], $3::bytea[]) AS t(seq, data)",
                )
                .await?;
            let now = super::now_millis();
            let mut seqs = vec![0; count];
            for group in &groups {
                let added = group.data.len() as i64;
                let last: i64 = txn
                    .query_one(&advance, &[&group.doc, &group.title, &now, &added])
                    .await?
                    .get(0);
                let positions: Vec<i64> = (last - added + 1..=last).collect();
                txn.execute(&insert, &[&group.doc, &positions, &group.data])
                    .await?;
                for (&i, &seq) in group.indices.iter().zip(&positions) {
                    seqs[i] = seq;
                }
            }
            txn.commit().await?;
            Ok(seqs)
        })
    }

    /// The snapshot replaces the stored one only if it holds more of the log than it does,
    /// and only then is the log up to its position dropped: of two instances compacting one
    /// document at once, the one whose snapshot is older changes nothing. The title is taken
    /// only if no update came after the snapshot (it would carry a newer title).
    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        let compaction = compaction.clone();
        self.write(|pool| async move {
            let mut client = pool.get().await?;
            let txn = client.transaction().await?;
            let id = compaction.doc.as_str();
            let title = storable(&compaction.title);
            let moved = txn
                .execute(
                    "UPDATE documents SET snapshot = $2, snapshot_upto = $3,
                       title = CASE WHEN last_seq = $3 THEN $4 ELSE title END
                     WHERE id = $1 AND snapshot_upto < $3 AND last_seq >= $3",
                    &[&id, &compaction.snapshot, &compaction.upto, &title],
                )
                .await?;
            if moved == 1 {
                txn.execute(
                    "DELETE FROM updates WHERE doc = $1 AND seq <= $2",
                    &[&id, &compaction.upto],
                )
                .await?;
            }
            txn.commit().await?;
            Ok(())
        })
    }

    /// PostgreSQL is backed up with its own tools (`pg_dump`), which read one consistent
    /// snapshot while Tandem writes.
    fn backup(&self, _destination: &Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("backups here: use pg_dump"))
    }

    fn resolve(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<super::capabilities::Capability>, StoreError> {
        let token_hash = *token_hash;
        self.run(
            move |pool| async move { capabilities::resolve(&pool.get().await?, &token_hash).await },
        )
    }

    fn links(
        &self,
        doc: &DocId,
    ) -> Result<Vec<(crate::server::capability::Role, u32)>, StoreError> {
        let doc = doc.clone();
        self.run(|pool| async move { capabilities::links(&**pool.get().await?, &doc).await })
    }

    fn set_link(
        &self,
        doc: &DocId,
        role: crate::server::capability::Role,
        link: super::capabilities::NewLink,
    ) -> Result<(), StoreError> {
        let doc = doc.clone();
        self.write(move |pool| async move {
            let mut client = pool.get().await?;
            capabilities::set_link(&mut client, &doc, role, link).await
        })
    }

    fn is_gone(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let token_hash = *token_hash;
        self.run(
            move |pool| async move { capabilities::is_gone(&pool.get().await?, &token_hash).await },
        )
    }

    fn delete_document(&self, doc: &DocId) -> Result<bool, StoreError> {
        let doc = doc.clone();
        self.write(move |pool| async move {
            let mut client = pool.get().await?;
            capabilities::delete_document(&mut client, &doc).await
        })
    }

    fn add_version(&self, version: &NewVersion) -> Result<Option<i64>, StoreError> {
        // Compressed here, on the caller's thread, not on the store's two workers.
        let kept = versions::Kept::of(version);
        self.write(|pool| async move {
            let mut client = pool.get().await?;
            versions::add(&mut client, &kept).await
        })
    }

    fn versions(&self, doc: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
        let doc = doc.clone();
        self.run(|pool| async move {
            let client = pool.get().await?;
            versions::list(&client, &doc).await
        })
    }

    fn version(&self, doc: &DocId, id: i64) -> Result<Option<Version>, StoreError> {
        let doc = doc.clone();
        let stored = self.run(|pool| async move {
            let client = pool.get().await?;
            versions::get(&client, &doc, id).await
        })?;
        // Inflated here, on the caller's thread.
        stored.map(versions::Stored::read).transpose()
    }

    fn log_since(&self, doc: &DocId, after: i64) -> Result<Option<LogSince>, StoreError> {
        let id = doc.as_str().to_owned();
        self.run(move |pool| async move {
            let mut client = pool.get().await?;
            // One snapshot of the database, as in `load`: a compaction by another instance
            // cannot move updates out of the log between the two reads.
            let txn = one_snapshot(&mut client).await?;
            let Some(row) = txn
                .query_opt(
                    "SELECT CASE WHEN snapshot_upto > $2 THEN snapshot END, last_seq
                     FROM documents WHERE id = $1",
                    &[&id, &after],
                )
                .await?
            else {
                return Ok(None);
            };
            let rows = txn
                .query(
                    "SELECT seq, data FROM updates WHERE doc = $1 AND seq > $2 ORDER BY seq",
                    &[&id, &after],
                )
                .await?;
            txn.commit().await?;
            Ok(Some(LogSince {
                snapshot: row.get(0),
                updates: rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
                last_seq: row.get(1),
            }))
        })
    }

    fn log_heads(&self, docs: &[DocId]) -> Result<Vec<(DocId, i64)>, StoreError> {
        let ids: Vec<String> = docs.iter().map(|doc| doc.as_str().to_owned()).collect();
        self.run(move |pool| async move {
            let rows = pool
                .get()
                .await?
                .query(
                    "SELECT id, last_seq FROM documents WHERE id = ANY($1)",
                    &[&ids],
                )
                .await?;
            Ok(rows
                .iter()
                .filter_map(|row| Some((DocId::parse(row.get(0)).ok()?, row.get(1))))
                .collect())
        })
    }

    /// The server's system identifier (made by `initdb`, so a dump restored on another server
    /// differs) and the database's oid (so another database on the same server differs).
    fn identity(&self) -> Result<String, StoreError> {
        self.run(|pool| async move {
            let row = pool
                .get()
                .await?
                .query_one(
                    "SELECT system_identifier::text,
                            (SELECT oid FROM pg_database WHERE datname = current_database())::text
                     FROM pg_control_system()",
                    &[],
                )
                .await?;
            Ok(format!(
                "{}/{}",
                row.get::<_, String>(0),
                row.get::<_, String>(1)
            ))
        })
    }

    fn document_count(&self) -> Result<u64, StoreError> {
        self.count("SELECT COUNT(*) FROM documents")
    }

    /// The database's size on the server (`pg_database_size`).
    fn stored_bytes(&self) -> Result<u64, StoreError> {
        self.count("SELECT pg_database_size(current_database())")
    }

    /// Whether a write would be accepted, asked without writing: a connection for writing
    /// can be had, and the server is neither a standby nor read-only for this session.
    fn check_writable(&self) -> Result<(), StoreError> {
        self.write(|pool| async move {
            let row = pool
                .get()
                .await?
                .query_one(
                    "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')",
                    &[],
                )
                .await?;
            let (standby, read_only): (bool, String) = (row.get(0), row.get(1));
            if standby || read_only == "on" {
                return Err(StoreError::ReadOnly);
            }
            Ok(())
        })
    }
}

/// One document's share of a batch to append, in the order the batch has it.
struct Group {
    doc: String,
    /// The title after the group's last update.
    title: String,
    data: Vec<Vec<u8>>,
    /// Where each update stands in the batch.
    indices: Vec<usize>,
}

impl Group {
    /// The batch by document, in id order: rows are locked in that order whatever order the
    /// batch has, so two instances appending to the same documents never wait on each other
    /// in a circle.
    fn of(updates: &[NewUpdate]) -> Vec<Group> {
        let mut by_doc: std::collections::BTreeMap<&str, Group> = Default::default();
        for (i, update) in updates.iter().enumerate() {
            let group = by_doc.entry(update.doc.as_str()).or_insert_with(|| Group {
                doc: update.doc.as_str().to_owned(),
                title: String::new(),
                data: Vec::new(),
                indices: Vec::new(),
            });
            group.title = storable(&update.title);
            group.data.push(update.data.clone());
            group.indices.push(i);
        }
        by_doc.into_values().collect()
    }
}

/// A title PostgreSQL can keep: its text type refuses the NUL character, which a title (any
/// text someone typed or pasted) may hold, and one refused title would fail every change to
/// its document. NUL becomes U+FFFD, as an unreadable character shows anywhere else.
pub fn storable(title: &str) -> String {
    title.replace('\0', "\u{FFFD}")
}

/// What went wrong, as people read it: the server's own message and its SQLSTATE, or the
/// connection's error and its cause. Never the server's DETAIL, which may quote a row (a
/// document's id).
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}
