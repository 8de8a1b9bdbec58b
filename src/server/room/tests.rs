//! The room's own tests: storing before broadcasting, answering joiners, refusing garbage.
use super::*;
use crate::server::storage::sqlite::SqliteStore;
use crate::server::storage::DocStore;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Update};
use yrs::{GetString, Text};

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn DocStore>,
    room: Arc<Room>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir.path(), 0).unwrap());
    let journal = Journal::start(store.clone(), 64);
    let loaded = Loaded {
        doc: protocol::new_doc(),
        snapshot_bytes: 0,
        last_seq: 0,
        tail_updates: 0,
        tail_bytes: 0,
    };
    let policy = RoomPolicy {
        compact_after_updates: 1000,
        compact_after_bytes: 1 << 20,
        max_doc_bytes: usize::MAX,
        integration_time_limit: INTEGRATION_TIME_LIMIT,
        presence: PresenceLimits::default(),
    };
    let id = DocId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    Fixture {
        _dir: dir,
        store,
        room: Arc::new(Room::new(id, loaded, journal, policy, 16)),
    }
}

fn update_frame(text: &str) -> Bytes {
    let doc = protocol::new_doc();
    let content = doc.get_or_insert_text(protocol::CONTENT);
    let mut txn = doc.transact_mut();
    content.insert(&mut txn, 0, text);
    encode(Message::Sync(SyncMessage::Update(txn.encode_update_v1())))
}

#[tokio::test]
async fn an_update_is_stored_before_it_is_broadcast() {
    let f = fixture();
    let mut rx = f.room.subscribe();
    let received = f
        .room
        .receive(1, &mut Presence::default(), &update_frame("hello"))
        .await
        .unwrap();
    assert!(received.stored);
    // By the time the broadcast is visible, the store has the update.
    assert_eq!(rx.try_recv().unwrap().frames[0].0, 1);
    let stored = f.store.load(&f.room.id).unwrap().unwrap();
    assert_eq!(stored.updates.len(), 1);
    assert_eq!(f.room.texts().1, "hello");
}

#[tokio::test]
async fn a_viewer_reads_but_its_changes_are_refused_and_go_nowhere() {
    let f = fixture();
    f.room
        .receive(1, &mut Presence::default(), &update_frame("kept"))
        .await
        .unwrap();
    let mut rx = f.room.subscribe();
    let mut viewer = Presence {
        viewer: true,
        ..Presence::default()
    };
    // Nothing to add: accepted silently.
    let nothing = encode(Message::Sync(SyncMessage::SyncStep2(vec![0, 0])));
    let received = f.room.receive(2, &mut viewer, &nothing).await.unwrap();
    assert!(received.replies.is_empty());
    // A change, as an update or a sync step 2: refused with permission-denied.
    for frame in [
        update_frame("forged"),
        encode(Message::Sync(SyncMessage::SyncStep2(
            match Message::decode_v1(&update_frame("forged")).unwrap() {
                Message::Sync(SyncMessage::Update(update)) => update,
                _ => unreachable!(),
            },
        ))),
    ] {
        let received = f.room.receive(2, &mut viewer, &frame).await.unwrap();
        assert!(!received.stored);
        assert_eq!(
            Message::decode_v1(&received.replies[0]).unwrap(),
            Message::Auth(Some("permission-denied".into()))
        );
    }
    assert_eq!(f.room.texts().1, "kept");
    assert!(rx.try_recv().is_err(), "nothing was relayed");
    assert_eq!(f.store.load(&f.room.id).unwrap().unwrap().updates.len(), 1);
    // The viewer still reads the document.
    let ask = encode(Message::Sync(
        SyncMessage::SyncStep1(StateVector::default()),
    ));
    let answer = f.room.receive(2, &mut viewer, &ask).await.unwrap();
    assert_eq!(answer.replies.len(), 1);
}

#[tokio::test]
async fn sync_step1_is_answered_with_the_missing_state() {
    let f = fixture();
    f.room
        .receive(1, &mut Presence::default(), &update_frame("hello"))
        .await
        .unwrap();
    let ask = encode(Message::Sync(
        SyncMessage::SyncStep1(StateVector::default()),
    ));
    let received = f
        .room
        .receive(2, &mut Presence::default(), &ask)
        .await
        .unwrap();
    assert!(!received.stored);
    let Message::Sync(SyncMessage::SyncStep2(update)) =
        Message::decode_v1(&received.replies[0]).unwrap()
    else {
        panic!("expected sync step 2");
    };
    let doc = protocol::new_doc();
    doc.transact_mut()
        .apply_update(Update::decode_v1(&update).unwrap())
        .unwrap();
    let text = doc.get_or_insert_text(protocol::CONTENT);
    assert_eq!(text.get_string(&doc.transact()), "hello");
}

#[tokio::test]
async fn joiners_asking_the_same_share_one_encoded_answer() {
    let f = fixture();
    f.room
        .receive(1, &mut Presence::default(), &update_frame("shared"))
        .await
        .unwrap();
    let ask = encode(Message::Sync(
        SyncMessage::SyncStep1(StateVector::default()),
    ));
    let first = f
        .room
        .receive(2, &mut Presence::default(), &ask)
        .await
        .unwrap()
        .replies
        .remove(0);
    let second = f
        .room
        .receive(3, &mut Presence::default(), &ask)
        .await
        .unwrap()
        .replies
        .remove(0);
    assert_eq!(first.as_ptr(), second.as_ptr(), "encoded once, shared");
    // A new version is encoded anew.
    f.room
        .receive(1, &mut Presence::default(), &update_frame("more"))
        .await
        .unwrap();
    let third = f
        .room
        .receive(4, &mut Presence::default(), &ask)
        .await
        .unwrap()
        .replies
        .remove(0);
    assert_ne!(first.as_ptr(), third.as_ptr());
}

#[tokio::test]
async fn a_repeated_update_is_neither_stored_nor_broadcast_again() {
    let f = fixture();
    let mut rx = f.room.subscribe();
    let frame = update_frame("once");
    f.room
        .receive(1, &mut Presence::default(), &frame)
        .await
        .unwrap();
    f.room
        .receive(1, &mut Presence::default(), &frame)
        .await
        .unwrap();
    assert!(rx.try_recv().is_ok());
    assert!(rx.try_recv().is_err());
    assert_eq!(f.store.load(&f.room.id).unwrap().unwrap().updates.len(), 1);
}

#[tokio::test]
async fn an_update_naming_a_non_type_parent_does_not_apply() {
    let f = fixture();
    // Client 1 writes "abc"; then client 2 claims the string item (1, 0) as its parent.
    let doc = yrs::Doc::with_client_id(1);
    let text = doc.get_or_insert_text(protocol::CONTENT);
    let update = {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "abc");
        txn.encode_update_v1()
    };
    let frame = encode(Message::Sync(SyncMessage::Update(update)));
    f.room
        .receive(1, &mut Presence::default(), &frame)
        .await
        .unwrap();
    let bad = encode(Message::Sync(SyncMessage::Update(vec![
        1, 1, 2, 0, 0x04, 0, 1, 0, 1, b'x', 0,
    ])));
    let reason = f
        .room
        .receive(2, &mut Presence::default(), &bad)
        .await
        .unwrap_err();
    assert_eq!(reason.code, 1007);
    assert!(reason.reason.contains("nested type"), "{reason:?}");
    assert_eq!(f.room.texts().1, "abc");
}

fn presence_frame(client: u64, clock: u32, json: &str) -> Bytes {
    let mut clients = std::collections::HashMap::new();
    clients.insert(
        ClientID::new(client),
        yrs::sync::awareness::AwarenessUpdateEntry {
            clock,
            json: json.into(),
        },
    );
    encode(Message::Awareness(yrs::sync::AwarenessUpdate { clients }))
}

fn removed_clients(frame: &Bytes) -> Vec<u64> {
    let Message::Awareness(update) = Message::decode_v1(frame).unwrap() else {
        return vec![];
    };
    update
        .clients
        .iter()
        .filter(|(_, e)| &*e.json == "null")
        .map(|(c, _)| c.get())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn silent_presence_expires_after_30_seconds_and_renewed_presence_stays() {
    let f = fixture();
    let mut rx = f.room.subscribe();
    let (mut silent, mut renewing) = (Presence::default(), Presence::default());
    f.room
        .receive(
            1,
            &mut silent,
            &presence_frame(11, 1, r#"{"user":{"name":"Silent"}}"#),
        )
        .await
        .unwrap();
    f.room
        .receive(
            2,
            &mut renewing,
            &presence_frame(22, 1, r#"{"user":{"name":"Renewing"}}"#),
        )
        .await
        .unwrap();
    // The second came within the first's window: it goes out with the batch, a window later.
    let batches = tokio::spawn(super::send_presence_batches(
        Arc::downgrade(&f.room),
        f.room.presence_due(),
    ));
    tokio::time::sleep(super::PRESENCE_BATCH * 2).await;
    while rx.try_recv().is_ok() {}

    let sweeper = tokio::spawn(super::super::hub::sweep_presence(Arc::downgrade(&f.room)));
    tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    f.room
        .receive(
            2,
            &mut renewing,
            &presence_frame(22, 2, r#"{"user":{"name":"Renewing"}}"#),
        )
        .await
        .unwrap();
    let _ = rx.try_recv();
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    assert!(rx.try_recv().is_err(), "nothing expires before 30 s");

    // Past 30 s: the silent one is removed, and the removal is broadcast.
    tokio::time::sleep(std::time::Duration::from_secs(8)).await;
    let removal = rx.try_recv().expect("a removal was broadcast");
    assert_eq!(removal_clients_sorted(&removal.frames[0].1), vec![11]);
    let everyone = f.room.everyone_present().expect("someone is present");
    let Message::Awareness(present) = Message::decode_v1(&everyone).unwrap() else {
        panic!("an awareness message");
    };
    let present: Vec<u64> = present.clients.keys().map(|c| c.get()).collect();
    assert_eq!(present, vec![22], "the renewed state stays");

    // Without renewal, the other goes too, 30 s after its last word.
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    let removal = rx.try_recv().expect("a second removal");
    assert_eq!(removal_clients_sorted(&removal.frames[0].1), vec![22]);
    sweeper.abort();
    batches.abort();
}

fn removal_clients_sorted(frame: &Bytes) -> Vec<u64> {
    let mut clients = removed_clients(frame);
    clients.sort();
    clients
}

#[tokio::test]
async fn garbage_is_rejected_and_leaves_the_document_alone() {
    let f = fixture();
    f.room
        .receive(1, &mut Presence::default(), &update_frame("kept"))
        .await
        .unwrap();
    for bad in [
        &b""[..],
        &[0, 2][..],
        &[0, 2, 200, 1, 2][..],
        &[0xff, 0xff, 0xff][..],
        &[0, 2, 3, 1, 2, 3][..],
    ] {
        let result = f
            .room
            .receive(2, &mut Presence::default(), &Bytes::copy_from_slice(bad))
            .await;
        assert!(result.is_err(), "{bad:?}");
    }
    assert_eq!(f.room.texts().1, "kept");
}

/// A frame kept for long (a change in the broadcast ring, the answer cached for joiners) holds
/// its own length, not the kilobyte yrs's encoder starts with.
#[test]
fn a_kept_frame_holds_no_more_memory_than_its_length() {
    let update = super::durability::encode_update(&[0, 0]);
    let pong = encode(Message::Custom(protocol::MSG_PONG, Vec::new()));
    for frame in [update, pong] {
        let len = frame.len();
        assert!(len < 16);
        assert_eq!(frame.try_into_mut().unwrap().capacity(), len);
    }
}
