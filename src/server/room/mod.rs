//! One open document: its replica, its presence, its durability and its fan-out.
//!
//! # Layout
//! - this module: the room's state and the dispatch of one frame from one connection.
//! - [`durability`]: applying an update, storing it, and only then broadcasting it.
//! - [`presence`]: awareness states, owned by the connections that set them, bounded.
//! - [`pending`]: updates waiting for what they depend on, bounded in bytes and time.
//! - [`shape`]: refusing updates that would make a text into something else.
//! - [`runs`]: joining runs of characters before yrs integrates them.
//! - [`metered`]: applying an update block by block, within a time limit.
//! - [`remote`]: changes and presence from the other instances sharing the store.
//!
//! Protocol handling here is sans-IO: [`Room::receive`] takes the bytes of one frame from one
//! connection and returns the replies for that connection; nothing here owns a socket.
//!
//! **What one frame can cost.** A frame holds exactly one message ([`protocol::wire`]). A sync
//! step 1 is answered with at most one encoding of the document (shared by everyone asking the
//! same question of the same version); an awareness query with one encoding of everyone's
//! presence (shared until it changes); an update is checked, decoded and integrated once, and
//! what it changed is encoded once for storage and fan-out. Each answer reports its size as a
//! cost, which the session charges against the connection's message rate, so asking for the
//! whole document over and over runs out of allowance quickly.
//!
//! If storing fails or integration panics, the room is failed: it accepts no more changes, its
//! connections are closed with 1011, and the next connection loads the document afresh from
//! the store.

pub mod authors;
mod durability;
mod fanout;
mod history;
pub mod metered;
pub mod pending;
pub mod presence;
mod presence_batch;
pub mod remote;
pub mod revocation;
pub mod runs;
pub mod shape;

pub use fanout::Broadcast;
pub use presence::{Presence, PresenceLimits, PRESENCE_SWEEP, PRESENCE_TIMEOUT};
pub use presence_batch::{send_presence_batches, PRESENCE_BATCH};
pub use remote::{Relay, RemoteError};

use super::error::CloseReason;
use super::journal::Journal;
use super::redact::{doc_tag, DocTag};
use crate::doc_id::DocId;
use crate::protocol::{self, wire};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;
use yrs::sync::{Message, SyncMessage};
use yrs::{Doc, ReadTxn, StateVector, Transact};

/// Identifies a connection within the process, so a broadcast can skip its own sender.
pub type ConnId = u64;

/// When the stored log of a document is merged into its snapshot, and how large a document
/// may grow.
#[derive(Debug, Clone, Copy)]
pub struct RoomPolicy {
    pub compact_after_updates: usize,
    pub compact_after_bytes: usize,
    /// Largest document, in bytes of its stored form (snapshot plus log).
    pub max_doc_bytes: usize,
    /// Longest one message may take to integrate (see [`metered`]).
    pub integration_time_limit: std::time::Duration,
    pub presence: PresenceLimits,
}

/// How a room starts: its replica and what the store holds beyond the snapshot.
pub struct Loaded {
    pub doc: Doc,
    /// Bytes of the stored snapshot.
    pub snapshot_bytes: usize,
    /// Log position of the newest stored update.
    pub last_seq: i64,
    pub tail_updates: usize,
    pub tail_bytes: usize,
}

/// The outcome of one frame.
#[derive(Default)]
pub struct Received {
    /// Frames for the sender.
    pub replies: Vec<Bytes>,
    /// The frame carried document changes, and they are now durable ([`Room::receive`]).
    pub stored: bool,
    /// The frame carried document changes, durable once this resolves ([`Room::accept`]).
    pub durable: Option<Durable>,
    /// What answering cost, in messages' worth, beyond the message itself: large answers
    /// count as many messages against the connection's rate (see [`COST_UNIT_BYTES`]).
    pub cost: u32,
    /// How long integrating took, in messages' worth (see [`COST_UNIT_MILLIS`]): charged up
    /// to the whole burst, so one slow update passes and a second in a row closes its sender.
    pub slow_cost: u32,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Received")
            .field("replies", &self.replies.len())
            .field("stored", &self.stored)
            .field("durable", &self.durable.is_some())
            .field("cost", &self.cost)
            .field("slow_cost", &self.slow_cost)
            .finish()
    }
}

/// Resolves once an accepted change is stored (it is broadcast then too), or with the reason
/// it never will be.
pub type Durable =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CloseReason>> + Send>>;

/// An answer this large counts as one more message against the sender's rate.
pub const COST_UNIT_BYTES: usize = 64 * 1024;
/// Integrating an update for this long counts as one more message against the sender's rate:
/// ordinary edits take microseconds, a large reconnect up to a second or two (a hundred or two,
/// well within the burst of 600).
pub const COST_UNIT_MILLIS: u128 = 10;
/// How long one message may take to integrate by default, with the held updates it sets off:
/// ordinary edits take microseconds, a large reconnect milliseconds. What went in by then
/// is kept, stored and broadcast; the rest is refused and its sender closed with 1008.
pub const INTEGRATION_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Room {
    pub id: DocId,
    /// The id as it may appear in logs (a keyed hash: the id itself is a capability).
    pub tag: DocTag,
    /// The replica and bookkeeping. A std mutex: every operation on it is short and
    /// synchronous, and it is never held across an `.await`.
    state: Mutex<State>,
    /// The presence registry's entry count (see [`presence::Registry::counter`]).
    presence_count: Arc<std::sync::atomic::AtomicUsize>,
    /// What the store holds; locked after `state` when both are needed, never before.
    ledger: Mutex<Ledger>,
    /// Fan-out of encoded frames. A bounded ring: a receiver that falls more than its
    /// capacity behind learns it has lagged and is closed, rather than holding memory.
    updates: broadcast::Sender<Broadcast>,
    journal: Journal,
    policy: RoomPolicy,
    presence_limits: PresenceLimits,
    /// Sequence number of the newest change known to be durable; see `State::applied`.
    durable: watch::Sender<u64>,
    /// Cancelled when the room stops accepting changes; the reason is in `State::failure`.
    failed: CancellationToken,
    /// Set by [`Room::panic_in_next_integration`].
    panic_next: std::sync::atomic::AtomicBool,
    /// Where changes stored here are announced to other instances, once the room is
    /// followed (see [`remote`]).
    relay: std::sync::OnceLock<Arc<dyn Relay>>,
    /// Notified when a commit here advances the followed log position.
    advanced: tokio::sync::Notify,
    /// Links taken back while the room is open (see [`revocation`]).
    revoked: watch::Sender<revocation::Revoked>,
    /// Presence gathered while it comes faster than one message per window (see
    /// [`presence_batch`]); locked on its own, never with `state`.
    presence_batch: Mutex<presence_batch::PresenceBatch>,
    /// Wakes the room's batch task.
    presence_due: Arc<tokio::sync::Notify>,
    /// Changes of the commit in progress, published together when it ends (see [`fanout`]).
    staged: Mutex<fanout::Staged>,
}

/// What the store holds of the document. Apart from [`State`], whose lock an update holds while
/// it integrates (up to the time limit): the journal's threads, shared by every document, update
/// this when a commit or compaction ends and must never wait for an integration.
struct Ledger {
    /// Log position of the newest stored update of this document.
    last_seq: i64,
    /// Updates and bytes stored since the last compaction.
    tail_updates: usize,
    tail_bytes: usize,
    /// Size of the document's stored form: the snapshot plus the log since.
    stored_bytes: usize,
    /// Bytes of changes applied here and on their way to the store: they count against the
    /// size limit before they land, so a writer whose changes are pipelined cannot overshoot
    /// it by what is in flight.
    unstored_bytes: usize,
    /// A compaction is being encoded or stored; another waits for the next trigger.
    compacting: bool,
    /// Log position the newest compaction built here covers: a record at or before it is in
    /// the snapshot, and no longer counts toward the tail when it is heard of late (another
    /// instance's change applied after this instance compacted the log that held it).
    compacted_upto: i64,
    /// How far the replica holds the log, once other instances write to it too.
    followed: Option<remote::LogPosition>,
}

impl Ledger {
    /// What the document's stored form will weigh once what is in flight lands.
    fn bytes_toward_limit(&self) -> usize {
        self.stored_bytes + self.unstored_bytes
    }
}

struct State {
    doc: Doc,
    presence: presence::Registry,
    pending: pending::PendingUpdates,
    authors: authors::Authors,
    /// Sequence number of the newest change applied to the replica (counted from 0 at load).
    applied: u64,
    /// The last sync step 2 answered, for the state vector it answered and the replica version
    /// it came from: when many clients join at once they mostly ask the same question, and the
    /// document is encoded once per version rather than once per joiner.
    last_answer: Option<(u64, StateVector, Bytes)>,
    /// Why the room stopped accepting changes, as its editors are told.
    failure: Option<String>,
    /// When the next version for the History is due, and who wrote since the last.
    versions: history::VersionClock,
    /// Presence relayed by other instances, by the pseudo connection of each.
    remote: std::collections::HashMap<ConnId, Presence>,
}

impl Room {
    pub fn new(
        id: DocId,
        loaded: Loaded,
        journal: Journal,
        policy: RoomPolicy,
        fanout_capacity: usize,
    ) -> Self {
        let (updates, _) = broadcast::channel(fanout_capacity.max(1));
        let presence = presence::Registry::default();
        Room {
            tag: doc_tag(&id),
            id,
            presence_count: presence.counter(),
            state: Mutex::new(State {
                doc: loaded.doc,
                presence,
                pending: pending::PendingUpdates::default(),
                authors: authors::Authors::default(),
                applied: 0,
                last_answer: None,
                failure: None,
                versions: history::VersionClock::default(),
                remote: Default::default(),
            }),
            ledger: Mutex::new(Ledger {
                last_seq: loaded.last_seq,
                tail_updates: loaded.tail_updates,
                tail_bytes: loaded.tail_bytes,
                stored_bytes: loaded.snapshot_bytes + loaded.tail_bytes,
                unstored_bytes: 0,
                compacting: false,
                compacted_upto: 0,
                followed: None,
            }),
            updates,
            journal,
            presence_limits: policy.presence,
            policy,
            durable: watch::Sender::new(0),
            failed: CancellationToken::new(),
            panic_next: std::sync::atomic::AtomicBool::new(false),
            relay: std::sync::OnceLock::new(),
            advanced: tokio::sync::Notify::new(),
            revoked: watch::Sender::new(revocation::Revoked::default()),
            presence_batch: Mutex::default(),
            presence_due: Arc::default(),
            staged: Mutex::default(),
        }
    }

    /// Connections taking the room's broadcasts.
    pub fn readers(&self) -> usize {
        self.updates.receiver_count()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.updates.subscribe()
    }

    /// Fires when the room stops accepting changes (storage failed, or the replica did).
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Makes the next integration panic after yrs has applied the update, as yrs itself did on
    /// inputs the shape check now refuses. Every input known to panic yrs is refused before it
    /// gets there, so this is how the containment around integration is exercised.
    #[doc(hidden)]
    pub fn panic_in_next_integration(&self) {
        self.panic_next
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Why the room failed, once it has.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Stops the room: no more changes, every editor closed with 1011 and `reason`, and the
    /// next connection loads the document afresh.
    fn fail(&self, state: &mut State, reason: String) {
        tracing::error!(doc = %self.tag, %reason, "room failed; its editors are closed and the next join reloads it");
        state.failure.get_or_insert(reason);
        self.failed.cancel();
    }

    /// The frames a new connection receives first: the room's state vector (sync step 1) and,
    /// when anyone is present, everyone's presence.
    pub fn greeting(&self) -> Vec<Bytes> {
        let sv = self.lock().doc.transact().state_vector();
        let mut frames = vec![encode(Message::Sync(SyncMessage::SyncStep1(sv)))];
        frames.extend(self.everyone_present());
        frames
    }

    /// Handles one binary frame from connection `from` and waits until the changes it carried
    /// are durable. Changes for the others are broadcast once they are.
    pub async fn receive(
        self: &Arc<Self>,
        from: ConnId,
        presence: &mut Presence,
        frame: &Bytes,
    ) -> Result<Received, CloseReason> {
        let mut received = self.accept(from, presence, frame).await?;
        if let Some(durable) = received.durable.take() {
            durable.await?;
            received.stored = true;
        }
        Ok(received)
    }

    /// Handles one binary frame from connection `from` without waiting for its changes to be
    /// stored: the caller waits on [`Received::durable`], and may read the connection's next
    /// frame meanwhile. Changes are stored (and then broadcast) in the order accepted.
    pub async fn accept(
        self: &Arc<Self>,
        from: ConnId,
        presence: &mut Presence,
        frame: &Bytes,
    ) -> Result<Received, CloseReason> {
        if self.deleted() {
            return Err(CloseReason::deleted());
        }
        let message = wire::decode(frame).map_err(|e| CloseReason::invalid(e.to_string()))?;
        let mut received = Received::default();
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let reply = self.sync_step2_for(&sv).await?;
                received.cost = (reply.len() / COST_UNIT_BYTES) as u32;
                received.replies.push(reply);
            }
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update))
                if presence.viewer =>
            {
                // A viewer's page answers the greeting with what it has beyond the document:
                // nothing, as a rule. Anything else is refused the way y-protocols says, and
                // never applied, stored or relayed.
                if update != EMPTY_UPDATE {
                    tracing::debug!(doc = %self.tag, conn = from, bytes = update.len(), "a viewer's change refused");
                    received.replies.push(permission_denied());
                }
            }
            Message::Sync(SyncMessage::SyncStep2(update)) => {
                let (cost, slow_cost, durable) =
                    self.apply_update(from, presence, &update, false).await?;
                (received.cost, received.slow_cost) = (cost, slow_cost);
                received.durable = Some(durable);
            }
            Message::Sync(SyncMessage::Update(update)) => {
                let (cost, slow_cost, durable) =
                    self.apply_update(from, presence, &update, true).await?;
                (received.cost, received.slow_cost) = (cost, slow_cost);
                received.durable = Some(durable);
            }
            Message::Awareness(update) => self.receive_presence(from, presence, update)?,
            Message::AwarenessQuery => {
                if let Some(everyone) = self.everyone_present() {
                    received.cost = (everyone.len() / COST_UNIT_BYTES) as u32;
                    received.replies.push(everyone);
                }
            }
            // Authentication is not part of Tandem's protocol: the link is the key.
            Message::Auth(_) => {}
            Message::Custom(protocol::MSG_PING, _) => {
                received.replies.push(pong());
            }
            Message::Custom(tag, _) => {
                return Err(CloseReason::unsupported(format!(
                    "unknown message type {tag}"
                )))
            }
        }
        Ok(received)
    }

    /// The document's title and text, for server-side rendering.
    pub fn texts(&self) -> (String, String) {
        protocol::read_texts(&self.lock().doc.transact())
    }

    /// The whole document as one update, for a page to start its replica from. Never
    /// includes updates still waiting for what they depend on.
    pub fn full_update(&self) -> Vec<u8> {
        self.lock()
            .doc
            .transact()
            .encode_diff_v1(&StateVector::default())
    }

    /// The title, the text and the whole document as one update, once all of it is stored:
    /// a page or a download shows nothing a crash could still take back, as nothing broadcast
    /// is (changes are applied before they are stored, and several may be in flight).
    pub async fn settled_snapshot(&self) -> Result<(String, String, Vec<u8>), CloseReason> {
        let (title, content, update, applied) = {
            let state = self.lock();
            let txn = state.doc.transact();
            let (title, content) = protocol::read_texts(&txn);
            let update = txn.encode_diff_v1(&StateVector::default());
            (title, content, update, state.applied)
        };
        self.durable_at(applied).await?;
        Ok((title, content, update))
    }

    /// [`Room::texts`], once all of it is stored (see [`Room::settled_snapshot`]).
    pub async fn settled_texts(&self) -> Result<(String, String), CloseReason> {
        let (texts, applied) = {
            let state = self.lock();
            let texts = protocol::read_texts(&state.doc.transact());
            (texts, state.applied)
        };
        self.durable_at(applied).await?;
        Ok(texts)
    }

    async fn sync_step2_for(&self, sv: &StateVector) -> Result<Bytes, CloseReason> {
        let (answer, applied) = {
            let mut state = self.lock();
            let applied = state.applied;
            let cached = match &state.last_answer {
                Some((version, asked, answer)) if *version == applied && asked == sv => {
                    Some(answer.clone())
                }
                _ => None,
            };
            let answer = cached.unwrap_or_else(|| {
                let update = state.doc.transact().encode_diff_v1(sv);
                let answer = encode(Message::Sync(SyncMessage::SyncStep2(update)));
                state.last_answer = Some((applied, sv.clone(), answer.clone()));
                answer
            });
            (answer, applied)
        };
        // The answer may contain changes still on their way to disk: wait for them.
        self.durable_at(applied).await?;
        Ok(answer)
    }

    /// The replica and its bookkeeping. An update holds this while it integrates, up to the
    /// time limit; a runtime worker that finds it taken tells the runtime it is about to wait
    /// (`block_in_place`), so that the runtime's other tasks, every other document's among
    /// them, move to another thread instead of waiting with it.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it. Integration runs under
        // `catch_unwind` and fails the room itself; anything else left the state consistent.
        let wait = || {
            self.state
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        match self.state.try_lock() {
            Ok(state) => state,
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let on_worker = tokio::runtime::Handle::try_current().is_ok_and(|runtime| {
                    runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                });
                if on_worker {
                    tokio::task::block_in_place(wait)
                } else {
                    wait()
                }
            }
        }
    }

    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // Only counters are changed under it, never left half-done.
        self.ledger
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn encode(message: Message) -> Bytes {
    frame(wire::encode(&message))
}

/// `encoded` as a frame to keep: trimmed to its length first. yrs's encoder starts with room
/// for a kilobyte, and `Bytes` keeps whatever capacity its vector had, so a keystroke kept
/// untrimmed in the broadcast ring, or a confirmation kept by each connection, would hold a
/// kilobyte for a few dozen bytes.
pub fn frame(mut encoded: Vec<u8>) -> Bytes {
    encoded.shrink_to_fit();
    Bytes::from(encoded)
}

/// An update that changes nothing (no blocks, no deletions), as a client with nothing to add
/// sends it.
const EMPTY_UPDATE: &[u8] = &[0, 0];

/// The y-protocols answer to a change from a connection that may not write.
fn permission_denied() -> Bytes {
    static DENIED: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    DENIED
        .get_or_init(|| encode(Message::Auth(Some("permission-denied".into()))))
        .clone()
}

/// The answer to a page's heartbeat.
fn pong() -> Bytes {
    static PONG: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    PONG.get_or_init(|| encode(Message::Custom(protocol::MSG_PONG, Vec::new())))
        .clone()
}

#[cfg(test)]
mod tests;
