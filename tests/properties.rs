//! Properties of the paths a stranger's bytes reach, with generated inputs: the frame codec,
//! presence, and a real room over a real store. The fuzz targets in `fuzz/` explore the same
//! paths for longer; these run with every test.
#![cfg(feature = "ssr")]

use bytes::Bytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::collections::HashMap;
use std::sync::Arc;
use tandem::doc_id::DocId;
use tandem::protocol::{self, close, wire, CONTENT, TITLE};
use tandem::server::hub::{Hub, Membership};
use tandem::server::journal::Journal;
use tandem::server::room::{Presence, Room, RoomPolicy};
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::DocStore;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, Map, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update};

// ---------------------------------------------------------------------------------------------
// A room over a real store, shared by the cases of one property.

/// A hub over a SQLite store in a temporary directory, and a runtime to drive it. Built once per
/// property, not per case; every case opens a document of its own.
struct World {
    runtime: tokio::runtime::Runtime,
    hub: Hub,
    next_doc: std::sync::atomic::AtomicU64,
    _dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir.path(), 0).unwrap());
        let journal = Journal::start(store.clone(), 256);
        let policy = RoomPolicy {
            compact_after_updates: 16,
            compact_after_bytes: 64 * 1024,
            max_doc_bytes: 4 << 20,
            integration_time_limit: tandem::server::room::INTEGRATION_TIME_LIMIT,
            presence: Default::default(),
        };
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            hub: Hub::new(store, journal, policy, 256, None),
            next_doc: Default::default(),
            _dir: dir,
        }
    }

    fn fresh_id(&self) -> DocId {
        let n = self
            .next_doc
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut raw = [7u8; 16];
        raw[..8].copy_from_slice(&n.to_le_bytes());
        DocId::from_random_bytes(raw)
    }

    /// `count` connections to one new document.
    async fn connections(&self, count: usize) -> Vec<Connection> {
        let id = self.fresh_id();
        let mut connections = Vec::new();
        for _ in 0..count {
            connections.push(Connection {
                member: self.hub.join(id.clone()).await.unwrap(),
                presence: Presence::default(),
            });
        }
        connections
    }
}

struct Connection {
    member: Membership,
    presence: Presence,
}

impl Connection {
    fn room(&self) -> &Arc<Room> {
        self.member.room()
    }

    async fn send(&mut self, frame: &[u8]) -> Result<tandem::server::room::Received, u16> {
        let room = self.member.room().clone();
        room.receive(
            self.member.conn,
            &mut self.presence,
            &Bytes::copy_from_slice(frame),
        )
        .await
        .map_err(|reason| reason.code)
    }
}

/// Runs `test` on `cases` values of `strategy`, all in one [`World`].
fn check_in_world<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(&World, S::Value) -> Result<(), TestCaseError>,
) {
    let world = World::new();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(error) = runner.run(&strategy, |value| test(&world, value)) {
        panic!("{error}");
    }
}

/// The room's whole document applies to a fresh replica, which reads as the room does.
fn assert_document_encodes(room: &Room) -> Result<(), TestCaseError> {
    let update = Update::decode_v1(&room.full_update()).map_err(|e| fail(e.to_string()))?;
    let fresh = protocol::new_doc();
    fresh
        .transact_mut()
        .apply_update(update)
        .map_err(|e| fail(e.to_string()))?;
    prop_assert_eq!(protocol::texts_of(&fresh), room.texts());
    Ok(())
}

fn fail(reason: String) -> TestCaseError {
    TestCaseError::fail(reason)
}

// ---------------------------------------------------------------------------------------------
// Messages and updates.

/// A replica with a known client id, counting in UTF-16 like every Tandem replica.
fn replica(client: u64) -> Doc {
    let doc = Doc::with_options(Options {
        client_id: ClientID::new(client),
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    });
    doc.get_or_insert_text(CONTENT);
    doc.get_or_insert_text(TITLE);
    doc
}

/// Inserts `text` at `index` (clamped) into `root` of `doc`; returns the update.
fn insert(doc: &Doc, root: &str, index: u32, text: &str) -> Vec<u8> {
    let shared = doc.get_or_insert_text(root);
    let mut txn = doc.transact_mut();
    let index = index.min(shared.len(&txn));
    shared.insert(&mut txn, index, text);
    txn.encode_update_v1()
}

/// Removes up to `len` units at `index` (clamped) from `root` of `doc`; returns the update.
fn remove(doc: &Doc, root: &str, index: u32, len: u32) -> Vec<u8> {
    let shared = doc.get_or_insert_text(root);
    let mut txn = doc.transact_mut();
    let total = shared.len(&txn);
    let index = index.min(total);
    shared.remove_range(&mut txn, index, len.min(total - index));
    txn.encode_update_v1()
}

fn update_frame(update: Vec<u8>) -> Vec<u8> {
    wire::encode(&Message::Sync(SyncMessage::Update(update)))
}

fn awareness_frame(client: u64, clock: u32, json: &str) -> Vec<u8> {
    let mut clients = HashMap::new();
    clients.insert(
        ClientID::new(client),
        AwarenessUpdateEntry {
            clock,
            json: json.into(),
        },
    );
    wire::encode(&Message::Awareness(AwarenessUpdate { clients }))
}

/// Client ids as yrs and Yjs use them: at most 53 bits, so JavaScript numbers hold them.
fn client_id() -> impl Strategy<Value = u64> {
    prop_oneof![1..16u64, 0..(1u64 << 53)]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Any one well-formed message. Custom types are those Tandem and other extensions could use:
/// yrs writes a custom type as one raw byte but reads it back as a variable-length integer, so
/// types of 128 and above are not one message in its encoding.
fn message() -> impl Strategy<Value = Message> {
    let state_vector = prop::collection::vec((client_id(), any::<u32>()), 0..4).prop_map(|pairs| {
        let mut sv = StateVector::default();
        for (client, clock) in pairs {
            sv.set_max(ClientID::new(client), clock);
        }
        sv
    });
    let awareness = prop::collection::hash_map(client_id(), (any::<u32>(), "\\PC{0,12}"), 0..4)
        .prop_map(|entries| {
            let clients = entries
                .into_iter()
                .map(|(client, (clock, json))| {
                    (
                        ClientID::new(client),
                        AwarenessUpdateEntry {
                            clock,
                            json: json.into(),
                        },
                    )
                })
                .collect();
            Message::Awareness(AwarenessUpdate { clients })
        });
    prop_oneof![
        state_vector.prop_map(|sv| Message::Sync(SyncMessage::SyncStep1(sv))),
        bytes(64).prop_map(|u| Message::Sync(SyncMessage::SyncStep2(u))),
        bytes(64).prop_map(|u| Message::Sync(SyncMessage::Update(u))),
        awareness,
        Just(Message::AwarenessQuery),
        proptest::option::of("\\PC{0,12}").prop_map(Message::Auth),
        (4..128u8, bytes(16)).prop_map(|(tag, data)| Message::Custom(tag, data)),
    ]
}

/// Bytes shaped like frames: mostly random, some starting like a message of each type, some
/// wrapping random bytes in a message's envelope, some messages with a byte or two changed.
fn frame_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        bytes(96),
        (0..4u8, 0..3u8, bytes(96)).prop_map(|(tag, sub, rest)| {
            let mut frame = vec![tag, sub];
            frame.extend(rest);
            frame
        }),
        (0..3u8, bytes(96)).prop_map(|(sub, payload)| {
            let mut frame = vec![0, sub];
            yrs::encoding::write::Write::write_buf(&mut frame, &payload);
            frame
        }),
        (
            message(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..3)
        )
            .prop_map(|(message, flips)| {
                let mut frame = wire::encode(&message);
                for (at, value) in flips {
                    let at = at.index(frame.len());
                    frame[at] = value;
                }
                frame
            }),
    ]
}

// ---------------------------------------------------------------------------------------------
// (a), (b): the frame codec.

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

    /// Decoding never panics, and whatever it accepts comes out the same after encoding and
    /// decoding again (the room relays re-encoded messages, never the received bytes).
    #[test]
    fn decoding_any_frame_is_total_and_what_it_accepts_round_trips(frame in frame_like()) {
        if let Ok(message) = wire::decode(&frame) {
            prop_assume!(!matches!(message, Message::Custom(tag, _) if tag >= 128));
            let again = wire::encode(&message);
            prop_assert_eq!(wire::decode(&again), Ok(message));
        }
    }

    /// Every well-formed message is one frame, and decodes as itself.
    #[test]
    fn every_message_is_a_frame_of_its_own(message in message()) {
        prop_assert_eq!(wire::decode(&wire::encode(&message)), Ok(message));
    }
}

/// A client id is 53 bits in Yjs, but the wire carries 64-bit integers. yrs asserts the width
/// when it builds an id, in builds with debug assertions: there a 13-byte frame panicked the
/// decoder (and the connection's task). Every place that reads a client id is covered here.
#[test]
fn client_ids_wider_than_53_bits_do_not_panic_the_decoder() {
    // 2^53 as a variable-length integer.
    const WIDE: [u8; 8] = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10];
    let with_buf = |head: &[u8], payload: &[u8]| {
        let mut frame = head.to_vec();
        yrs::encoding::write::Write::write_buf(&mut frame, payload);
        frame
    };
    let state_vector = [&[1][..], &WIDE, &[3]].concat();
    let presence = [&[1][..], &WIDE, &[1, 2, b'{', b'}']].concat();
    // One client section of one string block, written by the wide client.
    let update = [
        &[1, 1][..],
        &WIDE,
        &[0, 4, 1, 7],
        CONTENT.as_bytes(),
        &[1, b'x', 0],
    ]
    .concat();
    let frames = [
        with_buf(&[0, 0], &state_vector),
        with_buf(&[1], &presence),
        with_buf(&[0, 2], &update),
    ];
    for frame in &frames {
        let _ = wire::decode(frame);
    }
    let _ = tandem::server::room::shape::check(&update, &[CONTENT, TITLE]);
    let _ = Update::decode_v1(&update);
}

/// A deleted range is a start clock and a length, each up to 2^32 - 1, and their sum may not
/// fit. yrs adds them unchecked, which panics in a build with overflow checks: there this
/// update panicked the decoder before the room could refuse it.
#[test]
fn a_deleted_range_past_the_largest_clock_does_not_panic_the_room() {
    let world = World::new();
    world.runtime.block_on(async {
        let mut connections = world.connections(1).await;
        // No blocks; a delete set of one client with one range: clock 2^32 - 1, length 2.
        let update = vec![0, 1, 1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 2];
        let _ = connections[0].send(&update_frame(update)).await;
        assert!(connections[0].room().failure().is_none());
        assert_document_encodes(connections[0].room()).unwrap();
    });
}

/// Ann writes; then a garbage-collected range of hers arrives at clock 2^31 + 2^30. yrs
/// computes the distance from her clock in an `i32`, takes the block for one it already has,
/// and panics inside `apply_update`. The shape check refuses clocks past 2^31 - 1 before yrs
/// reads them: the sender is closed with 1007 and the room goes on, Ann's text intact.
#[test]
fn an_update_that_would_panic_yrs_is_refused_before_it() {
    let world = World::new();
    world.runtime.block_on(async {
        let mut connections = world.connections(2).await;
        let ann = replica(0x0a11);
        connections[0]
            .send(&update_frame(insert(&ann, CONTENT, 0, KNOWN)))
            .await
            .unwrap();
        // One client (Ann, 0x0a11), one block at clock 0xc000_0000: garbage collected, length 1.
        let update = vec![1, 1, 0x91, 0x14, 0x80, 0x80, 0x80, 0x80, 0x0c, 0, 1, 0];
        let refused = connections[1].send(&update_frame(update)).await;
        assert_eq!(refused.unwrap_err(), close::INVALID_PAYLOAD);
        let room = connections[0].room().clone();
        assert!(room.failure().is_none());
        assert_eq!(room.texts().1, KNOWN);
        assert_document_encodes(&room).unwrap();
    });
}

/// A 20-byte update that yrs integrates into a replica whose whole encoding it then cannot
/// read back (the change itself reads back): every joiner's copy of the document (sync step 2,
/// the page's snapshot) does not decode, and once a compaction stores that encoding, the
/// document no longer loads at all.
#[test]
fn an_update_whose_change_does_not_read_back_is_never_stored() {
    let world = World::new();
    world.runtime.block_on(async {
        let mut connections = world.connections(2).await;
        let writer = replica(0x5eed_0000_1234);
        connections[0]
            .send(&update_frame(insert(&writer, CONTENT, 0, KNOWN)))
            .await
            .unwrap();
        let update = vec![
            0x01, 0x01, 0x16, 0x02, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x02,
            0x02, 0x02, 0xf0, 0x2f, 0xff, 0x06,
        ];
        let _ = connections[1].send(&update_frame(update)).await;
        let room = connections[0].room().clone();
        if room.failure().is_none() {
            assert_document_encodes(&room).unwrap();
        }
        let id = room.id.clone();
        drop((connections, room));
        world.hub.journal().flush().await;
        let again = world.hub.join(id).await.expect("the document still loads");
        assert!(again.room().texts().1.contains(KNOWN));
    });
}

/// Two garbage-collected ranges of one client, the first 32 long and starting 16 below the
/// largest clock. yrs panics encoding the change and panics again dropping the transaction
/// while unwinding, and a panic in a destructor during unwinding aborts the whole process,
/// whatever catches panics: this 16-byte frame stopped the server.
#[test]
fn blocks_past_the_largest_clock_are_refused_before_yrs_sees_them() {
    let world = World::new();
    world.runtime.block_on(async {
        let mut connections = world.connections(1).await;
        let update = vec![1, 2, 5, 0xf0, 0xff, 0xff, 0xff, 0x0f, 0, 0x20, 0, 1, 0];
        let refused = connections[0].send(&update_frame(update)).await;
        assert_eq!(refused.unwrap_err(), close::INVALID_PAYLOAD);
        assert!(connections[0].room().failure().is_none());
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// Two or more messages back to back are refused as a whole, whatever they are.
    #[test]
    fn a_frame_of_several_messages_is_always_refused(messages in prop::collection::vec(message(), 2..50)) {
        let frame: Vec<u8> = messages.iter().flat_map(wire::encode).collect();
        prop_assert_eq!(wire::decode(&frame), Err(wire::WireError::SeveralMessages));
    }
}

// ---------------------------------------------------------------------------------------------
// (c): presence states.

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Eighths print and parse exactly; serde_json may misread other floats by one unit.
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Presence states as clients might send them: objects written compactly, spaciously or with
/// a key twice, other JSON values, and text that is not JSON at all.
fn presence_json() -> impl Strategy<Value = String> {
    let object = || {
        prop::collection::btree_map("\\PC{0,6}", json_value(), 0..4)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()))
    };
    prop_oneof![
        object().prop_map(|v| serde_json::to_string(&v).unwrap()),
        object().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        object().prop_map(|v| format!(" {} ", serde_json::to_string(&v).unwrap())),
        json_value().prop_map(|v| serde_json::to_string_pretty(&v).unwrap()),
        (json_value(), json_value()).prop_map(|(a, b)| format!(r#"{{"user": {a}, "user": {b}}}"#)),
        "\\PC{0,40}",
        "[ {}\\[\\]\":,a-z0-9\\\\]{0,40}",
    ]
    .prop_filter("null removes a state instead", |json| json != "null")
}

/// A presence state is refused, or it reaches the others as a JSON object equal to what was
/// sent, written compactly by the server: never the sender's own bytes when they had anything
/// more (whitespace, a repeated key).
#[test]
fn presence_reaches_others_reencoded_or_not_at_all() {
    check_in_world(256, presence_json(), |world, json| {
        world.runtime.block_on(async {
            let mut connections = world.connections(2).await;
            let sent = connections[0].send(&awareness_frame(7, 1, &json)).await;
            let expected = serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .filter(serde_json::Value::is_object);
            let Some(expected) = expected else {
                prop_assert!(
                    sent.is_err(),
                    "{json:?} is no JSON object, yet was accepted"
                );
                return Ok(());
            };
            if let Err(code) = sent {
                // Only for size: the state has at most 8 KiB.
                prop_assert_eq!(code, close::TOO_BIG, "{:?} refused", json);
                return Ok(());
            }
            let received = connections[1]
                .send(&wire::encode(&Message::AwarenessQuery))
                .await
                .map_err(|code| fail(format!("query refused with {code}")))?;
            let Ok(Message::Awareness(update)) = wire::decode(&received.replies[0]) else {
                return Err(fail("the answer is not presence".into()));
            };
            let relayed = &update.clients[&ClientID::new(7)].json;
            let reparsed: serde_json::Value =
                serde_json::from_str(relayed).map_err(|e| fail(e.to_string()))?;
            prop_assert!(reparsed.is_object());
            prop_assert_eq!(&reparsed, &expected);
            // Written compactly by the server: spacing or a repeated key never passes through.
            prop_assert_eq!(&**relayed, serde_json::to_string(&expected).unwrap());
            Ok(())
        })
    });
}

// ---------------------------------------------------------------------------------------------
// (d): garbage through a room.

const KNOWN: &str = "Known text, written first, survives anything a stranger sends.";

/// Updates a stranger's replica could produce, some with a byte changed, wrapped in frames:
/// these get past the codec and into the shape check and yrs.
fn stranger_update_frame() -> impl Strategy<Value = Vec<u8>> {
    let edits = prop::collection::vec(("\\PC{1,6}", any::<u16>(), any::<bool>()), 1..4);
    (
        0..(1u64 << 53),
        edits,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(client, edits, flips)| {
            let doc = replica(client);
            let mut update = Vec::new();
            for (text, at, title) in edits {
                let root = if title { TITLE } else { CONTENT };
                update = insert(&doc, root, at.into(), &text);
            }
            for (at, value) in flips {
                let at = at.index(update.len());
                update[at] = value;
            }
            update_frame(update)
        })
}

/// Arbitrary frames from a second connection never make the room fail, never panic, and
/// leave the first connection's text where it was; the document still encodes.
#[test]
fn garbage_from_one_connection_leaves_the_others_text_intact() {
    let garbage = prop::collection::vec(prop_oneof![frame_like(), stranger_update_frame()], 1..8);
    check_in_world(160, garbage, |world, frames| {
        world.runtime.block_on(async {
            let mut connections = world.connections(2).await;
            let writer = replica(0x5eed_0000_1234);
            let known = update_frame(insert(&writer, CONTENT, 0, KNOWN));
            prop_assert!(connections[0].send(&known).await.is_ok());
            for frame in &frames {
                match connections[1].send(frame).await {
                    Ok(_) => {}
                    Err(code) => {
                        prop_assert_ne!(code, close::INTERNAL, "{:02x?}", frame);
                        break;
                    }
                }
            }
            let room = connections[0].room().clone();
            prop_assert!(room.failure().is_none());
            let (_, content) = room.texts();
            prop_assert!(content.contains(KNOWN), "{content:?}");
            assert_document_encodes(&room)
        })
    });
}

// ---------------------------------------------------------------------------------------------
// (e): replicas whose updates cross on the way.

#[derive(Debug, Clone)]
enum Edit {
    Insert {
        replica: usize,
        at: u16,
        text: String,
        title: bool,
    },
    Remove {
        replica: usize,
        at: u16,
        len: u16,
    },
    /// `to` catches up with everything `from` has, so its next edits depend on `from`'s.
    Sync {
        from: usize,
        to: usize,
    },
}

const REPLICAS: usize = 3;

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0..REPLICAS, any::<u16>(), "[a-zé😀 ]{1,5}", prop::bool::weighted(0.2))
            .prop_map(|(replica, at, text, title)| Edit::Insert { replica, at, text, title }),
        2 => (0..REPLICAS, any::<u16>(), 1..6u16)
            .prop_map(|(replica, at, len)| Edit::Remove { replica, at, len }),
        2 => (0..REPLICAS, 0..REPLICAS).prop_map(|(from, to)| Edit::Sync { from, to }),
    ]
}

/// Edits from several replicas, each with the order the room receives its update in (updates
/// are delivered by increasing key) and whether it comes as a sync step 2 or an update.
fn crossing_edits() -> impl Strategy<Value = Vec<(Edit, u8, bool)>> {
    prop::collection::vec((edit(), any::<u8>(), any::<bool>()), 1..40)
}

/// However the updates of several replicas are ordered on the way, once all have arrived the
/// room holds the replicas' merged text: updates that came before what they depend on wait and
/// are applied when it arrives.
#[test]
fn updates_arriving_in_any_order_end_in_the_merged_text() {
    check_in_world(32, crossing_edits(), |world, edits| {
        let replicas: Vec<Doc> = (0..REPLICAS).map(|i| replica(i as u64 + 1)).collect();
        let mut updates: Vec<(u8, usize, bool, Vec<u8>)> = Vec::new();
        for (edit, key, as_step2) in &edits {
            let (replica, update) = match edit {
                Edit::Insert {
                    replica,
                    at,
                    text,
                    title,
                } => {
                    let root = if *title { TITLE } else { CONTENT };
                    (
                        *replica,
                        insert(&replicas[*replica], root, (*at).into(), text),
                    )
                }
                Edit::Remove { replica, at, len } => (
                    *replica,
                    remove(&replicas[*replica], CONTENT, (*at).into(), (*len).into()),
                ),
                Edit::Sync { from, to } => {
                    let missing = replicas[*from]
                        .transact()
                        .encode_diff_v1(&replicas[*to].transact().state_vector());
                    replicas[*to]
                        .transact_mut()
                        .apply_update(Update::decode_v1(&missing).unwrap())
                        .unwrap();
                    continue;
                }
            };
            updates.push((*key, replica, *as_step2, update));
        }
        let merged = replica(99);
        for (_, _, _, update) in &updates {
            merged
                .transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
        updates.sort_by_key(|(key, ..)| *key);
        world.runtime.block_on(async {
            let mut connections = world.connections(REPLICAS).await;
            for (_, replica, as_step2, update) in updates {
                let message = if as_step2 {
                    SyncMessage::SyncStep2(update)
                } else {
                    SyncMessage::Update(update)
                };
                let frame = wire::encode(&Message::Sync(message));
                let sent = connections[replica].send(&frame).await;
                prop_assert!(sent.is_ok(), "refused with {:?}", sent.err());
            }
            let room = connections[0].room().clone();
            prop_assert_eq!(room.texts(), protocol::texts_of(&merged));
            assert_document_encodes(&room)
        })
    });
}

/// A chain of answers, each depending on the one before, arriving backwards from one
/// connection each: the last to arrive unblocks the next, which unblocks the next, and so on.
#[test]
fn a_chain_of_updates_arriving_backwards_is_applied_whole() {
    const LINKS: usize = 6;
    let world = World::new();
    world.runtime.block_on(async {
        let authors: Vec<Doc> = (1..=LINKS as u64).map(replica).collect();
        let mut updates = Vec::new();
        for (i, author) in authors.iter().enumerate() {
            if i > 0 {
                let before = authors[i - 1]
                    .transact()
                    .encode_diff_v1(&StateVector::default());
                author
                    .transact_mut()
                    .apply_update(Update::decode_v1(&before).unwrap())
                    .unwrap();
            }
            updates.push(insert(author, CONTENT, i as u32, &i.to_string()));
        }
        let mut connections = world.connections(LINKS).await;
        for (i, update) in updates.into_iter().enumerate().rev() {
            connections[i].send(&update_frame(update)).await.unwrap();
        }
        assert_eq!(connections[0].room().texts().1, "012345");
    });
}

/// A client back from offline sends its own edits merged into one update, W then X, where X
/// answers V, an edit of someone else's that answered W and reached the room first (and
/// waits for W). The update unblocks V, and V unblocks the rest of the update.
#[test]
fn an_update_that_unblocks_a_waiting_one_which_it_needs_is_applied_whole() {
    let world = World::new();
    world.runtime.block_on(async {
        let (a, b) = (replica(1), replica(2));
        let w = insert(&a, CONTENT, 0, "W");
        b.transact_mut()
            .apply_update(Update::decode_v1(&w).unwrap())
            .unwrap();
        let v = insert(&b, CONTENT, 1, "V");
        a.transact_mut()
            .apply_update(Update::decode_v1(&v).unwrap())
            .unwrap();
        let x = insert(&a, CONTENT, 2, "X");
        let offline = yrs::merge_updates_v1([w.as_slice(), &x]).unwrap();
        let mut connections = world.connections(2).await;
        connections[1].send(&update_frame(v)).await.unwrap();
        connections[0].send(&update_frame(offline)).await.unwrap();
        assert_eq!(connections[0].room().texts().1, "WVX");
    });
}

/// One author's three edits arrive 2, 3, 1. The third touches only the title and integrates at
/// once, past a hole in the author's clocks; the second waits for the first. When the first
/// arrives, the second must follow it, though the author's clock already reads past both.
#[test]
fn an_edit_overtaken_by_its_authors_later_edit_is_not_lost() {
    let world = World::new();
    world.runtime.block_on(async {
        let author = replica(1);
        let first = insert(&author, CONTENT, 0, "a");
        let second = insert(&author, CONTENT, 0, " ");
        let third = insert(&author, TITLE, 0, "😀");
        let mut connections = world.connections(1).await;
        for update in [second, third, first] {
            connections[0].send(&update_frame(update)).await.unwrap();
        }
        assert_eq!(
            connections[0].room().texts(),
            ("😀".to_string(), " a".to_string())
        );
    });
}

/// An item whose right origin lies left of its left origin: Bob's text claims to go after
/// Ann's 13th character and before her 10th. Wherever it lands, the room must read as the
/// document it hands to the next joiner, whichever of the two updates arrived first.
///
/// yrs does not: the server cannot tell such an item from an ordinary one without walking the
/// text (an item typed before the one to its left is ordinary), and the harm is confined to the
/// order of characters in a text the sender may edit anyway (see `fuzz/src/lib.rs`).
#[test]
#[ignore = "known divergence inside yrs: an item whose origins cross is placed otherwise in the replica than in its encoding"]
fn an_item_whose_origins_cross_reads_the_same_in_the_room_and_in_its_encoding() {
    let world = World::new();
    world.runtime.block_on(async {
        let ann = replica(0x0a11);
        let typed = insert(&ann, CONTENT, 0, "0123456789abcdefghij");
        // Bob (0x0b09): one string with left origin (Ann, 12) and right origin (Ann, 9).
        let crossing = [
            &[1, 1, 0x89, 0x16, 0, 0xc4, 0x91, 0x14, 12, 0x91, 0x14, 9, 9][..],
            b"> quoted ",
            &[0],
        ]
        .concat();
        for bob_first in [false, true] {
            let mut connections = world.connections(2).await;
            let mut frames = vec![(0, typed.clone()), (1, crossing.clone())];
            if bob_first {
                frames.reverse();
            }
            for (conn, update) in frames {
                connections[conn].send(&update_frame(update)).await.unwrap();
            }
            let room = connections[0].room().clone();
            let update = Update::decode_v1(&room.full_update()).unwrap();
            let fresh = protocol::new_doc();
            fresh.transact_mut().apply_update(update).unwrap();
            assert_eq!(
                protocol::texts_of(&fresh),
                room.texts(),
                "Bob's update first: {bob_first}"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The fuzzers' seed corpus.

/// Writes `fuzz/corpus/<target>/<name>` for each seed, replacing what is there: real frames
/// and updates, and a few hostile ones. Run with
/// `cargo test --no-default-features --features ssr --test properties -- --ignored fuzz_seeds`.
#[test]
#[ignore = "writes the fuzz corpus into the source tree"]
fn fuzz_seeds() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };

    // Someone typing a few words, a title, then a correction.
    let ann = replica(0x0a11);
    let hello = insert(&ann, CONTENT, 0, "Hello");
    let world = insert(&ann, CONTENT, 5, " **world**, from Tandem");
    let title = insert(&ann, TITLE, 0, "Notes");
    let correction = remove(&ann, CONTENT, 0, 6);
    let full = ann.transact().encode_diff_v1(&StateVector::default());
    let sv = ann.transact().state_vector();
    // A second replica answering Ann, which depends on what she wrote.
    let bob = replica(0x0b0b);
    bob.transact_mut()
        .apply_update(Update::decode_v1(&full).unwrap())
        .unwrap();
    let reply = insert(&bob, CONTENT, 3, "> quoted ");
    // Hostile updates: a map entry where every editor reads a text, values in the title.
    let map_in_content = {
        let doc = Doc::with_client_id(0x0bad);
        let map = doc.get_or_insert_map(CONTENT);
        let mut txn = doc.transact_mut();
        map.insert(&mut txn, "k", "v");
        txn.encode_update_v1()
    };
    let values_in_title = {
        let doc = Doc::with_client_id(0x0bad);
        let array = doc.get_or_insert_array(TITLE);
        let mut txn = doc.transact_mut();
        yrs::Array::push_back(&array, &mut txn, 42);
        txn.encode_update_v1()
    };
    let updates: [(&str, &[u8]); 8] = [
        ("hello", &hello),
        ("world", &world),
        ("title", &title),
        ("correction", &correction),
        ("full", &full),
        ("reply_with_missing_dependency", &reply),
        ("map_in_content", &map_in_content),
        ("values_in_title", &values_in_title),
    ];
    for (name, update) in updates {
        write("update_shape", name, update);
    }

    let step1 = |sv: StateVector| wire::encode(&Message::Sync(SyncMessage::SyncStep1(sv)));
    let ann_state =
        r##"{"user":{"name":"Ann","color":"#3b82f6","colorLight":"#3b82f633"},"cursor":null}"##;
    let frames: Vec<(&str, Vec<u8>)> = vec![
        ("sync_step1_empty", step1(StateVector::default())),
        ("sync_step1", step1(sv)),
        (
            "sync_step2",
            wire::encode(&Message::Sync(SyncMessage::SyncStep2(full.clone()))),
        ),
        ("update_typing", update_frame(world.clone())),
        ("update_title", update_frame(title.clone())),
        ("update_deletion", update_frame(correction.clone())),
        ("update_missing_dependency", update_frame(reply.clone())),
        ("awareness_state", awareness_frame(0x0a11, 1, ann_state)),
        ("awareness_removal", awareness_frame(0x0a11, 2, "null")),
        ("awareness_query", wire::encode(&Message::AwarenessQuery)),
        (
            "heartbeat",
            wire::encode(&Message::Custom(protocol::MSG_PING, Vec::new())),
        ),
        ("auth", wire::encode(&Message::Auth(None))),
        ("hostile_two_messages", {
            let mut two = step1(StateVector::default());
            two.extend(wire::encode(&Message::AwarenessQuery));
            two
        }),
        (
            "hostile_map_in_content",
            update_frame(map_in_content.clone()),
        ),
        ("hostile_values_in_title", update_frame(values_in_title)),
    ];
    for (name, frame) in &frames {
        write("frame_decoder", name, frame);
    }

    // The room target reads frames as: header byte (low bit: which connection), u16 length
    // (little-endian), the frame.
    let session = |steps: &[(u8, &[u8])]| {
        let mut input = Vec::new();
        for (conn, frame) in steps {
            input.push(*conn);
            input.extend((frame.len() as u16).to_le_bytes());
            input.extend(*frame);
        }
        input
    };
    let frame = |name: &str| {
        frames
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| f.as_slice())
            .unwrap()
    };
    let hello_frame = update_frame(hello);
    let full_frame = frame("sync_step2");
    let reply_frame = update_frame(reply);
    let sessions: Vec<(&str, Vec<u8>)> = vec![
        (
            "typing",
            session(&[
                (0, frame("sync_step1_empty")),
                (0, &hello_frame),
                (0, frame("update_typing")),
                (1, frame("sync_step1_empty")),
                (0, frame("update_title")),
                (1, frame("update_deletion")),
            ]),
        ),
        (
            "crossing",
            session(&[(1, &reply_frame), (0, full_frame), (1, frame("sync_step1"))]),
        ),
        (
            "presence",
            session(&[
                (0, frame("awareness_state")),
                (1, frame("awareness_query")),
                (0, frame("heartbeat")),
                (1, frame("awareness_state")),
                (0, frame("awareness_removal")),
            ]),
        ),
        (
            "hostile",
            session(&[
                (0, full_frame),
                (1, frame("hostile_map_in_content")),
                (0, frame("hostile_two_messages")),
            ]),
        ),
    ];
    for (name, input) in sessions {
        write("room_receive", name, &input);
    }
}
