//! A connection's changes are read and applied while its earlier ones are still on their way
//! to disk (so one connection typing fast fills the journal's group commits), and each is
//! confirmed as saved, in order, once stored. Storage is held back here by a store whose
//! commits wait at a gate the test opens.
#![cfg(feature = "ssr")]

mod common;

use common::channel::ChannelSocket;
use common::random_id;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tandem::doc_id::DocId;
use tandem::server::hub::Hub;
use tandem::server::journal::Journal;
use tandem::server::limits::{LimitSettings, Limits};
use tandem::server::room::RoomPolicy;
use tandem::server::session::{self, SessionSettings, MAX_UNCONFIRMED, MAX_UNCONFIRMED_BYTES};
use tandem::server::socket::Message as ServerMessage;
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::{Compaction, DocStore, NewUpdate, StoreError, StoredDoc};
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Text, Transact};

/// SQLite behind a gate: commits wait until the test opens it.
struct GatedStore {
    inner: SqliteStore,
    open: Arc<(Mutex<bool>, Condvar)>,
}

impl DocStore for GatedStore {
    fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.inner.load(doc)
    }
    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        let (lock, opened) = &*self.open;
        let mut open = lock.lock().unwrap();
        while !*open {
            open = opened.wait(open).unwrap();
        }
        drop(open);
        self.inner.append(updates)
    }
    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        self.inner.compact(compaction)
    }
    fn backup(&self, destination: &Path) -> Result<(), StoreError> {
        self.inner.backup(destination)
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    gate: Arc<(Mutex<bool>, Condvar)>,
    store: Arc<dyn DocStore>,
    hub: Hub,
    id: DocId,
    to_server: tokio::sync::mpsc::Sender<Result<ServerMessage, tandem::server::socket::Error>>,
    from_server: tokio::sync::mpsc::Receiver<ServerMessage>,
}

/// One Tandem page's connection (it asks for "saved") to a fresh document, storage held.
fn fixture() -> Fixture {
    fixture_with(|_| {}, false)
}

/// [`fixture`] with the room's policy adjusted, and storage held or not.
fn fixture_with(adjust: impl FnOnce(&mut RoomPolicy), open: bool) -> Fixture {
    fixture_with_queue(adjust, open, 4096)
}

/// [`fixture_with`], with a reply queue of `send_queue` frames.
fn fixture_with_queue(
    adjust: impl FnOnce(&mut RoomPolicy),
    open: bool,
    send_queue: usize,
) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(open), Condvar::new()));
    let store: Arc<dyn DocStore> = Arc::new(GatedStore {
        inner: SqliteStore::open(dir.path(), 0).unwrap(),
        open: gate.clone(),
    });
    // A journal queue deeper than a connection's allowance, so the allowance is what stops it.
    let journal = Journal::start(store.clone(), 4 * MAX_UNCONFIRMED);
    let mut policy = RoomPolicy {
        compact_after_updates: 100_000,
        compact_after_bytes: 1 << 30,
        max_doc_bytes: usize::MAX,
        integration_time_limit: tandem::server::room::INTEGRATION_TIME_LIMIT,
        presence: Default::default(),
    };
    adjust(&mut policy);
    let hub = Hub::new(store.clone(), journal, policy, 4096, None);
    let limits = Limits::new(LimitSettings {
        connections_per_address: 10,
        new_connections_per_second: 100,
        messages_per_second: 100_000,
    });
    let id = random_id();
    let (to_server, incoming) = tokio::sync::mpsc::channel(4096);
    let (outgoing, from_server) = tokio::sync::mpsc::channel(4096);
    let settings = SessionSettings {
        send_queue,
        send_queue_bytes: 1 << 24,
        acks: true,
        messages: limits.message_limiter(),
        admission: limits
            .admit(std::net::IpAddr::from([127, 0, 0, 1]))
            .unwrap(),
        max_message_bytes: 1 << 20,
        link: session::LinkGrant::edit(),
    };
    tokio::spawn(session::run(
        ChannelSocket {
            incoming,
            outgoing: tokio_util::sync::PollSender::new(outgoing),
        },
        hub.clone(),
        id.clone(),
        settings,
        tokio_util::sync::CancellationToken::new(),
    ));
    Fixture {
        _dir: dir,
        gate,
        store,
        hub,
        id,
        to_server,
        from_server,
    }
}

impl Fixture {
    async fn send_keystrokes(&self, replica: &yrs::Doc, count: usize) {
        let text = replica.get_or_insert_text(tandem::protocol::CONTENT);
        for i in 0..count {
            let update = {
                let mut txn = replica.transact_mut();
                let at = yrs::GetString::get_string(&text, &txn).len() as u32;
                text.insert(&mut txn, at, &((b'a' + (i % 26) as u8) as char).to_string());
                txn.encode_update_v1()
            };
            let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
            self.to_server
                .send(Ok(ServerMessage::Binary(frame.into())))
                .await
                .unwrap();
        }
    }

    /// The document's text as the server's replica holds it, stored or not.
    async fn server_text(&self) -> String {
        match self.hub.get(&self.id) {
            Some(room) => room.texts().1,
            None => String::new(),
        }
    }

    /// The document's text as pages and downloads get it: only once it is stored.
    async fn shown_text(&self) -> Option<String> {
        tokio::time::timeout(Duration::from_millis(300), self.hub.texts(&self.id))
            .await
            .ok()
            .map(|texts| texts.unwrap().1)
    }

    /// Waits (at most 20 s) until the server's replica holds `len` characters.
    async fn until_applied(&self, len: usize) {
        for _ in 0..2000 {
            if self.server_text().await.len() >= len {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the server applied {} of {len} characters",
            self.server_text().await.len()
        );
    }

    fn open_gate(&self) {
        let (lock, opened) = &*self.gate;
        *lock.lock().unwrap() = true;
        opened.notify_all();
    }

    /// Waits (at most 20 s for each) until `count` more confirmations have come.
    async fn until_saved(&mut self, count: usize) {
        let mut saved = 0;
        while saved < count {
            let message = tokio::time::timeout(Duration::from_secs(20), self.from_server.recv())
                .await
                .expect("confirmations arrive")
                .unwrap();
            saved += usize::from(is_saved(&message));
        }
    }

    /// "Saved" confirmations among what the server has sent so far.
    fn saved_so_far(&mut self) -> usize {
        let mut saved = 0;
        while let Ok(message) = self.from_server.try_recv() {
            saved += usize::from(is_saved(&message));
        }
        saved
    }
}

fn is_saved(message: &ServerMessage) -> bool {
    matches!(message, ServerMessage::Binary(frame)
        if matches!(Message::decode_v1(frame), Ok(Message::Custom(tandem::protocol::MSG_SAVED, _))))
}

#[tokio::test]
async fn later_changes_are_applied_while_earlier_ones_wait_for_the_disk() {
    let mut f = fixture();
    let replica = tandem::protocol::new_doc();
    f.send_keystrokes(&replica, 3).await;
    // All three are in the replica though none is stored: the second and third were read
    // while the first waited.
    f.until_applied(3).await;
    assert_eq!(f.server_text().await, "abc");
    assert_eq!(
        f.saved_so_far(),
        0,
        "nothing is confirmed before it is stored"
    );
    // Nor shown by a page or a download: they wait for the disk too.
    assert_eq!(f.shown_text().await, None);
    assert!(f
        .store
        .load(&f.id)
        .unwrap()
        .is_none_or(|d| d.updates.is_empty()));

    f.open_gate();
    f.until_saved(3).await;
    let stored = f.store.load(&f.id).unwrap().unwrap();
    let doc = stored.replica().unwrap();
    assert_eq!(tandem::protocol::texts_of(&doc).1, "abc");
    assert_eq!(f.shown_text().await.as_deref(), Some("abc"));
    // Exactly one confirmation each: nothing more comes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(f.saved_so_far(), 0);
}

#[tokio::test]
async fn a_connection_stops_being_read_once_its_unstored_changes_reach_the_limit() {
    let mut f = fixture();
    let replica = tandem::protocol::new_doc();
    let sent = MAX_UNCONFIRMED + 40;
    f.send_keystrokes(&replica, sent).await;
    f.until_applied(MAX_UNCONFIRMED).await;
    // Given time, it reads no further while storage is held.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.server_text().await.len(), MAX_UNCONFIRMED);

    // Once storage moves, the rest is read, and every change is confirmed in the end.
    f.open_gate();
    let mut saved = 0;
    while saved < sent {
        let message = tokio::time::timeout(Duration::from_secs(20), f.from_server.recv())
            .await
            .expect("confirmations arrive")
            .unwrap();
        saved += usize::from(is_saved(&message));
    }
    assert_eq!(f.server_text().await.len(), sent);
    let _ = f.saved_so_far();
}

/// A writer sending faster than the log is compacted, into a document that stays small: its
/// changes are not refused for the size of a log tail waiting to be folded (in flight, or
/// stored and not yet compacted); it is slowed to compaction's pace instead.
#[tokio::test]
async fn a_writer_faster_than_compaction_is_slowed_not_refused_for_the_size_limit() {
    let mut f = fixture_with(
        |policy| {
            policy.max_doc_bytes = 64 * 1024;
            policy.compact_after_updates = 20;
        },
        true,
    );
    let replica = tandem::protocol::new_doc();
    let text = replica.get_or_insert_text(tandem::protocol::CONTENT);
    let chunk = "z".repeat(1024);
    // 300 KiB typed and deleted, 1 KiB at a time, back to back: 600 changes, five times the
    // limit in all, never more than 1 KiB of text at once.
    let rounds = 300;
    for _ in 0..rounds {
        for delete in [false, true] {
            let update = {
                let mut txn = replica.transact_mut();
                if delete {
                    text.remove_range(&mut txn, 0, 1024);
                } else {
                    text.insert(&mut txn, 0, &chunk);
                }
                txn.encode_update_v1()
            };
            let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
            f.to_server
                .send(Ok(ServerMessage::Binary(frame.into())))
                .await
                .unwrap();
        }
    }
    let mut saved = 0;
    while saved < 2 * rounds {
        let message = tokio::time::timeout(Duration::from_secs(30), f.from_server.recv())
            .await
            .expect("confirmations arrive")
            .expect("the connection stays open");
        if let ServerMessage::Close(close) = &message {
            panic!("closed after {saved} changes were saved: {close:?}");
        }
        saved += usize::from(is_saved(&message));
    }
    assert_eq!(f.server_text().await, "");
}

/// Large changes pause reading sooner: what one connection holds in flight is bounded in
/// bytes too.
#[tokio::test]
async fn a_connection_of_large_changes_stops_being_read_at_the_byte_limit() {
    let mut f = fixture();
    let replica = tandem::protocol::new_doc();
    let text = replica.get_or_insert_text(tandem::protocol::CONTENT);
    let chunk = "q".repeat(64 * 1024);
    let sent = 100;
    let mut frame_bytes = 0;
    for _ in 0..sent {
        let update = {
            let mut txn = replica.transact_mut();
            let at = yrs::GetString::get_string(&text, &txn).len() as u32;
            text.insert(&mut txn, at, &chunk);
            txn.encode_update_v1()
        };
        let frame = Message::Sync(SyncMessage::Update(update)).encode_v1();
        frame_bytes = frame.len();
        f.to_server
            .send(Ok(ServerMessage::Binary(frame.into())))
            .await
            .unwrap();
    }
    let read = MAX_UNCONFIRMED_BYTES.div_ceil(frame_bytes);
    assert!(read < sent && read < MAX_UNCONFIRMED);
    f.until_applied(read * chunk.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(f.server_text().await.len(), read * chunk.len());

    f.open_gate();
    let mut saved = 0;
    while saved < sent {
        let message = tokio::time::timeout(Duration::from_secs(20), f.from_server.recv())
            .await
            .expect("confirmations arrive")
            .unwrap();
        saved += usize::from(is_saved(&message));
    }
    assert_eq!(f.server_text().await.len(), sent * chunk.len());
}

/// One commit can confirm far more changes than the reply queue holds: the confirmations wait
/// their turn and all go out, in order, and the connection stays open. (They used to overflow
/// the queue and close a fast writer with 1013.)
#[tokio::test]
async fn a_commit_confirming_more_changes_than_the_reply_queue_holds_closes_nobody() {
    let mut f = fixture_with_queue(|_| {}, false, 4);
    let replica = tandem::protocol::new_doc();
    f.send_keystrokes(&replica, 200).await;
    f.until_applied(200).await;
    // All 200 wait for the disk; opening the gate confirms them in one or two commits.
    f.open_gate();
    f.until_saved(200).await;
    assert_eq!(f.saved_so_far(), 0, "one confirmation each, no more");
    // Still open: a later change is applied and confirmed too.
    f.send_keystrokes(&replica, 1).await;
    f.until_applied(201).await;
    f.until_saved(1).await;
    assert_eq!(f.saved_so_far(), 0, "one confirmation each, no more");
}
