//! One open document: its replica, its awareness, its durability and its fan-out.
//!
//! Protocol handling here is sans-IO: [`Room::receive`] takes the bytes of one frame from one
//! connection and returns the replies for that connection; nothing here owns a socket.
//!
//! An accepted update goes through three steps, always in this order: it is applied to the
//! replica, stored by the [`Journal`], and only then broadcast, from the journal's commit
//! callback. So whatever anyone has seen is on disk, even after a `kill -9`. Answers that
//! reveal the replica (sync step 2) likewise wait until what they contain is durable.
//!
//! If storing fails, the room is failed: it accepts no more changes, its connections are
//! closed with 1011, and the next connection loads the document afresh from the store.

use super::error::CloseReason;
use super::journal::Journal;
use super::storage::{Compaction, NewUpdate, StoreError};
use crate::doc_id::DocId;
use crate::protocol;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, oneshot, watch};
use tokio_util::sync::CancellationToken;
use yrs::encoding::read::Cursor;
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, ReadTxn, StateVector, Transact, Update};

/// Identifies a connection within the process, so a broadcast can skip its own sender.
pub type ConnId = u64;

/// A frame published to every connection of a room except `from`.
#[derive(Clone, Debug)]
pub struct Broadcast {
    pub from: ConnId,
    pub frame: Bytes,
}

/// What a connection introduced into the room, so that leaving can undo it.
#[derive(Debug, Default)]
pub struct Presence {
    /// Awareness client ids this connection has set a state for.
    pub awareness_clients: HashSet<ClientID>,
}

/// Awareness states not renewed for this long are removed: a client that vanished without
/// a word (a closed laptop, a dead network) stops showing as present.
pub const PRESENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// How often a room looks for expired awareness states.
pub const PRESENCE_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Awareness time from tokio's clock, so that expiry follows `tokio::time::pause` in tests.
struct TokioClock {
    start: tokio::time::Instant,
}

impl yrs::sync::Clock for TokioClock {
    fn now(&self) -> yrs::sync::Timestamp {
        self.start.elapsed().as_millis() as yrs::sync::Timestamp
    }
}

/// When the stored log of a document is merged into its snapshot, and how large a document
/// may grow.
#[derive(Debug, Clone, Copy)]
pub struct RoomPolicy {
    pub compact_after_updates: usize,
    pub compact_after_bytes: usize,
    /// Largest document, in bytes of its stored form (snapshot plus log).
    pub max_doc_bytes: usize,
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
#[derive(Debug, Default)]
pub struct Received {
    /// Frames for the sender.
    pub replies: Vec<Bytes>,
    /// The frame carried document changes, and they are now durable.
    pub stored: bool,
}

pub struct Room {
    pub id: DocId,
    /// The replica and bookkeeping. A std mutex: every operation on it is short and
    /// synchronous, and it is never held across an `.await`.
    state: Mutex<State>,
    /// Fan-out of encoded frames. A bounded ring: a receiver that falls more than its
    /// capacity behind learns it has lagged and is closed, rather than holding memory.
    updates: broadcast::Sender<Broadcast>,
    journal: Journal,
    policy: RoomPolicy,
    /// Sequence number of the newest change known to be durable; see `State::applied`.
    durable: watch::Sender<u64>,
    /// Cancelled when storing failed; the reason is in `State::failure`.
    failed: CancellationToken,
    /// Origin of the awareness clock.
    opened: tokio::time::Instant,
}

struct State {
    awareness: Awareness,
    /// Sequence number of the newest change applied to the replica (counted from 0 at load).
    applied: u64,
    /// Log position of the newest stored update of this document.
    last_seq: i64,
    /// Updates and bytes stored since the last compaction.
    tail_updates: usize,
    tail_bytes: usize,
    /// Size of the document's stored form: the snapshot plus the log since.
    stored_bytes: usize,
    /// The last sync step 2 answered, for the state vector it answered and the replica version
    /// it came from: when many clients join at once they mostly ask the same question, and the
    /// document is encoded once per version rather than once per joiner.
    last_answer: Option<(u64, StateVector, Bytes)>,
    failure: Option<String>,
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
        let opened = tokio::time::Instant::now();
        Room {
            id,
            state: Mutex::new(State {
                awareness: Awareness::with_clock(loaded.doc, TokioClock { start: opened }),
                applied: 0,
                last_seq: loaded.last_seq,
                tail_updates: loaded.tail_updates,
                tail_bytes: loaded.tail_bytes,
                stored_bytes: loaded.snapshot_bytes + loaded.tail_bytes,
                last_answer: None,
                failure: None,
            }),
            updates,
            journal,
            policy,
            durable: watch::Sender::new(0),
            failed: CancellationToken::new(),
            opened,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.updates.subscribe()
    }

    /// Fires when the room stops accepting changes because storage failed.
    pub fn failed(&self) -> &CancellationToken {
        &self.failed
    }

    /// Why storage failed, once it has.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// The frames a new connection receives first: the room's state vector (sync step 1) and,
    /// when anyone is present, everyone's awareness state.
    pub fn greeting(&self) -> Vec<Bytes> {
        let state = self.lock();
        let sv = state.awareness.doc().transact().state_vector();
        let mut frames = vec![encode(Message::Sync(SyncMessage::SyncStep1(sv)))];
        if let Ok(update) = state.awareness.update() {
            if !update.clients.is_empty() {
                frames.push(encode(Message::Awareness(update)));
            }
        }
        frames
    }

    /// Handles one binary frame from connection `from`. Changes for the others are
    /// broadcast once they are durable.
    pub async fn receive(
        self: &Arc<Self>,
        from: ConnId,
        presence: &mut Presence,
        frame: &Bytes,
    ) -> Result<Received, CloseReason> {
        let messages = decode_frame(frame)?;
        let mut received = Received::default();
        for message in messages {
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => {
                    let reply = self.sync_step2_for(&sv).await?;
                    received.replies.push(reply);
                }
                Message::Sync(SyncMessage::SyncStep2(update))
                | Message::Sync(SyncMessage::Update(update)) => {
                    self.apply_update(from, &update).await?;
                    received.stored = true;
                }
                Message::Awareness(update) => {
                    let mut state = self.lock();
                    for (client, entry) in &update.clients {
                        if &*entry.json == "null" {
                            presence.awareness_clients.remove(client);
                        } else {
                            presence.awareness_clients.insert(*client);
                        }
                    }
                    let changed = state
                        .awareness
                        .apply_update_summary(update)
                        .map_err(|e| CloseReason::invalid(format!("bad awareness update: {e}")))?;
                    drop(state);
                    if changed.is_some() {
                        self.publish(from, frame.clone());
                    }
                }
                Message::AwarenessQuery => {
                    let state = self.lock();
                    if let Ok(update) = state.awareness.update() {
                        received.replies.push(encode(Message::Awareness(update)));
                    }
                }
                // Authentication is not part of Tandem's protocol: the link is the key.
                Message::Auth(_) => {}
                Message::Custom(tag, _) => {
                    return Err(CloseReason::unsupported(format!(
                        "unknown message type {tag}"
                    )))
                }
            }
        }
        Ok(received)
    }

    /// Removes the awareness states a departing connection introduced and tells the others.
    pub fn leave(&self, from: ConnId, presence: &Presence) {
        if presence.awareness_clients.is_empty() {
            return;
        }
        let mut state = self.lock();
        for client in &presence.awareness_clients {
            state.awareness.remove_state(*client);
        }
        let removal = state
            .awareness
            .update_with_clients(presence.awareness_clients.iter().copied());
        drop(state);
        if let Ok(removal) = removal {
            self.publish(from, encode(Message::Awareness(removal)));
        }
    }

    /// Removes awareness states that were not renewed within [`PRESENCE_TIMEOUT`] and
    /// tells everyone. yrs keeps the timestamps but no timer; the room's sweeper calls this.
    pub fn expire_presence(&self) {
        let now = self.opened.elapsed().as_millis() as yrs::sync::Timestamp;
        let timeout = PRESENCE_TIMEOUT.as_millis() as yrs::sync::Timestamp;
        let mut state = self.lock();
        let expired: Vec<ClientID> = state
            .awareness
            .iter()
            .filter(|(_, client)| {
                client.data.is_some() && now.saturating_sub(client.last_updated) >= timeout
            })
            .map(|(id, _)| id)
            .collect();
        if expired.is_empty() {
            return;
        }
        for client in &expired {
            state.awareness.remove_state(*client);
        }
        let removal = state.awareness.update_with_clients(expired.iter().copied());
        drop(state);
        tracing::debug!(doc = %self.id, count = expired.len(), "expired silent presence");
        if let Ok(removal) = removal {
            // From no connection: everyone must hear it.
            self.publish(ConnId::MAX, encode(Message::Awareness(removal)));
        }
    }

    /// Called when the last connection has left: merges the stored log into a snapshot so
    /// the next load is short.
    pub fn unload(&self) {
        let state = self.lock();
        if state.failure.is_none() && state.tail_updates > 0 {
            let compaction = self.compaction(&state);
            drop(state);
            if !self.journal.try_compact(compaction) {
                tracing::debug!(doc = %self.id, "journal busy; compaction left for later");
            }
        }
    }

    /// The document's title and text, for server-side rendering.
    pub fn texts(&self) -> (String, String) {
        protocol::read_texts(&self.lock().awareness.doc().transact())
    }

    /// The whole document as one update, for a page to start its replica from.
    pub fn full_update(&self) -> Vec<u8> {
        self.lock()
            .awareness
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
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
                let update = state
                    .awareness
                    .doc()
                    .transact()
                    .encode_state_as_update_v1(sv);
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

    /// Applies an update, stores what it changed and then broadcasts it. What is stored and
    /// broadcast is the transaction's own delta, not the bytes received: a reconnecting
    /// client's sync step 2 repeats much that the room already has.
    async fn apply_update(self: &Arc<Self>, from: ConnId, bytes: &[u8]) -> Result<(), CloseReason> {
        let update = Update::decode_v1(bytes)
            .map_err(|e| CloseReason::invalid(format!("undecodable update: {e}")))?;
        // Reserve the journal slot before applying, so an applied change is always stored.
        let slot = self
            .journal
            .reserve()
            .await
            .ok_or_else(|| CloseReason::internal("storage has stopped"))?;
        let (sequence, stored) = {
            let mut state = self.lock();
            if let Some(failure) = &state.failure {
                return Err(CloseReason::internal(format!("storage failed: {failure}")));
            }
            // An update is never smaller than what it adds, so this refuses every change that
            // could push the document past its limit, before anything is applied.
            if state.stored_bytes + bytes.len() > self.policy.max_doc_bytes {
                return Err(CloseReason::too_big(format!(
                    "document would exceed its size limit of {} bytes",
                    self.policy.max_doc_bytes
                )));
            }
            // yrs reports malformed updates as errors, but a panic deep inside integration
            // must still not take the process down.
            let delta = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut txn = state.awareness.doc().transact_mut();
                txn.apply_update(update)?;
                let changed =
                    txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
                Ok::<_, yrs::error::UpdateError>(changed.then(|| txn.encode_update_v1()))
            }));
            let delta = match delta {
                Ok(Ok(delta)) => delta,
                Ok(Err(e)) => {
                    return Err(CloseReason::invalid(format!("update does not apply: {e}")))
                }
                Err(_) => {
                    return Err(CloseReason::invalid(
                        "update does not apply: integration failed".into(),
                    ))
                }
            };
            match delta {
                // Nothing new, but what it repeats may still be on its way to disk.
                None => (state.applied, None),
                Some(delta) => {
                    state.applied += 1;
                    let sequence = state.applied;
                    let title = protocol::read_texts(&state.awareness.doc().transact()).0;
                    let frame = encode(Message::Sync(SyncMessage::Update(delta.clone())));
                    let (done, stored) = oneshot::channel();
                    let room = self.clone();
                    slot.append(
                        NewUpdate {
                            doc: self.id.clone(),
                            data: delta,
                            title,
                        },
                        Box::new(move |result| room.committed(sequence, from, frame, result, done)),
                    );
                    (sequence, Some(stored))
                }
            }
        };
        match stored {
            None => self.durable_at(sequence).await,
            Some(stored) => match stored.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(CloseReason::internal(format!("storage failed: {error}"))),
                Err(_) => Err(CloseReason::internal("storage has stopped")),
            },
        }
    }

    /// Runs on the journal thread once an update's fate is known, in the order updates were
    /// applied.
    fn committed(
        &self,
        sequence: u64,
        from: ConnId,
        frame: Bytes,
        result: Result<i64, StoreError>,
        done: oneshot::Sender<Result<(), StoreError>>,
    ) {
        match result {
            Ok(seq) => {
                let mut state = self.lock();
                state.last_seq = seq;
                state.tail_updates += 1;
                state.tail_bytes += frame.len();
                state.stored_bytes += frame.len();
                if state.tail_updates >= self.policy.compact_after_updates
                    || state.tail_bytes >= self.policy.compact_after_bytes
                {
                    let compaction = self.compaction(&state);
                    let snapshot_bytes = compaction.snapshot.len();
                    if self.journal.try_compact(compaction) {
                        state.tail_updates = 0;
                        state.tail_bytes = 0;
                        state.stored_bytes = snapshot_bytes;
                    }
                }
                drop(state);
                self.durable.send_if_modified(|durable| {
                    let advanced = sequence > *durable;
                    *durable = (*durable).max(sequence);
                    advanced
                });
                self.publish(from, frame);
                let _ = done.send(Ok(()));
            }
            Err(error) => {
                tracing::error!(doc = %self.id, %error, "storing an update failed; the room stops accepting changes");
                self.lock().failure.get_or_insert_with(|| error.to_string());
                self.failed.cancel();
                let _ = done.send(Err(error));
            }
        }
    }

    /// Waits until every change up to `sequence` is durable, or storage fails.
    async fn durable_at(&self, sequence: u64) -> Result<(), CloseReason> {
        let mut durable = self.durable.subscribe();
        tokio::select! {
            result = durable.wait_for(|d| *d >= sequence) => result
                .map(|_| ())
                .map_err(|_| CloseReason::internal("storage has stopped")),
            _ = self.failed.cancelled() => Err(CloseReason::internal(format!(
                "storage failed: {}",
                self.failure().unwrap_or_default()
            ))),
        }
    }

    fn compaction(&self, state: &State) -> Compaction {
        let txn = state.awareness.doc().transact();
        Compaction {
            doc: self.id.clone(),
            snapshot: txn.encode_state_as_update_v1(&StateVector::default()),
            upto: state.last_seq,
            title: protocol::read_texts(&txn).0,
        }
    }

    fn publish(&self, from: ConnId, frame: Bytes) {
        // An error only means nobody is subscribed, which is fine.
        let _ = self.updates.send(Broadcast { from, frame });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a panic while holding it; the replica itself is still usable
        // (updates are applied transactionally), so carry on rather than cascade the panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn decode_frame(frame: &[u8]) -> Result<Vec<Message>, CloseReason> {
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    let messages = MessageReader::new(&mut decoder)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CloseReason::invalid(format!("undecodable message: {e}")))?;
    if messages.is_empty() {
        return Err(CloseReason::invalid("empty or truncated message".into()));
    }
    Ok(messages)
}

pub fn encode(message: Message) -> Bytes {
    Bytes::from(message.encode_v1())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::sqlite::SqliteStore;
    use crate::server::storage::DocStore;
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
        assert_eq!(rx.try_recv().unwrap().from, 1);
        let stored = f.store.load(&f.room.id).unwrap().unwrap();
        assert_eq!(stored.updates.len(), 1);
        assert_eq!(f.room.texts().1, "hello");
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
        assert!(reason.reason.contains("does not apply"), "{reason:?}");
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
        assert_eq!(removal_clients_sorted(&removal.frame), vec![11]);
        let present: Vec<u64> = f
            .room
            .lock()
            .awareness
            .iter()
            .filter(|(_, s)| s.data.is_some())
            .map(|(c, _)| c.get())
            .collect();
        assert_eq!(present, vec![22], "the renewed state stays");

        // Without renewal, the other goes too, 30 s after its last word.
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        let removal = rx.try_recv().expect("a second removal");
        assert_eq!(removal_clients_sorted(&removal.frame), vec![22]);
        sweeper.abort();
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
}
