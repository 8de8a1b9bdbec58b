//! Storage figures, rerunnable by anyone:
//!
//! ```sh
//! cargo bench --no-default-features --features ssr --bench storage
//! ```
//!
//! 1. Updates persisted per second through the real room + journal path (apply, group
//!    commit with `synchronous = FULL`, broadcast), for 1 writer and for many at once.
//! 2. The automerge-paper trace (259,778 single-character updates) stored one update per
//!    row, in SQLite and then in a private PostgreSQL (Debian's, started on a free loopback
//!    port): the store's size, then the time to load it cold (a new store, nothing cached
//!    in the process) before and after compaction, and the size after.
//!
//! It prints figures; it asserts nothing beyond the texts being right.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tandem::doc_id::DocId;
use tandem::protocol;
use tandem::server::hub::Hub;
use tandem::server::journal::Journal;
use tandem::server::room::RoomPolicy;
use tandem::server::storage::postgres::PostgresStore;
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::{DocStore, NewUpdate};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{Text, Transact};

fn hub(dir: &std::path::Path) -> (Hub, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::open(dir, 0).unwrap());
    (hub_on(store.clone()), store)
}

fn hub_on(store: Arc<dyn DocStore>) -> Hub {
    let journal = Journal::start(store.clone(), 4096);
    let policy = RoomPolicy {
        compact_after_updates: 1000,
        compact_after_bytes: 4 << 20,
        max_doc_bytes: usize::MAX,
        integration_time_limit: tandem::server::room::INTEGRATION_TIME_LIMIT,
        presence: Default::default(),
    };
    Hub::new(store, journal, policy, 1024, None)
}

fn id(n: usize) -> DocId {
    DocId::from_random_bytes((n as u128).to_le_bytes())
}

async fn throughput(writers: usize, per_writer: usize) -> (f64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let (hub, _) = hub(dir.path());
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let hub = hub.clone();
            tokio::spawn(async move {
                // Four writers share each document, as people do.
                let member = hub.join(id(w / 4)).await.unwrap();
                let author = protocol::new_doc();
                let text = author.get_or_insert_text(protocol::CONTENT);
                let mut presence = Default::default();
                for i in 0..per_writer {
                    let update = {
                        let mut txn = author.transact_mut();
                        text.insert(&mut txn, i as u32, "x");
                        txn.encode_update_v1()
                    };
                    let frame = Bytes::from(Message::Sync(SyncMessage::Update(update)).encode_v1());
                    member
                        .room()
                        .receive(w as u64, &mut presence, &frame)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    (
        (writers * per_writer) as f64 / elapsed.as_secs_f64(),
        elapsed,
    )
}

#[allow(dead_code)]
#[path = "../tests/common/postgres.rs"]
mod postgres;
#[path = "../tests/common/trace.rs"]
mod trace;

/// The automerge-paper trace stored one update per row in the store `open` opens (a new
/// handle each time, so nothing is cached in the process), loaded cold, compacted, loaded
/// again.
///
/// Sizes are measured after `settle`: the log is checkpointed and the space compaction freed
/// given back (SQLite's `wal_checkpoint(TRUNCATE)` after its incremental vacuum, PostgreSQL's
/// `VACUUM FULL`), so they count what is stored rather than what was.
async fn trace_figures(
    engine: &str,
    trace: &trace::Trace,
    open: impl Fn() -> Arc<dyn DocStore>,
    settle: impl Fn(),
) {
    println!("\n== automerge-paper on {engine}: 259,778 single-character updates, one row each");
    let doc = id(1);
    {
        let store = open();
        let author = protocol::new_doc();
        let mut batch = Vec::with_capacity(10_000);
        let started = Instant::now();
        trace::replay(trace, &author, protocol::CONTENT, |update| {
            batch.push(NewUpdate {
                doc: doc.clone(),
                data: update,
                title: String::new(),
            });
            if batch.len() == 10_000 {
                store.append(&batch).unwrap();
                batch.clear();
            }
        });
        store.append(&batch).unwrap();
        println!("stored in {:.2?}", started.elapsed());
    }
    settle();
    println!(
        "store before compaction: {}",
        mib(open().stored_bytes().unwrap())
    );
    let before = cold_load(open(), &doc, &trace.end_content).await;
    println!("cold load, uncompacted (259,778-update log): {before:.2?}");
    {
        let store = open();
        let hub = hub_on(store.clone());
        let started = Instant::now();
        drop(hub.join(doc.clone()).await.unwrap()); // load, then unload: compaction
        hub.journal().flush().await;
        println!("load + compaction on unload: {:.2?}", started.elapsed());
        drop(store);
    }
    settle();
    println!(
        "store after compaction: {}",
        mib(open().stored_bytes().unwrap())
    );
    let after = cold_load(open(), &doc, &trace.end_content).await;
    println!("cold load, compacted (one snapshot): {after:.2?}");
}

async fn cold_load(store: Arc<dyn DocStore>, doc: &DocId, expected: &str) -> Duration {
    let started = Instant::now();
    let hub = hub_on(store);
    let snapshot = hub.snapshot(doc).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(snapshot.content, expected);
    elapsed
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    println!(
        "== updates persisted per second (apply + group commit + broadcast, synchronous=FULL)"
    );
    for (writers, each) in [(1, 2_000), (16, 500), (64, 250), (256, 100)] {
        let (rate, elapsed) = throughput(writers, each).await;
        println!("{writers:>4} concurrent writers x {each:>5} updates: {rate:>9.0} updates/s ({elapsed:.2?})");
    }

    let trace = trace::load("automerge-paper.json.gz");
    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().to_owned();
    trace_figures(
        "SQLite",
        &trace,
        {
            let dir = sqlite_dir.clone();
            move || Arc::new(SqliteStore::open(&dir, 0).unwrap()) as Arc<dyn DocStore>
        },
        || {
            SqliteStore::open(&sqlite_dir, 0)
                .unwrap()
                .disk_size()
                .unwrap();
        },
    )
    .await;
    let pg = postgres::PgServer::start();
    let url = pg.new_database();
    let database = url.rsplit('/').next().unwrap().to_owned();
    println!(
        "(an empty PostgreSQL database: {})",
        mib(PostgresStore::open(&url).unwrap().stored_bytes().unwrap())
    );
    trace_figures(
        "PostgreSQL",
        &trace,
        move || Arc::new(PostgresStore::open(&url).unwrap()) as Arc<dyn DocStore>,
        || {
            pg.sql_in(&database, "VACUUM FULL");
        },
    )
    .await;
}
