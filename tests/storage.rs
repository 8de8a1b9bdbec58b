//! Durable storage through the real server: compaction, failures, metadata, acknowledgements.
#![cfg(feature = "ssr")]

mod common;

use common::{decode, random_id, Peer, TestServer, PATIENCE};
use futures_util::StreamExt;
use proptest::prelude::*;
use std::sync::Arc;
use tandem::doc_id::DocId;
use tandem::protocol;
use tandem::server::hub::Hub;
use tandem::server::journal::Journal;
use tandem::server::room::RoomPolicy;
use tandem::server::storage::sqlite::{SqliteStore, DB_FILE};
use tandem::server::storage::{DocStore, NewUpdate};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::Message;
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact, Update};

fn hub_over(dir: &std::path::Path, max_updates: usize) -> (Hub, Arc<dyn DocStore>) {
    let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir, 0).unwrap());
    hub_on(store, max_updates)
}

fn hub_on(store: Arc<dyn DocStore>, max_updates: usize) -> (Hub, Arc<dyn DocStore>) {
    let journal = Journal::start(store.clone(), 1024);
    let policy = RoomPolicy {
        compact_after_updates: max_updates,
        compact_after_bytes: usize::MAX,
        max_doc_bytes: usize::MAX,
        integration_time_limit: tandem::server::room::INTEGRATION_TIME_LIMIT,
        presence: Default::default(),
    };
    (Hub::new(store.clone(), journal, policy, 64, None), store)
}

fn rows(dir: &std::path::Path, id: &DocId) -> Vec<Vec<u8>> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    let mut query = conn
        .prepare("SELECT data FROM updates WHERE doc = ?1 ORDER BY seq")
        .unwrap();
    let rows = query.query_map([id.as_str()], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// One random edit: which simulated client makes it, where, and what.
#[derive(Debug, Clone)]
enum Edit {
    Insert {
        client: usize,
        at: u16,
        text: String,
    },
    Delete {
        client: usize,
        at: u16,
        len: u16,
    },
    /// The client catches up with everything the others did.
    Sync {
        client: usize,
    },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..3usize, any::<u16>(), "[a-z😀é ]{1,6}").prop_map(|(client, at, text)| Edit::Insert { client, at, text }),
        2 => (0..3usize, any::<u16>(), 1..5u16).prop_map(|(client, at, len)| Edit::Delete { client, at, len }),
        1 => (0..3usize).prop_map(|client| Edit::Sync { client }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the updates, the state loaded after compactions equals the state built
    /// from the raw updates.
    #[test]
    fn compaction_never_changes_the_document(edits in prop::collection::vec(edit(), 1..80), every in 1..12usize) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let dir = tempfile::tempdir().unwrap();
            let (hub, store) = hub_over(dir.path(), every);
            let id = random_id();
            let raw = protocol::new_doc();
            let clients: Vec<_> = (0..3).map(|_| protocol::new_doc()).collect();
            let member = hub.join(id.clone()).await.unwrap();
            let mut presence = Default::default();
            let mut sent = 0;
            for edit in edits {
                let (client, update) = match edit {
                    Edit::Insert { client, at, text } => {
                        let doc = &clients[client];
                        let content = doc.get_or_insert_text(protocol::CONTENT);
                        let mut txn = doc.transact_mut();
                        let len = content.len(&txn);
                        let at = at as u32 % (len + 1);
                        // Never split a surrogate pair: step back onto a character boundary.
                        let s = content.get_string(&txn);
                        let units: Vec<u16> = s.encode_utf16().collect();
                        let at = if at > 0 && at < len && (0xDC00..0xE000).contains(&units[at as usize]) { at - 1 } else { at };
                        content.insert(&mut txn, at, &text);
                        (client, txn.encode_update_v1())
                    }
                    Edit::Delete { client, at, len } => {
                        let doc = &clients[client];
                        let content = doc.get_or_insert_text(protocol::CONTENT);
                        let mut txn = doc.transact_mut();
                        let total = content.len(&txn);
                        if total == 0 { continue; }
                        let at = at as u32 % total;
                        let len = (len as u32).min(total - at);
                        content.remove_range(&mut txn, at, len);
                        (client, txn.encode_update_v1())
                    }
                    Edit::Sync { client } => {
                        let doc = &clients[client];
                        let missing = raw.transact().encode_state_as_update_v1(&doc.transact().state_vector());
                        doc.transact_mut().apply_update(Update::decode_v1(&missing).unwrap()).unwrap();
                        continue;
                    }
                };
                raw.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
                let frame = bytes::Bytes::from(yrs::updates::encoder::Encode::encode_v1(
                    &Message::Sync(yrs::sync::SyncMessage::Update(update)),
                ));
                member.room().receive(client as u64, &mut presence, &frame).await.unwrap();
                sent += 1;
            }
            drop(member); // unload: a final compaction
            hub.journal().flush().await;

            match store.load(&id).unwrap() {
                Some(stored) => assert!(stored.snapshot.is_some(), "compacted on unload"),
                None => assert_eq!(sent, 0, "updates were sent but nothing is stored"),
            }
            let reloaded = hub.snapshot(&id).await.unwrap();
            assert_eq!(reloaded.content, protocol::texts_of(&raw).1);
            let doc = protocol::new_doc();
            doc.transact_mut().apply_update(Update::decode_v1(&reloaded.update).unwrap()).unwrap();
            assert_eq!(doc.transact().state_vector(), raw.transact().state_vector());
        });
    }
}

/// The real editing history of a paper: 259,778 single-character edits, each stored as its
/// own update, then compacted and reloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automerge_paper_trace_survives_storage_and_compaction() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir.path(), 0).unwrap());
    automerge_paper_trace(store).await;
}

/// The same on PostgreSQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automerge_paper_trace_survives_storage_and_compaction_on_postgres() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let postgres = common::postgres::PgServer::start();
    let url = postgres.new_database();
    let store: Arc<dyn DocStore> =
        Arc::new(tandem::server::storage::postgres::PostgresStore::open(&url).unwrap());
    automerge_paper_trace(store).await;
}

async fn automerge_paper_trace(store: Arc<dyn DocStore>) {
    let trace = common::trace::load("automerge-paper.json.gz");
    let (hub, store) = hub_on(store, usize::MAX);
    let id = random_id();
    let author = protocol::new_doc();
    let mut batch = Vec::new();
    let mut count = 0;
    common::trace::replay(&trace, &author, protocol::CONTENT, |update| {
        batch.push(NewUpdate {
            doc: id.clone(),
            data: update,
            title: String::new(),
        });
        count += 1;
        if batch.len() == 10_000 {
            store.append(&batch).unwrap();
            batch.clear();
        }
    });
    store.append(&batch).unwrap();
    assert_eq!(count, 259_778);
    assert_eq!(store.load(&id).unwrap().unwrap().updates.len(), 259_778);

    // Opening the room replays the log; closing it compacts.
    let member = hub.join(id.clone()).await.unwrap();
    assert_eq!(member.room().texts().1, trace.end_content);
    drop(member);
    hub.journal().flush().await;

    let stored = store.load(&id).unwrap().unwrap();
    assert!(
        stored.updates.is_empty(),
        "the log was merged into the snapshot"
    );
    assert!(stored.snapshot.is_some());
    let reloaded = hub.snapshot(&id).await.unwrap();
    assert_eq!(reloaded.content, trace.end_content);
}

#[tokio::test]
async fn compaction_runs_after_a_bounded_number_of_updates() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(|c| c.compact_after_updates = 10).await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let mut peer = Peer::join(&server, &id).await;
    let mut watcher = Peer::join(&server, &id).await;
    for i in 0..35u32 {
        peer.insert(i, "x").await;
    }
    watcher.wait_for_text(&"x".repeat(35)).await;
    server.state.hub.journal().flush().await;
    let tail = rows(server.data_dir.path(), &doc).len();
    assert!(
        tail < 10,
        "{tail} updates left in the log after compactions"
    );
    drop(peer);
    drop(watcher);

    let reloaded = server.state.hub.snapshot(&doc).await.unwrap();
    assert_eq!(reloaded.content, "x".repeat(35));
}

#[tokio::test]
async fn a_failed_load_refuses_the_room_and_touches_nothing() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    // A document whose stored log holds a damaged record.
    let mut good = Peer::join(&server, &id).await;
    good.insert(0, "precious").await;
    let mut check = Peer::join(&server, &id).await;
    check.wait_for_text("precious").await;
    good.close().await;
    check.close().await;
    server
        .eventually("the room to unload", |s| s.hub.get(&doc).is_none())
        .await;
    server.state.hub.journal().flush().await;
    {
        let conn = rusqlite::Connection::open(server.data_dir.path().join(DB_FILE)).unwrap();
        conn.execute(
            "INSERT INTO updates (doc, data) VALUES (?1, ?2)",
            rusqlite::params![doc.as_str(), vec![0xdeu8, 0xad, 0xbe, 0xef]],
        )
        .unwrap();
    }
    let before = (
        rows(server.data_dir.path(), &doc),
        snapshot_bytes(server.data_dir.path(), &doc),
    );

    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url(id.as_str()))
        .await
        .unwrap();
    let close = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    match close {
        Some(Ok(WsMessage::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1011);
            assert!(
                frame.reason.contains("could not be loaded"),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert!(server.state.hub.get(&doc).is_none(), "no room was opened");

    // The page says so too, with a server error status.
    let response = tandem::server::router(server.state.clone())
        .oneshot_get(&format!("/d/{id}"))
        .await;
    assert_eq!(response, 500);

    let after = (
        rows(server.data_dir.path(), &doc),
        snapshot_bytes(server.data_dir.path(), &doc),
    );
    assert_eq!(before, after, "the stored bytes are untouched");
}

fn snapshot_bytes(dir: &std::path::Path, id: &DocId) -> Option<Vec<u8>> {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
    conn.query_row(
        "SELECT snapshot FROM documents WHERE id = ?1",
        [id.as_str()],
        |r| r.get(0),
    )
    .unwrap()
}

trait OneshotGet {
    async fn oneshot_get(self, path: &str) -> u16;
}
impl OneshotGet for axum::Router {
    async fn oneshot_get(self, path: &str) -> u16 {
        use tower::ServiceExt;
        let request = axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        self.oneshot(request).await.unwrap().status().as_u16()
    }
}

#[tokio::test]
async fn a_failed_write_is_reported_and_loses_nothing_stored() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    // A 1 MiB cap on the database stands in for a full disk: SQLite fails the write itself.
    let server = TestServer::start_with(|c| c.max_storage_mb = 1).await;
    let id = server.new_doc().await;
    let mut a = Peer::join(&server, &id).await;
    let mut b = Peer::join(&server, &id).await;
    a.insert(0, "safe and sound").await;
    b.wait_for_text("safe and sound").await;

    a.insert(0, &"x".repeat(2 * 1024 * 1024)).await;
    assert_eq!(a.expect_close().await, 1011, "the writer is told");
    assert_eq!(
        b.expect_close().await,
        1011,
        "and so is everyone in the room"
    );

    // The next connection loads what is stored: nothing was lost, nothing half-written.
    let c = Peer::join(&server, &id).await;
    assert_eq!(c.text(), "safe and sound");
}

#[tokio::test]
async fn documents_keep_their_title_and_times() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let started = tandem::server::storage::now_millis();
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let mut peer = Peer::join(&server, &id).await;
    let update = {
        let title = peer.doc().get_or_insert_text(protocol::TITLE);
        let mut txn = peer.doc().transact_mut();
        title.insert(&mut txn, 0, "Plans");
        txn.encode_update_v1()
    };
    peer.send(Message::Sync(yrs::sync::SyncMessage::Update(update)))
        .await;
    peer.insert(0, "text").await;
    let mut check = Peer::join(&server, &id).await;
    check.wait_for_text("text").await;

    let conn = rusqlite::Connection::open(server.data_dir.path().join(DB_FILE)).unwrap();
    let (title, created, updated): (String, i64, i64) = conn
        .query_row(
            "SELECT title, created_at, updated_at FROM documents WHERE id = ?1",
            [doc.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(title, "Plans");
    assert!(
        started <= created && created <= updated,
        "{started} {created} {updated}"
    );
}

#[tokio::test]
async fn tandem_clients_are_told_when_changes_are_durable_and_stock_clients_are_not() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let tandem_url = format!("{}?client=tandem", server.ws_url(id.as_str()));
    let mut ours = Peer::join_url(&tandem_url, None).await;
    let mut stock = Peer::join(&server, &id).await;

    // Two frames with changes: the handshake's sync step 2 (nothing new) and one edit.
    ours.insert(0, "one").await;
    ours.pump_until("two acknowledgements", |p, _| p.acks == 2)
        .await;
    // Acknowledged means stored.
    assert_eq!(rows(server.data_dir.path(), &doc).len(), 1);

    stock.wait_for_text("one").await;
    stock.insert(3, " two").await;
    ours.wait_for_text("one two").await;
    // The stock client sees only standard messages.
    ours.insert(0, ">").await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, stock.ws.next()).await {
        if let WsMessage::Binary(frame) = frame {
            for message in decode(&frame) {
                assert!(
                    !matches!(message, Message::Custom(..)),
                    "stock client got {message:?}"
                );
            }
        }
    }
}

fn new_version(
    id: &DocId,
    title: &str,
    content: &str,
    authors: &[&str],
) -> tandem::server::storage::NewVersion {
    tandem::server::storage::NewVersion {
        doc: id.clone(),
        title: title.into(),
        content: content.into(),
        authors: authors.iter().map(|a| a.to_string()).collect(),
    }
}

/// Versions are kept compactly beside the document: read back whole, newest first, a repeat
/// of the newest is not kept, and a burst keeps the recent ones and the newest of each hour.
#[test]
fn versions_are_kept_read_back_and_retained() {
    use tandem::server::storage::versions::{MAX_VERSIONS, RECENT_VERSIONS};
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), 0).unwrap();
    let (id, other) = (random_id(), random_id());
    let text = "# Plans\n\n".to_string() + &"A line of the plan.\n".repeat(500);
    let first = store
        .add_version(&new_version(
            &id,
            "Plans",
            &text,
            &["Ada", " Ada ", "", "Bea"],
        ))
        .unwrap()
        .expect("kept");
    assert_eq!(
        store
            .add_version(&new_version(&id, "Plans", &text, &["Cy"]))
            .unwrap(),
        None
    );
    store
        .add_version(&new_version(&other, "Other", "x", &[]))
        .unwrap();
    let second = store
        .add_version(&new_version(&id, "Plans", "# Plans\n", &["Bea"]))
        .unwrap()
        .unwrap();
    let listed = store.versions(&id).unwrap();
    assert_eq!(
        listed.iter().map(|v| v.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(listed[1].authors, ["Ada", "Bea"]);
    let read = store.version(&id, first).unwrap().unwrap();
    assert_eq!(read.content, text);
    assert_eq!(read.title, "Plans");
    // Another document's version is not this one's.
    let others = store.versions(&other).unwrap();
    assert_eq!(store.version(&id, others[0].id).unwrap(), None);
    // Deflated: far smaller than the text it holds.
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let stored: i64 = conn
        .query_row(
            "SELECT length(content) FROM versions WHERE id = ?1",
            [first],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        (stored as usize) < text.len() / 10,
        "{stored} bytes for {}",
        text.len()
    );
    // Retention: a burst (all within this hour) keeps the recent ones, and the newest of each
    // earlier hour survives it.
    let hours_ago = |hours: i64, id: i64| {
        conn.execute(
            "UPDATE versions SET created_at = created_at - ?1 WHERE id = ?2",
            [hours * tandem::server::storage::versions::HOURLY_MILLIS, id],
        )
        .unwrap();
    };
    hours_ago(3, first);
    hours_ago(2, second);
    for i in 0..MAX_VERSIONS + 5 {
        store
            .add_version(&new_version(&id, "Plans", &format!("v{i}"), &[]))
            .unwrap();
    }
    let listed = store.versions(&id).unwrap();
    assert_eq!(listed.len(), RECENT_VERSIONS + 2);
    assert!(listed.iter().any(|v| v.id == first) && listed.iter().any(|v| v.id == second));
    assert_eq!(
        store.version(&id, listed[0].id).unwrap().unwrap().content,
        format!("v{}", MAX_VERSIONS + 4)
    );
}

/// When the last editor leaves, what was written becomes a version, with the writer's name.
#[tokio::test]
async fn a_version_is_kept_when_the_last_editor_leaves() {
    let _turn = common::ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let mut writer = Peer::join(&server, &id).await;
    writer
        .set_presence(r##"{"user":{"name":"Ada Lovelace","color":"#e5484d"}}"##)
        .await;
    writer.insert(0, "Notes from today").await;
    let mut reader = Peer::join(&server, &id).await;
    reader.wait_for_text("Notes from today").await;
    assert!(server.state.hub.versions(&doc).await.unwrap().is_empty());
    writer.close().await;
    reader.close().await;
    let hub = server.state.hub.clone();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let versions = loop {
        let versions = hub.versions(&doc).await.unwrap();
        if !versions.is_empty() || tokio::time::Instant::now() > deadline {
            break versions;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(versions.len(), 1, "one version once the room closed");
    assert_eq!(versions[0].authors, ["Ada Lovelace"]);
    let version = hub.version(&doc, versions[0].id).await.unwrap().unwrap();
    assert_eq!(version.content, "Notes from today");
}
