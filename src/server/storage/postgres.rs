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

mod versions;

use super::{
    Compaction, DocMeta, DocStore, NewUpdate, NewVersion, StoreError, StoredDoc, Version,
    VersionInfo,
};
use crate::doc_id::DocId;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::{IsolationLevel, NoTls};

refinery::embed_migrations!("src/server/storage/postgres/migrations");

/// Connections the pool keeps at most: the journal's writer, version reads and loads.
pub const POOL_SIZE: usize = 16;

/// How long a call waits for a connection, from the pool or from the server.
const WAIT: Duration = Duration::from_secs(10);

/// The advisory lock that lets one instance at a time migrate the schema.
const MIGRATION_LOCK: i64 = 0x7461_6e64_656d; // "tandem"

pub struct PostgresStore {
    pool: Pool,
    /// Taken only by `Drop`, which shuts it down without waiting (it may run on a runtime).
    runtime: Option<tokio::runtime::Runtime>,
}

impl PostgresStore {
    /// Connects to `url`, applies the migrations this build has and the database lacks (one
    /// instance at a time), and keeps a pool of connections.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Setup(format!("the database URL does not read: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tandem-postgres")
            .enable_all()
            .build()?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .recycle_timeout(Some(WAIT))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Setup(e.to_string()))?;
        let store = Self {
            pool,
            runtime: Some(runtime),
        };
        store.run(|pool| async move {
            let mut client = pool.get().await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            let migrated = migrations::runner().run_async(&mut **client).await;
            client
                .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
                .await?;
            migrated?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `call` on the store's runtime and waits for it.
    fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let runtime = self.runtime.as_ref().expect("present until dropped");
        runtime.block_on(call(self.pool.clone()))
    }
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
            let txn = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let Some(row) = txn
                .query_opt(
                    "SELECT title, created_at, updated_at, snapshot FROM documents WHERE id = $1",
                    &[&id],
                )
                .await?
            else {
                return Ok(None);
            };
            let mut stored = StoredDoc {
                snapshot: row.get(3),
                updates: Vec::new(),
                last_seq: 0,
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
                stored.last_seq = row.get(0);
                stored.updates.push(row.get(1));
            }
            txn.commit().await?;
            Ok(Some(stored))
        })
    }

    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        // Rows are locked document by document in id order, whatever order the batch has, so
        // two instances appending to the same documents never wait on each other in a circle.
        let mut order: Vec<usize> = (0..updates.len()).collect();
        order.sort_by(|&a, &b| updates[a].doc.as_str().cmp(updates[b].doc.as_str()));
        let batch: Vec<(usize, String, String, Vec<u8>)> = order
            .into_iter()
            .map(|i| {
                let update = &updates[i];
                (
                    i,
                    update.doc.as_str().to_owned(),
                    update.title.clone(),
                    update.data.clone(),
                )
            })
            .collect();
        let count = updates.len();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let txn = client.transaction().await?;
            let advance = txn
                .prepare_cached(
                    "INSERT INTO documents (id, title, created_at, updated_at, last_seq)
                     VALUES ($1, $2, $3, $3, 1)
                     ON CONFLICT (id) DO UPDATE SET title = excluded.title,
                       updated_at = excluded.updated_at, last_seq = documents.last_seq + 1
                     RETURNING last_seq",
                )
                .await?;
            let insert = txn
                .prepare_cached("INSERT INTO updates (doc, seq, data) VALUES ($1, $2, $3)")
                .await?;
            let now = super::now_millis();
            let mut seqs = vec![0; count];
            for (i, doc, title, data) in &batch {
                let seq: i64 = txn.query_one(&advance, &[doc, title, &now]).await?.get(0);
                txn.execute(&insert, &[doc, &seq, data]).await?;
                seqs[*i] = seq;
            }
            txn.commit().await?;
            Ok(seqs)
        })
    }

    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        let compaction = compaction.clone();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let txn = client.transaction().await?;
            let id = compaction.doc.as_str();
            txn.execute(
                "INSERT INTO documents (id, title, created_at, updated_at, snapshot)
                 VALUES ($1, $2, $3, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET title = excluded.title, snapshot = excluded.snapshot",
                &[&id, &compaction.title, &super::now_millis(), &compaction.snapshot],
            )
            .await?;
            txn.execute(
                "DELETE FROM updates WHERE doc = $1 AND seq <= $2",
                &[&id, &compaction.upto],
            )
            .await?;
            txn.commit().await?;
            Ok(())
        })
    }

    /// PostgreSQL is backed up with its own tools (`pg_dump`), which read one consistent
    /// snapshot while Tandem writes.
    fn backup(&self, _destination: &Path) -> Result<(), StoreError> {
        Err(StoreError::Unsupported("backups here: use pg_dump"))
    }

    fn add_version(&self, version: &NewVersion) -> Result<Option<i64>, StoreError> {
        let version = version.clone();
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            versions::add(&mut client, &version).await
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
        self.run(|pool| async move {
            let client = pool.get().await?;
            versions::get(&client, &doc, id).await
        })
    }

    /// A write transaction that inserts a row no document can have and is rolled back: it finds
    /// an unreachable server and a read-only one (a standby, or `default_transaction_read_only`)
    /// without storing anything.
    fn check_writable(&self) -> Result<(), StoreError> {
        self.run(|pool| async move {
            let mut client = pool.get().await?;
            let txn = client.transaction().await?;
            txn.execute(
                "INSERT INTO documents (id, created_at, updated_at) VALUES ('', 0, 0)",
                &[],
            )
            .await?;
            txn.rollback().await?;
            Ok(())
        })
    }
}
