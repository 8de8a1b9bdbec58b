//! A stranger's frames through a real room: a hub over a SQLite store in a temporary directory,
//! two connections to one document, every frame handled by `Room::receive` as the session
//! would. Nothing may panic (yrs panicking inside integration included: the fuzzer's panic hook
//! aborts even on panics the room catches), the room must never fail, and after every accepted
//! frame the room's document must still encode, decode and read as two texts.
//!
//! Input: up to [`MAX_FRAMES`] frames, each a header byte (its low bit picks the connection)
//! and a little-endian `u16` length, then that many bytes (fewer at the end of the input).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tandem::doc_id::DocId;
use tandem::protocol::{self, close};
use tandem::server::hub::{Hub, Membership};
use tandem::server::journal::Journal;
use tandem::server::room::{Presence, Room, RoomPolicy};
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::DocStore;
use yrs::updates::decoder::Decode;
use yrs::{Transact, Update};

const MAX_FRAMES: usize = 8;

/// What every run shares: building a runtime and opening a store per run would cost more
/// than the run itself. Each run uses a document of its own.
struct World {
    runtime: tokio::runtime::Runtime,
    hub: Hub,
    next_doc: AtomicU64,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn DocStore> =
            Arc::new(SqliteStore::open(dir.path(), 0).expect("the store opens"));
        let journal = Journal::start(store.clone(), 64);
        let policy = RoomPolicy {
            compact_after_updates: 4,
            compact_after_bytes: 64 * 1024,
            max_doc_bytes: 1 << 20,
            integration_time_limit: tandem::server::room::INTEGRATION_TIME_LIMIT,
            presence: Default::default(),
        };
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            hub: Hub::new(store, journal, policy, 64),
            next_doc: AtomicU64::new(1),
            _dir: dir,
        }
    })
}

/// Splits the input into frames, each from connection 0 or 1.
fn frames(mut data: &[u8]) -> Vec<(usize, Bytes)> {
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES && data.len() >= 3 {
        let conn = usize::from(data[0] & 1);
        let len = usize::from(u16::from_le_bytes([data[1], data[2]]));
        let end = (3 + len).min(data.len());
        let frame = &data[3..end];
        if !tandem_fuzz::frame_origins_do_not_cross(frame) {
            break;
        }
        frames.push((conn, Bytes::copy_from_slice(frame)));
        data = &data[end..];
    }
    frames
}

/// The room's whole document applies to a fresh replica, which then reads as the room does.
fn check_document(room: &Room) {
    let full = room.full_update();
    let update = Update::decode_v1(&full).expect("the room's document decodes");
    let fresh = protocol::new_doc();
    fresh
        .transact_mut()
        .apply_update(update)
        .expect("the room's document applies to a fresh replica");
    assert_eq!(
        protocol::texts_of(&fresh),
        room.texts(),
        "a fresh replica reads the room's document as the room does"
    );
}

async fn run(world: &World, data: &[u8]) {
    let n = world.next_doc.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&n.to_le_bytes());
    let id = DocId::from_random_bytes(raw);
    let mut members: Vec<(Membership, Presence, bool)> = Vec::new();
    for _ in 0..2 {
        let member = world.hub.join(id.clone()).await.expect("the room opens");
        members.push((member, Presence::default(), true));
    }
    for (conn, frame) in frames(data) {
        let (member, presence, open) = &mut members[conn];
        if !*open {
            continue;
        }
        let room = member.room().clone();
        match room.receive(member.conn, presence, &frame).await {
            Ok(_) => check_document(&room),
            Err(reason) => {
                assert_ne!(
                    reason.code,
                    close::INTERNAL,
                    "the room failed on {frame:02x?}: {}",
                    reason.reason
                );
                // The session closes a refused connection and leaves the room.
                room.leave(member.conn, presence);
                *open = false;
            }
        }
    }
    for (member, presence, open) in &members {
        if *open {
            member.room().leave(member.conn, presence);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    world.runtime.block_on(run(world, data));
});
