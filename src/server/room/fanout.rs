//! What a room sends to all its connections, and how one commit's changes travel together.
//!
//! Every entry of a room's broadcast ring wakes every connection of the room. Published one
//! by one from the journal's thread, a commit of many changes woke each reader once per
//! change, and each reader wrote them one system call at a time while the next were still
//! being published. A commit's changes are instead staged as the journal completes them and
//! published as one entry once the whole commit is done (see [`AfterCommit`]): a reader wakes
//! once for them and writes them with one system call, and a commit takes one place in the
//! ring however many changes it confirms.

use super::{ConnId, Room};
use crate::server::journal::AfterCommit;
use crate::server::session::{BATCH_BYTES, BATCH_FRAMES};
use crate::server::storage::StoreError;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Frames published together to every connection of a room, each skipping the connection it
/// came from.
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// In the order they are to be sent, each with the connection it came from.
    pub frames: Arc<[(ConnId, Bytes)]>,
    /// When it was published, if it carries a change to the document: the fan-out delay
    /// metric is measured on those.
    pub change_at: Option<std::time::Instant>,
}

impl Broadcast {
    /// The frames for connection `conn`: all but its own.
    pub fn for_conn(&self, conn: ConnId) -> impl Iterator<Item = &Bytes> {
        self.frames
            .iter()
            .filter(move |(from, _)| *from != conn)
            .map(|(_, frame)| frame)
    }
}

/// A stored change waiting for the end of its commit.
struct StagedChange {
    from: ConnId,
    frame: Bytes,
    /// Its position in the store's log, announced to other instances.
    seq: i64,
    /// Its place among the changes applied here (see `State::applied`).
    sequence: u64,
    /// The sender's confirmation.
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Changes of the commit in progress, stored and waiting to be published together. Holds at
/// most one commit's changes (the journal's batch): it is emptied when the commit ends.
#[derive(Default)]
pub(super) struct Staged(Vec<StagedChange>);

impl Room {
    /// Publishes one frame to every connection but `from`.
    pub(super) fn publish(&self, from: ConnId, frame: Bytes) {
        self.publish_all(Arc::from([(from, frame)]));
    }

    fn publish_all(&self, frames: Arc<[(ConnId, Bytes)]>) {
        let change_at = frames
            .iter()
            .any(|(_, frame)| matches!(frame.as_ref(), [0, 2, ..]))
            .then(std::time::Instant::now);
        // An error only means nobody is subscribed, which is fine.
        let _ = self.updates.send(Broadcast { frames, change_at });
    }

    /// Holds a stored change of the commit in progress until the commit ends; the first one
    /// asks the journal to publish them all then.
    pub(super) fn stage(
        self: &Arc<Self>,
        (from, frame): (ConnId, Bytes),
        (seq, sequence): (i64, u64),
        done: oneshot::Sender<Result<(), StoreError>>,
        after: &mut AfterCommit,
    ) {
        let first = {
            let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
            staged.0.push(StagedChange {
                from,
                frame,
                seq,
                sequence,
                done,
            });
            staged.0.len() == 1
        };
        if first {
            let room = self.clone();
            after.then(move || room.publish_staged());
        }
    }

    /// Publishes what the commit staged, then makes it known as durable: to this instance's
    /// joiners and to the senders (their confirmations), and to the other instances. Whoever
    /// is told a change is stored finds it already sent to everyone here.
    ///
    /// Entries hold at most what one write to a socket takes ([`BATCH_FRAMES`] frames,
    /// [`BATCH_BYTES`] bytes, or a single larger frame), so the ring's bound in frames and
    /// bytes per entry, and the work one write may have to finish in time, stay what they
    /// were with a frame per entry.
    fn publish_staged(&self) {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|p| p.into_inner()));
        let mut entry: Vec<(ConnId, Bytes)> = Vec::new();
        let mut entry_bytes = 0;
        for change in &staged.0 {
            let full =
                entry.len() >= BATCH_FRAMES || entry_bytes + change.frame.len() > BATCH_BYTES;
            if full && !entry.is_empty() {
                self.publish_all(Arc::from(std::mem::take(&mut entry)));
                entry_bytes = 0;
            }
            entry_bytes += change.frame.len();
            entry.push((change.from, change.frame.clone()));
        }
        if !entry.is_empty() {
            self.publish_all(Arc::from(entry));
        }
        let Some(newest) = staged.0.iter().map(|change| change.sequence).max() else {
            return;
        };
        self.durable.send_if_modified(|durable| {
            let advanced = newest > *durable;
            *durable = (*durable).max(newest);
            advanced
        });
        for change in staged.0 {
            self.relay_stored(change.seq, &change.frame);
            let _ = change.done.send(Ok(()));
        }
    }
}
