//! Updates that arrived before what they depend on.
//!
//! yrs keeps such blocks (and deletions of clocks it has not seen) inside the document
//! ("pending") and sends them along with every whole-document encoding, outside any size limit.
//! The room takes them out again after each change (`prune_pending`) and holds them here
//! instead, per connection, bounded in bytes (and counted against the document's size limit) and
//! in time. When a change advances a client a held update waits for, that update is tried
//! again; one that still waits when its time runs out is dropped and its connection closed with
//! 1007. Nothing held is ever stored or relayed: only what integrates is, as part of the change
//! that integrated it.
//!
//! Retrying costs yrs work in proportion to the held bytes, so the bytes retried are charged to
//! the connection whose change set it off, like any large answer.

use super::authors::{Authors, Section};
use super::ConnId;
use crate::protocol::{CONTENT, TITLE};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yrs::block::ClientID;
use yrs::{ReadTxn, StateVector, TransactionMut, WriteTxn};

/// How long an update may wait for what it depends on. Updates that legitimately cross on the
/// way arrive within milliseconds of each other.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of waiting updates a room holds (all connections together).
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Most bytes of waiting updates one connection holds, so that one cannot take the room's
/// whole allowance.
pub const MAX_PENDING_BYTES_PER_CONNECTION: usize = 256 * 1024;

/// Blocks yrs could not integrate yet, lib0 v1, and the clients whose progress they wait for.
#[derive(Debug)]
pub struct Waiting {
    pub update: Vec<u8>,
    pub waits_on: HashSet<ClientID>,
}

struct Held {
    waiting: Waiting,
    /// The clocks the held blocks write, per client: checked against the owners of those
    /// clients when the blocks integrate (see [`Authors`]).
    sections: Vec<Section>,
    since: tokio::time::Instant,
    /// Whether it came in a live update, whose clients its sender claims once it integrates
    /// (see [`Authors::claim`]).
    live: bool,
    /// Closes the connection that sent it, once it has waited too long or cannot apply.
    expel: CancellationToken,
}

#[derive(Default)]
pub(super) struct PendingUpdates {
    held: HashMap<ConnId, Held>,
    bytes: usize,
}

/// Why a waiting update was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingError {
    #[error("update depends on changes this document does not have (more than {MAX_PENDING_BYTES} bytes waiting)")]
    TooMuch,
    #[error("update depends on changes this document does not have (more than {MAX_PENDING_BYTES_PER_CONNECTION} bytes waiting from this connection)")]
    TooMuchFromOne,
    #[error("updates waiting for what they depend on do not merge")]
    Unmergeable,
}

/// What a retry did.
#[derive(Debug, Default)]
pub(super) struct Retried {
    /// Whether anything held for a connection other than the sender was applied: the change
    /// then goes to everyone, the sender included.
    pub others_included: bool,
    /// Bytes of held updates decoded and applied: the work the retry cost.
    pub bytes: usize,
}

/// What yrs left pending in `txn`, taken out of the document.
pub(super) fn take(txn: &mut TransactionMut<'_>) -> Option<Waiting> {
    if !txn.has_missing_updates() {
        return None;
    }
    let mut waits_on = HashSet::new();
    if let Some(pending) = txn.store().pending_update() {
        waits_on.extend(pending.missing.iter().map(|(client, _)| *client));
    }
    if let Some(deletions) = txn.store().pending_ds() {
        waits_on.extend(deletions.iter().map(|(client, _)| *client));
    }
    let update = txn.prune_pending()?;
    Some(Waiting {
        update: yrs::updates::encoder::Encode::encode_v1(&update),
        waits_on,
    })
}

impl PendingUpdates {
    /// Bytes waiting in this room.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds what `from` sent that could not be integrated yet, with what it held before.
    /// Returns the bytes merged, the work holding cost.
    pub fn hold(
        &mut self,
        from: ConnId,
        waiting: Waiting,
        live: bool,
        expel: &CancellationToken,
    ) -> Result<usize, PendingError> {
        let (waiting, since, live) = match self.held.remove(&from) {
            Some(previous) => {
                self.bytes -= previous.waiting.update.len();
                // Merged, the held updates keep their blocks apart: runs they continue one
                // another in are joined, or retrying them would cost what `runs` avoids.
                let Ok(merged) =
                    yrs::merge_updates_v1([previous.waiting.update.as_slice(), &waiting.update])
                else {
                    // What was held is given up with its sender, never silently.
                    return Err(PendingError::Unmergeable);
                };
                let update = super::runs::join(&merged).ok().flatten().unwrap_or(merged);
                let mut waits_on = previous.waiting.waits_on;
                waits_on.extend(waiting.waits_on);
                (
                    Waiting { update, waits_on },
                    previous.since,
                    previous.live && live,
                )
            }
            None => (waiting, tokio::time::Instant::now(), live),
        };
        let len = waiting.update.len();
        if len > MAX_PENDING_BYTES_PER_CONNECTION {
            return Err(PendingError::TooMuchFromOne);
        }
        if self.bytes + len > MAX_PENDING_BYTES {
            return Err(PendingError::TooMuch);
        }
        // The clocks that wait, read off what is held (bounded by its bytes) rather than kept
        // from every message that added to it.
        let sections = super::shape::check(&waiting.update, &[CONTENT, TITLE])
            .map_err(|_| PendingError::Unmergeable)?;
        self.bytes += len;
        self.held.insert(
            from,
            Held {
                waiting,
                sections,
                since,
                live,
                expel: expel.clone(),
            },
        );
        Ok(len)
    }

    /// Applies, inside `txn`, every held update waiting for a client whose clock moved since
    /// `before`, again as long as that brings anything in; keeps what still waits. A held
    /// update that would write as a client another open connection owns, that yrs refuses, or
    /// that is still being applied at `deadline`, is dropped and its sender closed; once the
    /// deadline has passed nothing more is retried (what waits is tried again on the next
    /// change).
    pub fn retry(
        &mut self,
        txn: &mut TransactionMut<'_>,
        before: &StateVector,
        from: ConnId,
        authors: &mut Authors,
        deadline: std::time::Instant,
    ) -> Retried {
        let mut retried = Retried::default();
        let mut since = before.clone();
        loop {
            let now = txn.state_vector();
            let moved = |client: &ClientID| now.get(client) > since.get(client);
            let ready: Vec<ConnId> = self
                .held
                .iter()
                .filter(|(_, held)| held.waiting.waits_on.iter().any(moved))
                .map(|(conn, _)| *conn)
                .collect();
            if ready.is_empty() {
                return retried;
            }
            since = now;
            for conn in ready {
                if std::time::Instant::now() >= deadline {
                    return retried;
                }
                let Some(held) = self.held.remove(&conn) else {
                    continue;
                };
                self.bytes -= held.waiting.update.len();
                retried.bytes += held.waiting.update.len();
                let sv = txn.state_vector();
                let applied = authors
                    .check(conn, &held.sections, &sv)
                    .ok()
                    .and_then(|()| super::metered::apply(txn, &held.waiting.update, deadline).ok());
                // Part of it may have gone in even when the rest did not.
                retried.others_included |= applied.is_some() && conn != from;
                let Some(applied) = applied.filter(|a| a.finished && a.error.is_none()) else {
                    // Whatever yrs kept of it was taken out with it, and is dropped with it.
                    held.expel.cancel();
                    continue;
                };
                if held.live {
                    authors.claim(conn, &held.sections, &sv, &txn.state_vector());
                }
                if let Some(waiting) = applied.waiting {
                    self.bytes += waiting.update.len();
                    self.held.insert(conn, Held { waiting, ..held });
                }
            }
        }
    }

    /// Forgets what a departing connection left waiting.
    pub fn forget(&mut self, conn: ConnId) {
        if let Some(held) = self.held.remove(&conn) {
            self.bytes -= held.waiting.update.len();
        }
    }

    /// Drops updates that waited longer than [`PENDING_TIMEOUT`] and closes their senders.
    pub fn expire(&mut self, now: tokio::time::Instant) -> usize {
        let expired: Vec<ConnId> = self
            .held
            .iter()
            .filter(|(_, held)| now.saturating_duration_since(held.since) >= PENDING_TIMEOUT)
            .map(|(conn, _)| *conn)
            .collect();
        for conn in &expired {
            if let Some(held) = self.held.remove(conn) {
                self.bytes -= held.waiting.update.len();
                held.expel.cancel();
            }
        }
        expired.len()
    }
}
