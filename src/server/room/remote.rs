//! Changes and presence that reach a room from the other instances sharing its store.
//!
//! Another instance stored each of these changes before it said so (see [`super::durability`]),
//! so a room applies them to its replica and broadcasts them to its own editors without storing
//! them again. Each carries its position in the document's log. A room that [`Room::follow`]s
//! the log keeps a [`LogPosition`]: the position up to which its replica holds every change,
//! stored here or elsewhere, plus the positions it holds beyond that. The cluster applies other
//! instances' changes in log order: every change depends only on changes stored before it, so
//! in that order nothing ever waits for what it depends on.
//!
//! Presence from elsewhere is kept in the same registry as local presence, owned by a pseudo
//! connection per instance: an instance may change only the states it introduced, never one of
//! this instance's editors, and its states expire like any other when it stops renewing them.

use super::{encode, ConnId, Room};
use crate::server::storage::LogSince;
use bytes::Bytes;
use std::collections::BTreeSet;
use std::sync::Arc;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{Transact, Update};

/// Where other instances' changes go, and this room's news comes from: the cluster
/// (`crate::server::cluster`) implements it.
pub trait Relay: Send + Sync + 'static {
    /// A change this instance stored at `seq`, as the frame its editors received.
    fn stored(&self, room: &Room, seq: i64, frame: &Bytes);
    /// Presence accepted from this instance's editors, re-encoded.
    fn presence(&self, room: &Room, frame: &Bytes);
    /// Every client id this instance's connections write as in `room` (see
    /// [`super::authors`]); an id missing from it is released.
    fn claims(&self, room: &Room, clients: &[u64]);
}

/// How far a room's replica holds the document's log.
#[derive(Debug, Default)]
pub struct LogPosition {
    /// Every change up to here is in the replica.
    upto: i64,
    /// Positions beyond `upto` the replica also holds (this instance's own, mostly).
    ahead: BTreeSet<i64>,
}

/// Positions held beyond the contiguous ones. More means a change from elsewhere is overdue;
/// the cluster reads it from the store within seconds, so this is never reached in practice.
/// Past it the set is emptied: the positions are read again from the store, which is harmless.
const MOST_AHEAD: usize = 16 * 1024;

impl LogPosition {
    pub fn upto(&self) -> i64 {
        self.upto
    }

    pub fn holds(&self, seq: i64) -> bool {
        seq <= self.upto || self.ahead.contains(&seq)
    }

    fn mark(&mut self, seq: i64) {
        if seq <= self.upto {
            return;
        }
        if self.ahead.len() >= MOST_AHEAD {
            self.ahead.clear();
        }
        self.ahead.insert(seq);
        self.advance();
    }

    /// Everything up to `seq` is held (read from the store).
    fn reach(&mut self, seq: i64) {
        self.upto = self.upto.max(seq);
        self.ahead = self.ahead.split_off(&(self.upto + 1));
        self.advance();
    }

    fn advance(&mut self) {
        while self.ahead.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
    }
}

/// The connection id under which an instance's presence is kept: local ids count up from 1,
/// so the top bit keeps them apart, and `ConnId::MAX` (nobody) is never produced.
pub fn instance_conn(instance: u64) -> ConnId {
    (1 << 63) | (instance & ((1 << 62) - 1))
}

/// Instances whose presence one room keeps apart; beyond it, presence from further instances
/// is ignored until one of them leaves.
const MOST_INSTANCES: usize = 64;

/// Why a change from elsewhere was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("not an update message")]
    NotAnUpdate,
    #[error("undecodable: {0}")]
    Undecodable(String),
    #[error("the room has failed")]
    Failed,
    #[error("applying it panicked")]
    Panicked,
}

impl Room {
    /// Starts keeping the log position, from the position the room was loaded at, and tells
    /// `relay` of what this room stores and who joins.
    pub fn follow(&self, relay: std::sync::Arc<dyn Relay>) {
        let mut ledger = self.ledger();
        let upto = ledger.last_seq;
        ledger.followed.get_or_insert_with(|| LogPosition {
            upto,
            ahead: BTreeSet::new(),
        });
        drop(ledger);
        let _ = self.relay.set(relay);
    }

    /// The position up to which the replica holds every change (0 when not following).
    pub fn log_upto(&self) -> i64 {
        self.ledger().followed.as_ref().map_or(0, LogPosition::upto)
    }

    /// Whether the replica holds the change stored at `seq`.
    pub fn holds_position(&self, seq: i64) -> bool {
        self.ledger()
            .followed
            .as_ref()
            .is_some_and(|position| position.holds(seq))
    }

    /// Fires when the log position advanced through this instance's own commits.
    pub fn log_advanced(&self) -> &tokio::sync::Notify {
        &self.advanced
    }

    /// Called when this instance stored a change at `seq`.
    pub(super) fn mark_stored(&self, ledger: &mut super::Ledger, seq: i64) {
        if let Some(position) = &mut ledger.followed {
            position.mark(seq);
            self.advanced.notify_one();
        }
    }

    /// Applies a change another instance stored at `seq` (a y-sync update frame) and
    /// broadcasts what it changed to this room's editors. Blocks while it integrates.
    pub fn apply_stored(self: &Arc<Self>, seq: i64, frame: &[u8]) -> Result<(), RemoteError> {
        let Ok(Message::Sync(SyncMessage::Update(update))) = crate::protocol::wire::decode(frame)
        else {
            return Err(RemoteError::NotAnUpdate);
        };
        self.apply_logged(&update)?;
        // The log grew: this instance's share of compacting it, and of its size limit.
        self.count_logged(seq, frame.len());
        self.mark_stored(&mut self.ledger(), seq);
        Ok(())
    }

    /// Applies what the store holds beyond the room's position: the compacted state when the
    /// log no longer reaches back that far, then each update the replica does not hold yet.
    /// Blocks while it integrates.
    pub fn apply_log(self: &Arc<Self>, log: &LogSince) -> Result<usize, RemoteError> {
        let mut applied = 0;
        if let Some(snapshot) = &log.snapshot {
            self.apply_logged(snapshot)?;
            applied += 1;
        }
        for (seq, update) in &log.updates {
            if !self.holds_position(*seq) {
                self.apply_logged(update)?;
                self.count_logged(*seq, update.len());
                applied += 1;
            }
        }
        if let Some(position) = &mut self.ledger().followed {
            position.reach(log.last_seq);
        }
        Ok(applied)
    }

    /// Integrates one stored update (lib0 v1) in a transaction of its own and broadcasts its
    /// effect. A stored update was checked when it was accepted; still, one that does not
    /// decode is refused, and a panic inside yrs fails the room as it does for local changes.
    fn apply_logged(&self, update: &[u8]) -> Result<(), RemoteError> {
        let decoded =
            Update::decode_v1(update).map_err(|e| RemoteError::Undecodable(e.to_string()))?;
        let mut state = self.lock();
        if state.failure.is_some() {
            return Err(RemoteError::Failed);
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut txn = state.doc.transact_mut();
            txn.apply_update(decoded)
                .map_err(|e| RemoteError::Undecodable(e.to_string()))?;
            let changed = txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
            Ok(changed.then(|| txn.encode_update_v1()))
        }));
        let delta = match outcome {
            Ok(result) => result?,
            Err(_) => {
                self.fail(
                    &mut state,
                    "the document's replica failed; reopen the document".into(),
                );
                return Err(RemoteError::Panicked);
            }
        };
        let Some(delta) = delta else {
            return Ok(());
        };
        // The cached answer to a joiner no longer describes the replica.
        state.last_answer = None;
        drop(state);
        self.publish(
            ConnId::MAX,
            encode(Message::Sync(SyncMessage::Update(delta))),
        );
        Ok(())
    }

    /// Gives the room up when what other instances stored cannot be applied to it: its
    /// editors are closed with 1011 and the next connection loads the document afresh from the
    /// store, rather than the room staying behind it.
    pub fn fail_behind(&self, reason: &str) {
        let mut state = self.lock();
        self.fail(&mut state, format!("{reason}; reopen the document"));
    }

    /// Applies presence another instance accepted from its editors. Its states are owned by
    /// that instance: changing one of this instance's editors' states, or another instance's,
    /// is ignored, as is anything past the room's limits.
    pub fn apply_remote_presence(&self, instance: u64, frame: &[u8]) {
        let Ok(Message::Awareness(update)) = crate::protocol::wire::decode(frame) else {
            tracing::warn!(doc = %self.tag, "presence from another instance does not decode; ignored");
            return;
        };
        let owner = instance_conn(instance);
        let accepted = {
            let mut state = self.lock();
            let state = &mut *state;
            if !state.remote.contains_key(&owner) && state.remote.len() >= MOST_INSTANCES {
                return;
            }
            // Relaying presence is a sign of life, like renewing claims.
            state.authors.heard_from(owner, tokio::time::Instant::now());
            let presence = state.remote.entry(owner).or_default();
            let accepted =
                state
                    .presence
                    .accept_remote(owner, presence, update, self.presence_limits);
            if presence.awareness_clients.is_empty() {
                state.remote.remove(&owner);
            }
            accepted
        };
        if !accepted.clients.is_empty() {
            self.publish(owner, encode(Message::Awareness(accepted)));
        }
    }

    /// The presence of this instance's own editors as one message, for an instance that has
    /// just opened the document; `None` when none of them shows.
    pub fn local_presence(&self) -> Option<Bytes> {
        let update: AwarenessUpdate = self.lock().presence.owned_locally();
        (!update.clients.is_empty()).then(|| encode(Message::Awareness(update)))
    }

    /// Takes in the client ids another instance's connections write as (its whole set, a
    /// sequence of u64 big-endian): this instance's connections may not write as them.
    pub fn apply_remote_claims(&self, instance: u64, payload: &[u8]) {
        if !payload.len().is_multiple_of(8) {
            tracing::warn!(doc = %self.tag, bytes = payload.len(), "client ids claimed by another instance do not read; ignored");
            return;
        }
        // Beyond the bound, the rest is not kept (the sender sends no more than that).
        let clients = payload
            .chunks_exact(8)
            .take(super::authors::MOST_CLAIMED_PER_INSTANCE)
            .map(|id| yrs::ClientID::new(u64::from_be_bytes(id.try_into().expect("8 bytes"))))
            .collect();
        self.lock().authors.set_claims(
            instance_conn(instance),
            clients,
            tokio::time::Instant::now(),
        );
    }

    /// Tells the relay, when there is one, which client ids this instance's connections write
    /// as (at most as many as another instance keeps).
    pub(super) fn relay_claims(&self, state: &super::State) {
        if let Some(relay) = self.relay.get() {
            let clients: Vec<u64> = state
                .authors
                .owned_here()
                .iter()
                .take(super::authors::MOST_CLAIMED_PER_INSTANCE)
                .map(|c| c.get())
                .collect();
            relay.claims(self, &clients);
        }
    }

    /// Tells the relay again which client ids this instance's connections write as, when
    /// they write as any: for an instance that has just opened the document and missed the
    /// claims made before its subscription held.
    pub fn announce_claims(&self) {
        let state = self.lock();
        if state.authors.owned_count() > 0 {
            self.relay_claims(&state);
        }
    }

    /// Tells the relay, when there is one, of presence accepted from this instance's editors.
    pub(super) fn relay_presence(&self, frame: &Bytes) {
        if let Some(relay) = self.relay.get() {
            relay.presence(self, frame);
        }
    }

    /// Tells the relay, when there is one, of a change stored at `seq`.
    pub(super) fn relay_stored(&self, seq: i64, frame: &Bytes) {
        if let Some(relay) = self.relay.get() {
            relay.stored(self, seq, frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_position_advances_only_over_held_positions() {
        let mut position = LogPosition {
            upto: 10,
            ahead: BTreeSet::new(),
        };
        position.mark(12);
        position.mark(13);
        assert_eq!(position.upto(), 10);
        assert!(position.holds(12) && !position.holds(11));
        position.mark(11);
        assert_eq!(position.upto(), 13);
        assert!(position.ahead.is_empty());
        position.mark(5);
        assert_eq!(position.upto(), 13);
        position.mark(20);
        position.reach(18);
        assert_eq!(position.upto(), 18);
        assert!(position.holds(20) && !position.holds(19));
        position.mark(19);
        assert_eq!(position.upto(), 20);
    }

    #[test]
    fn positions_ahead_are_bounded() {
        let mut position = LogPosition::default();
        for seq in 2..(MOST_AHEAD as i64 + 10) {
            position.mark(seq);
        }
        assert!(position.ahead.len() <= MOST_AHEAD);
        assert_eq!(position.upto(), 0);
        position.reach(5);
        assert_eq!(position.upto(), 5);
    }

    #[test]
    fn instance_ids_never_meet_local_connections_or_nobody() {
        for instance in [0, 1, u64::MAX, 1 << 63, (1 << 62) - 1] {
            let conn = instance_conn(instance);
            assert!(conn >= 1 << 63);
            assert_ne!(conn, ConnId::MAX);
        }
    }
}
