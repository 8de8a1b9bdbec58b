//! One task per open document, keeping its room in step with the document's log.
//!
//! Other instances' changes are applied in log order: a change whose predecessor has not
//! arrived waits (at most [`GAP_GRACE`], and [`MOST_WAITING`] of them), then the follower reads
//! the log from the store. The poll of the store ([`poll_forever`]) covers what no later
//! message reveals: a room that has not reached, [`GAP_GRACE`] after a poll, the position the
//! poll found reads the store.

use super::{
    envelope::Kind, Cluster, Inner, GAP_GRACE, MOST_WAITING, MOST_WAITING_BYTES, POLL_CHUNK,
    POLL_INTERVAL,
};
use crate::doc_id::DocId;
use crate::server::room::Room;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What reaches a follower.
#[derive(Debug)]
pub enum Inbound {
    /// Another instance stored this change at `seq`.
    Stored {
        seq: i64,
        frame: Bytes,
        _charge: super::budget::Charge,
    },
    /// Another instance's editors' presence.
    Presence {
        instance: u64,
        frame: Bytes,
        _charge: super::budget::Charge,
    },
    /// An instance opened the document and asks who is here.
    WhoIsHere,
    /// The client ids another instance's connections write as.
    Claims {
        instance: u64,
        clients: Bytes,
        _charge: super::budget::Charge,
    },
    /// Another instance took links of the document back.
    Links,
    /// The subscription took hold (for the first time, or again after Redis came back):
    /// whatever was stored before it is read from the store.
    Subscribed,
    /// The poll found the document's log at this position.
    StoreAt(i64),
}

struct Follower {
    cluster: Cluster,
    /// Changes that arrived before their predecessors, by position.
    waiting: BTreeMap<i64, Bytes>,
    waiting_bytes: usize,
    /// Since when `waiting` has waited.
    gap_since: Option<Instant>,
    /// Where the poll found the log while the room was behind it, and when: if the room has
    /// not reached it [`GAP_GRACE`] later, its messages were lost.
    behind: Option<(i64, Instant)>,
    /// When this instance last answered who is here.
    answered: Option<Instant>,
    /// Someone asked since that answer.
    answer_due: bool,
    /// Another instance took links back since the room last read them.
    links_changed: bool,
}

/// How often a followed document reads its links from the store whatever Redis says: an
/// announcement of a reset or a deletion lost on the way (a full queue, a dropped message)
/// still closes the connections that came by the old links, this much later at most.
const LINKS_RECHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Shortest time between two answers to "who is here" for one document.
const ANSWER_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Follows `room` until the room closes (its queue's sender is dropped) or fails.
pub async fn run(
    cluster: Cluster,
    room: Weak<Room>,
    mut inbound: mpsc::Receiver<Inbound>,
    overflowed: Arc<AtomicBool>,
) {
    let mut follower = Follower {
        cluster,
        waiting: BTreeMap::new(),
        waiting_bytes: 0,
        gap_since: None,
        behind: None,
        answered: None,
        answer_due: false,
        links_changed: false,
    };
    let mut links_due = Instant::now() + LINKS_RECHECK;
    loop {
        let Some(room) = room.upgrade() else { break };
        let gap_ends = follower.next_check();
        let read_store = tokio::select! {
            _ = tokio::time::sleep_until(links_due) => {
                follower.links_changed = true;
                false
            }
            message = inbound.recv() => match message {
                None => break,
                Some(message) => follower.handle(&room, message),
            },
            _ = room.log_advanced().notified() => false,
            _ = tokio::time::sleep_until(gap_ends.unwrap_or_else(Instant::now)), if gap_ends.is_some() => {
                follower.overdue(&room)
            }
            _ = room.failed().cancelled() => break,
        };
        let overflowed = overflowed.swap(false, Ordering::Relaxed);
        // Messages dropped on a full queue may have said links were taken back.
        if std::mem::take(&mut follower.links_changed) || overflowed {
            recheck_links(&room, follower.cluster.store().clone()).await;
            links_due = Instant::now() + LINKS_RECHECK;
        }
        if read_store || overflowed || !follower.drain(&room).await {
            follower.catch_up(&room).await;
            follower.drain(&room).await;
        }
    }
}

impl Follower {
    /// Takes in one message; returns whether the store must be read now.
    fn handle(&mut self, room: &Arc<Room>, message: Inbound) -> bool {
        match message {
            Inbound::Stored { seq, frame, .. } => {
                if room.holds_position(seq) || self.waiting.contains_key(&seq) {
                    return false;
                }
                if self.waiting.len() >= MOST_WAITING
                    || self.waiting_bytes + frame.len() > MOST_WAITING_BYTES
                {
                    return true;
                }
                self.waiting_bytes += frame.len();
                self.waiting.insert(seq, frame);
                false
            }
            Inbound::Presence {
                instance, frame, ..
            } => {
                room.apply_remote_presence(instance, &frame);
                false
            }
            Inbound::Claims {
                instance, clients, ..
            } => {
                room.apply_remote_claims(instance, &clients);
                false
            }
            Inbound::Links => {
                // Read once this message is taken in, before the next is.
                self.links_changed = true;
                false
            }
            Inbound::WhoIsHere => {
                // However many ask, one answer per interval: the states are renewed every
                // 15 s anyway, and the question must not become a way to make every instance
                // publish in a loop.
                let now = Instant::now();
                if self
                    .answered
                    .is_none_or(|at| now.duration_since(at) >= ANSWER_EVERY)
                {
                    self.answer(room);
                } else {
                    // Asked again within the interval: answered once at its end.
                    self.answer_due = true;
                }
                false
            }
            Inbound::Subscribed => {
                // What was taken back before the subscription held (the room opened after
                // another instance's message passed, or Redis was away) is read from the
                // store: a connection on a reset link is closed here too.
                self.links_changed = true;
                self.cluster.send(&room.id, Kind::WhoIsHere, 0, &[]);
                true
            }
            Inbound::StoreAt(head) => {
                let upto = room.log_upto();
                match self.behind {
                    _ if head <= upto => self.behind = None,
                    // Already waiting for an earlier position to arrive.
                    Some((then, _)) if upto < then => {}
                    _ => self.behind = Some((head, Instant::now())),
                }
                false
            }
        }
    }

    /// When the room must have what it waits for: the predecessors of the changes waiting, or
    /// the position the poll found.
    fn next_check(&self) -> Option<Instant> {
        let gap = self.gap_since.map(|since| since + GAP_GRACE);
        let behind = self.behind.map(|(_, since)| since + GAP_GRACE);
        let answer = self
            .answered
            .filter(|_| self.answer_due)
            .map(|at| at + ANSWER_EVERY);
        [gap, behind, answer].into_iter().flatten().min()
    }

    /// Tells the other instances who is here on this one, and which editor ids they write as
    /// (an instance that just opened the document may have missed those claims).
    fn answer(&mut self, room: &Room) {
        self.answered = Some(Instant::now());
        self.answer_due = false;
        room.announce_claims();
        if let Some(frame) = room.local_presence() {
            self.cluster.send(&room.id, Kind::Presence, 0, &frame);
        }
    }

    /// A check came due: whether what was waited for is still missing, so the store must be
    /// read.
    fn overdue(&mut self, room: &Room) -> bool {
        let now = Instant::now();
        if self.answer_due && self.answered.is_some_and(|at| now >= at + ANSWER_EVERY) {
            self.answer(room);
        }
        let gap = self.gap_since.is_some_and(|since| now >= since + GAP_GRACE);
        let behind = match self.behind {
            Some((head, since)) if now >= since + GAP_GRACE => {
                let missing = room.log_upto() < head;
                if !missing {
                    self.behind = None;
                }
                missing
            }
            _ => false,
        };
        if gap || behind {
            tracing::debug!(doc = %room.tag, waiting = self.waiting.len(), "changes other instances stored did not arrive in time; reading the store");
        }
        gap || behind
    }

    /// Applies the waiting changes that follow the room's position, in order. Returns false
    /// when one does not apply, and the store must be read instead.
    async fn drain(&mut self, room: &Arc<Room>) -> bool {
        let before = self.waiting.len();
        self.waiting.retain(|seq, _| !room.holds_position(*seq));
        let mut ok = true;
        loop {
            let next = room.log_upto() + 1;
            let Some(frame) = self.waiting.remove(&next) else {
                break;
            };
            self.waiting_bytes -= frame.len();
            let applying = room.clone();
            let applied =
                tokio::task::spawn_blocking(move || applying.apply_stored(next, &frame)).await;
            match applied {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::warn!(doc = %room.tag, seq = next, %error, "a change from another instance did not apply; reading the store instead");
                    ok = false;
                    break;
                }
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if self.waiting.len() != before || self.waiting.is_empty() {
            self.waiting_bytes = self.waiting.values().map(Bytes::len).sum();
        }
        self.gap_since = match self.waiting.is_empty() {
            true => None,
            false => self.gap_since.or(Some(Instant::now())),
        };
        ok
    }

    /// Reads what the store holds beyond the room's position and applies it. What waited for
    /// it is dropped: changes stored after the read come again through the poll.
    async fn catch_up(&mut self, room: &Arc<Room>) {
        // A few documents read at once: after Redis comes back, every open document catches
        // up, and the store's pool must go on serving first loads meanwhile.
        let Ok(_turn) = self.cluster.inner.catching_up.acquire().await else {
            return;
        };
        let after = room.log_upto();
        let store = self.cluster.store().clone();
        let id = room.id.clone();
        let read = tokio::task::spawn_blocking(move || store.log_since(&id, after)).await;
        self.waiting.clear();
        self.waiting_bytes = 0;
        self.gap_since = None;
        self.behind = None;
        let log = match read {
            Ok(Ok(Some(log))) => log,
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::warn!(doc = %room.tag, %error, "reading missed changes from the store failed; the next poll tries again");
                return;
            }
            Err(_) => return,
        };
        let applying = room.clone();
        let last_seq = log.last_seq;
        match tokio::task::spawn_blocking(move || applying.apply_log(&log)).await {
            Ok(Ok(applied)) => {
                ::metrics::counter!(crate::server::metrics::CLUSTER_CATCH_UPS).increment(1);
                if applied > 0 {
                    tracing::info!(doc = %room.tag, after, upto = last_seq, applied, "read changes other instances stored that Redis did not bring");
                }
            }
            Ok(Err(error)) => {
                tracing::error!(doc = %room.tag, %error, "changes read from the store did not apply; the room is given up and reloads");
                room.fail_behind("changes other instances stored did not apply");
            }
            Err(_) => room.fail_behind("applying changes other instances stored panicked"),
        }
    }
}

/// Every [`POLL_INTERVAL`], reads where the log of each followed document stands (one query
/// per thousand documents) and tells its follower.
pub(super) async fn poll_forever(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(POLL_INTERVAL);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else { break };
        let cluster = Cluster { inner };
        let ids: Vec<DocId> = cluster.followed().keys().cloned().collect();
        for chunk in ids.chunks(POLL_CHUNK) {
            let store = cluster.store().clone();
            let chunk = chunk.to_vec();
            match tokio::task::spawn_blocking(move || store.log_heads(&chunk)).await {
                Ok(Ok(heads)) => {
                    if std::mem::take(&mut failing) {
                        tracing::info!("reading log positions from the store again");
                    }
                    for (id, head) in heads {
                        cluster.deliver(&id, Inbound::StoreAt(head));
                    }
                }
                Ok(Err(error)) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "reading log positions from the store failed");
                    }
                }
                Err(_) => {}
            }
        }
        drop(cluster);
    }
}

/// Reads the document's links from the store and takes back in the room what they no longer
/// open: earlier generations of each link, or everything once the document is gone (it has
/// no links left).
async fn recheck_links(room: &Room, store: Arc<dyn crate::server::storage::DocStore>) {
    use crate::server::room::revocation::LinkChange;
    let id = room.id.clone();
    match tokio::task::spawn_blocking(move || store.links(&id)).await {
        Ok(Ok(links)) if links.is_empty() => {
            tracing::warn!(doc = %room.tag, "a followed document has no links in the store: taken as deleted");
            room.revoke(LinkChange::Deleted);
        }
        Ok(Ok(links)) => {
            for (role, generation) in links {
                room.revoke(LinkChange::Reset { role, generation });
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(doc = %room.tag, %error, "the document's links could not be read after another instance changed them");
        }
        Err(error) => {
            tracing::warn!(doc = %room.tag, %error, "reading the document's links did not finish");
        }
    }
}
