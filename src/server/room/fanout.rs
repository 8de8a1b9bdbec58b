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
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::oneshot;

/// Frames published together to every connection of a room, each skipping the connection it
/// came from.
#[derive(Clone, Debug)]
pub struct Broadcast {
    /// In the order they are to be sent, each with the connection it came from.
    pub frames: Arc<[(ConnId, Bytes)]>,
    /// When it was published, for the fan-out latency metric.
    pub at: std::time::Instant,
}

impl Broadcast {
    /// When it was published, if it carries a change (the fan-out delay is measured on those).
    pub fn change_at(&self) -> Option<std::time::Instant> {
        self.frames
            .iter()
            .any(|(_, frame)| matches!(frame.as_ref(), [0, 2, ..]))
            .then_some(self.at)
    }

    /// The frames for connection `conn`: all but its own.
    pub fn for_conn(&self, conn: ConnId) -> impl Iterator<Item = &Bytes> {
        self.frames
            .iter()
            .filter(move |(from, _)| *from != conn)
            .map(|(_, frame)| frame)
    }
}

/// Changes of the commit in progress, stored and waiting to be published together. Holds at
/// most one commit's changes (the journal's batch): it is emptied when the commit ends.
#[derive(Default)]
pub(super) struct Staged {
    frames: Vec<(ConnId, Bytes)>,
    /// The senders' confirmations, given once the changes are published, so that whoever is
    /// told a change is stored finds it already sent to the others.
    confirmations: Vec<oneshot::Sender<Result<(), crate::server::storage::StoreError>>>,
}

impl Room {
    /// Publishes one frame to every connection but `from`.
    pub(super) fn publish(&self, from: ConnId, frame: Bytes) {
        self.publish_all(Arc::from([(from, frame)]));
    }

    fn publish_all(&self, frames: Arc<[(ConnId, Bytes)]>) {
        // An error only means nobody is subscribed, which is fine.
        let _ = self.updates.send(Broadcast {
            frames,
            at: std::time::Instant::now(),
        });
    }

    /// Holds a stored change of the commit in progress until the commit ends; the first one
    /// asks the journal to publish them all then.
    pub(super) fn stage(
        self: &Arc<Self>,
        from: ConnId,
        frame: Bytes,
        done: oneshot::Sender<Result<(), crate::server::storage::StoreError>>,
        after: &mut AfterCommit,
    ) {
        let first = {
            let mut staged = self.staged.lock().unwrap_or_else(|p| p.into_inner());
            staged.frames.push((from, frame));
            staged.confirmations.push(done);
            staged.frames.len() == 1
        };
        if first {
            let room = self.clone();
            after.then(move || room.publish_staged());
        }
    }

    /// Publishes what the commit staged as one entry, then confirms it to its senders.
    fn publish_staged(&self) {
        let staged = std::mem::take(&mut *self.staged.lock().unwrap_or_else(|p| p.into_inner()));
        if !staged.frames.is_empty() {
            self.publish_all(Arc::from(staged.frames));
        }
        for done in staged.confirmations {
            let _ = done.send(Ok(()));
        }
    }
}
