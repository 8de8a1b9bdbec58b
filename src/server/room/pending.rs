//! Updates that arrived before what they depend on.
//!
//! yrs keeps such blocks inside the document ("pending") and sends them along with every
//! whole-document encoding, outside any size limit. The room takes them out again after each
//! change (`prune_pending`) and holds them here instead, per connection, bounded in bytes (and
//! counted against the document's size limit) and in time. Whenever the document moves on, a
//! held update whose needs are now met is applied; one that still waits when its time runs out
//! is dropped and its connection closed with 1007. Nothing held is ever stored or relayed: only
//! what integrates is, as part of the change that integrated it.

use super::ConnId;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, TransactionMut, Update, WriteTxn};

/// How long an update may wait for what it depends on. Updates that legitimately cross on the
/// way arrive within milliseconds of each other.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes of waiting updates a room holds (all connections together).
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;

struct Held {
    /// The waiting blocks, lib0 v1.
    update: Vec<u8>,
    since: tokio::time::Instant,
    /// Closes the connection that sent it, once it has waited too long.
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
}

/// What yrs left pending in `txn`, taken out of the document.
pub(super) fn take(txn: &mut TransactionMut<'_>) -> Option<Vec<u8>> {
    if !txn.has_missing_updates() {
        return None;
    }
    let update = txn.prune_pending()?;
    Some(yrs::updates::encoder::Encode::encode_v1(&update))
}

impl PendingUpdates {
    /// Bytes waiting in this room.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds what `from` sent that could not be integrated yet, with what it held before.
    pub fn hold(
        &mut self,
        from: ConnId,
        update: Vec<u8>,
        expel: &CancellationToken,
    ) -> Result<(), PendingError> {
        let (update, since) = match self.held.remove(&from) {
            Some(previous) => {
                self.bytes -= previous.update.len();
                let merged =
                    yrs::merge_updates_v1([previous.update.as_slice(), &update]).unwrap_or(update);
                (merged, previous.since)
            }
            None => (update, tokio::time::Instant::now()),
        };
        if self.bytes + update.len() > MAX_PENDING_BYTES {
            return Err(PendingError::TooMuch);
        }
        self.bytes += update.len();
        self.held.insert(
            from,
            Held {
                update,
                since,
                expel: expel.clone(),
            },
        );
        Ok(())
    }

    /// Applies, inside `txn`, every held update the document can now take, again as long as
    /// that brings anything in; keeps what still waits. Returns whether anything held for a
    /// connection other than `from` was integrated.
    ///
    /// Every held update is tried, not only those whose recorded needs look met: what yrs
    /// reports missing does not cover every dependency (deletions of unseen clocks, needs of
    /// an earlier held part). The cost is bounded by [`MAX_PENDING_BYTES`] per change, for at
    /// most [`PENDING_TIMEOUT`].
    pub fn retry(&mut self, txn: &mut TransactionMut<'_>, from: ConnId) -> bool {
        let mut others_included = false;
        loop {
            if self.held.is_empty() {
                return others_included;
            }
            let before = txn.state_vector();
            let conns: Vec<ConnId> = self.held.keys().copied().collect();
            for conn in conns {
                let Some(held) = self.held.remove(&conn) else {
                    continue;
                };
                self.bytes -= held.update.len();
                let Ok(update) = Update::decode_v1(&held.update) else {
                    continue;
                };
                let sv = txn.state_vector();
                if txn.apply_update(update).is_err() {
                    continue;
                }
                others_included |= conn != from && txn.state_vector() != sv;
                if let Some(update) = take(txn) {
                    self.bytes += update.len();
                    self.held.insert(conn, Held { update, ..held });
                }
            }
            if txn.state_vector() == before {
                return others_included;
            }
        }
    }

    /// Forgets what a departing connection left waiting.
    pub fn forget(&mut self, conn: ConnId) {
        if let Some(held) = self.held.remove(&conn) {
            self.bytes -= held.update.len();
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
                self.bytes -= held.update.len();
                held.expel.cancel();
            }
        }
        expired.len()
    }
}
