//! Presence sent out in batches when it comes thick and fast.
//!
//! Every caret move is an awareness message, and each is delivered to everyone in the
//! document: 500 people moving their carets once a second are 250,000 frames a second to
//! encode, queue and write. When presence comes faster than one message per
//! [`PRESENCE_BATCH`], what arrives within that window is merged into one awareness message
//! (the newest state of each client) and sent once at its end, so each of the others gets one
//! frame per window with every move in it. The first message after a quiet window goes out at
//! once: a lone person's caret is not held back at all, a crowd's by at most one window.
//!
//! A batch holds the newest of the states the registry accepted within one window, one per
//! client id: never more than the messages it replaces, and at most the room's 1,024 states
//! plus the removals accepted in that window. Removals (someone leaving, silent presence
//! expiring) send what is waiting first, so nobody's departure is followed by an older state
//! of theirs.

use super::{encode, ConnId, Room};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::Notify;
use tokio::time::{Duration, Instant};
use yrs::sync::{AwarenessUpdate, Message};

/// The window within which presence is gathered into one message once it comes faster than
/// one message per window.
pub const PRESENCE_BATCH: Duration = Duration::from_millis(50);

/// Presence accepted and not yet sent, and when presence last went out.
#[derive(Default)]
pub(super) struct PresenceBatch {
    waiting: HashMap<yrs::ClientID, yrs::sync::awareness::AwarenessUpdateEntry>,
    last_sent: Option<Instant>,
    /// The batch's sending is scheduled (the room's batch task was woken).
    scheduled: bool,
}

/// What to do with accepted presence.
#[derive(Debug, PartialEq)]
pub(super) enum Admission {
    /// Send it now: nothing went out within the last window.
    SendNow(AwarenessUpdate),
    /// It waits for the batch; `wake` when the batch task must be woken to send it.
    Held { wake: bool },
}

impl PresenceBatch {
    /// Takes in presence the registry accepted at `now`.
    pub(super) fn admit(&mut self, update: AwarenessUpdate, now: Instant) -> Admission {
        let quiet = self
            .last_sent
            .is_none_or(|sent| now.duration_since(sent) >= PRESENCE_BATCH);
        if quiet && !self.scheduled {
            self.last_sent = Some(now);
            return Admission::SendNow(update);
        }
        // The registry accepts a client's states in clock order: the newest replaces the rest.
        self.waiting.extend(update.clients);
        let wake = !std::mem::replace(&mut self.scheduled, true);
        Admission::Held { wake }
    }

    /// What waits, as one message (`None` when nothing does); the window starts again.
    pub(super) fn take(&mut self, now: Instant) -> Option<AwarenessUpdate> {
        self.scheduled = false;
        if self.waiting.is_empty() {
            return None;
        }
        self.last_sent = Some(now);
        Some(AwarenessUpdate {
            clients: std::mem::take(&mut self.waiting),
        })
    }
}

impl Room {
    /// Sends presence the registry accepted from connection `from`: at once, or in the next
    /// batch (see the module's documentation).
    pub(super) fn send_presence(&self, from: ConnId, update: AwarenessUpdate) {
        let admission = self
            .presence_batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .admit(update, Instant::now());
        match admission {
            Admission::SendNow(update) => {
                let frame = encode(Message::Awareness(update));
                self.relay_presence(&frame);
                self.publish(from, frame);
            }
            Admission::Held { wake: true } => self.presence_due.notify_one(),
            Admission::Held { wake: false } => {}
        }
    }

    /// Sends the batch of presence waiting, if any, to everyone: a batch holds several
    /// people's states, so none of their connections is skipped, and a client that gets its
    /// own state back finds a clock it already has and ignores it.
    pub fn send_presence_batch(&self) {
        let batch = self
            .presence_batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take(Instant::now());
        if let Some(update) = batch {
            let frame = encode(Message::Awareness(update));
            self.relay_presence(&frame);
            self.publish(ConnId::MAX, frame);
        }
    }

    /// Wakes [`send_presence_batches`] when a batch is to be sent.
    pub fn presence_due(&self) -> Arc<Notify> {
        self.presence_due.clone()
    }
}

/// Sends a room's presence batches, one window after the first held state of each, for as
/// long as the room is in memory.
pub async fn send_presence_batches(room: Weak<Room>, due: Arc<Notify>) {
    loop {
        // Woken by a held state; now and then without one, to end with a room that is gone.
        let woken = tokio::time::timeout(super::PRESENCE_SWEEP, due.notified()).await;
        if woken.is_ok() {
            tokio::time::sleep(PRESENCE_BATCH).await;
        }
        let Some(room) = room.upgrade() else { break };
        if woken.is_ok() {
            room.send_presence_batch();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::sync::awareness::AwarenessUpdateEntry;

    fn update(states: &[(u64, u32)]) -> AwarenessUpdate {
        AwarenessUpdate {
            clients: states
                .iter()
                .map(|&(client, clock)| {
                    (
                        yrs::ClientID::new(client),
                        AwarenessUpdateEntry {
                            clock,
                            json: format!("{{\"n\":{clock}}}").into(),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn a_quiet_window_sends_at_once_and_a_busy_one_gathers_the_newest_state_of_each() {
        let start = Instant::now();
        let mut batch = PresenceBatch::default();
        assert_eq!(
            batch.admit(update(&[(1, 1)]), start),
            Admission::SendNow(update(&[(1, 1)]))
        );
        // Within the window: held, and the task woken once.
        let soon = start + Duration::from_millis(10);
        assert_eq!(
            batch.admit(update(&[(1, 2)]), soon),
            Admission::Held { wake: true }
        );
        assert_eq!(
            batch.admit(update(&[(2, 7)]), soon),
            Admission::Held { wake: false }
        );
        assert_eq!(
            batch.admit(update(&[(1, 3)]), soon),
            Admission::Held { wake: false }
        );
        // Past the window but with a batch scheduled: still held, in order.
        let later = start + PRESENCE_BATCH * 2;
        assert_eq!(
            batch.admit(update(&[(2, 8)]), later),
            Admission::Held { wake: false }
        );
        assert_eq!(batch.take(later), Some(update(&[(1, 3), (2, 8)])));
        // Right after a batch went out, the next waits for the window again.
        assert_eq!(
            batch.admit(update(&[(3, 1)]), later),
            Admission::Held { wake: true }
        );
        assert_eq!(batch.take(later + PRESENCE_BATCH), Some(update(&[(3, 1)])));
        // Nothing waiting: nothing sent, and the window is not restarted.
        assert_eq!(batch.take(later + PRESENCE_BATCH * 2), None);
        let quiet = later + PRESENCE_BATCH * 3;
        assert_eq!(
            batch.admit(update(&[(3, 2)]), quiet),
            Admission::SendNow(update(&[(3, 2)]))
        );
    }
}
