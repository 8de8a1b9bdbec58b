//! Applying an update, storing it, and only then broadcasting it.
//!
//! An accepted update goes through three steps, always in this order: it is applied to the
//! replica, stored by the [`Journal`], and only then broadcast, from the journal's commit
//! callback. So whatever anyone has seen is on disk, even after a `kill -9`. Answers that
//! reveal the replica (sync step 2) likewise wait until what they contain is durable.
//!
//! Compaction (merging the stored log into one snapshot) encodes the whole document, which
//! for a large one takes a while: it runs on the journal's compactor thread, from what is
//! stored rather than from the live replica, so neither this room's editors nor other rooms'
//! commits wait for it.

use super::metered;
use super::runs;
use super::shape;
use super::{ConnId, Durable, Presence, Room, State};
use crate::protocol;
use crate::server::error::CloseReason;
use crate::server::journal::AfterCommit;
use crate::server::storage::{Compaction, DocStore, NewUpdate, StoreError};
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::oneshot;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

/// The longest an update waits for a compaction to make room under the size limit, and how
/// often it looks again meanwhile.
const MAKE_ROOM_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
const MAKE_ROOM_POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Integrations this slow are logged.
const SLOW_INTEGRATION: std::time::Duration = std::time::Duration::from_millis(100);

impl Room {
    /// Applies an update, stores what it changed and then broadcasts it. What is stored and
    /// broadcast is the transaction's own delta, not the bytes received: a reconnecting
    /// client's sync step 2 repeats much that the room already has, and blocks that wait for
    /// missing dependencies are held back (see [`pending`]).
    ///
    /// `live` tells an update typed now (which claims its authors' client ids for `from`, see
    /// [`super::authors`]) from a sync step 2, which may carry edits made earlier under ids other
    /// pages of the same person use. Returns what the work cost, in messages' worth beyond the
    /// message itself, and how long integrating took (see [`super::Received::slow_cost`]).
    pub(super) async fn apply_update(
        self: &Arc<Self>,
        from: ConnId,
        presence: &Presence,
        bytes: &[u8],
        live: bool,
    ) -> Result<(u32, u32, Durable), CloseReason> {
        let sections = shape::check(bytes, &[protocol::CONTENT, protocol::TITLE])
            .map_err(|e| CloseReason::invalid(e.to_string()))?;
        // Runs of characters are joined first: yrs would join them at commit, at a cost
        // quadratic in their length.
        let update = runs::join(bytes)
            .map_err(|e| CloseReason::invalid(format!("undecodable update: {e}")))?
            .unwrap_or_else(|| bytes.to_vec());
        self.make_room(bytes.len()).await;
        // Reserve the journal slot before applying, so an applied change is always stored.
        let slot = self
            .journal
            .reserve()
            .await
            .ok_or_else(|| CloseReason::internal("storage has stopped"))?;
        // Integrating runs on a blocking thread: it may take up to its time limit (see
        // [`metered`]), and the runtime's workers must go on serving every other document
        // meanwhile.
        let room = self.clone();
        let expel = presence.expelled.clone();
        let message_bytes = bytes.len();
        let outcome = tokio::task::spawn_blocking(move || -> Result<_, CloseReason> {
            let mut state = room.lock();
            if let Some(failure) = &state.failure {
                return Err(CloseReason::internal(failure.clone()));
            }
            // An update is never smaller than what it adds, so this refuses every change that
            // could push the document past its limit, before anything is applied.
            let stored_bytes = room.ledger().bytes_toward_limit();
            if stored_bytes + state.pending.bytes() + message_bytes > room.policy.max_doc_bytes
            {
                return Err(CloseReason::too_big(format!(
                    "document would exceed its size limit of {} bytes",
                    room.policy.max_doc_bytes
                )));
            }
            let started = std::time::Instant::now();
            let owned = state.authors.owned_count();
            let integrated = room.integrate(&mut state, from, &expel, &update, &sections, live);
            // Ids newly written as here are claimed before the change itself is published.
            if state.authors.owned_count() > owned {
                room.relay_claims(&state);
            }
            // Time spent integrating counts against the sender's rate like bytes answered do:
            // an update built to be slow (see the README) uses up its sender's allowance.
            let took = started.elapsed();
            if took >= SLOW_INTEGRATION {
                tracing::info!(doc = %room.tag, conn = from, bytes = message_bytes, millis = took.as_millis() as u64, "an update was slow to integrate");
            }
            let slow = took.as_millis() / super::COST_UNIT_MILLIS;
            let applied = match integrated {
                Ok(applied) => applied,
                Err(Integration::Taken(taken)) => {
                    tracing::info!(doc = %room.tag, conn = from, client = taken.client.get(), "a connection wrote as a client another open connection writes as; refused");
                    return Err(CloseReason::lagging(taken.to_string()));
                }
                Err(Integration::Panicked) => {
                    room.fail(
                        &mut state,
                        "the document's replica failed; reopen the document".into(),
                    );
                    return Err(CloseReason::internal(
                        "the document's replica failed; reopen the document",
                    ));
                }
            };
            let refusal = applied.refusal;
            let cost = applied.work_bytes / super::COST_UNIT_BYTES;
            // Whatever a held update of someone else's brought in, its sender's peers have
            // not seen, nor has the connection whose update unblocked it: it goes to everyone.
            let publish_as = if applied.others_included {
                ConnId::MAX
            } else {
                from
            };
            let (sequence, stored) = match applied.delta {
                // Nothing new, but what it repeats may still be on its way to disk.
                None => (state.applied, None),
                Some(delta) => {
                    room.note_change(&mut state, from);
                    state.applied += 1;
                    let sequence = state.applied;
                    let title = protocol::read_title(&state.doc.transact());
                    let frame = encode_update(&delta);
                    room.ledger().unstored_bytes += frame.len();
                    let (done, stored) = oneshot::channel();
                    let room = room.clone();
                    slot.append(
                        NewUpdate {
                            doc: room.id.clone(),
                            data: delta,
                            title,
                        },
                        Box::new(move |result, after| {
                            room.committed(sequence, publish_as, frame, result, done, after)
                        }),
                    );
                    (sequence, Some(stored))
                }
            };
            Ok((sequence, stored, refusal, cost, slow))
        })
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            // A panic outside yrs's own integration (which fails the room itself): the replica
            // may hold a change that was never stored, so the room gives up.
            Err(_) => {
                self.fail(
                    &mut self.lock(),
                    "the document's replica failed; reopen the document".into(),
                );
                return Err(CloseReason::internal(
                    "the document's replica failed; reopen the document",
                ));
            }
        };
        let (sequence, stored, refusal, cost, slow) = outcome?;
        // What integrated is stored and broadcast even when the rest of the update is refused
        // (the replica has it, so everyone must): the journal does that whatever the sender's
        // fate.
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        let room = self.clone();
        let durable: Durable = Box::pin(async move {
            match stored {
                // Nothing new, but what it repeats may still be on its way to disk.
                None => room.durable_at(sequence).await,
                Some(stored) => match stored.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(error)) => {
                        Err(CloseReason::internal(format!("storage failed: {error}")))
                    }
                    Err(_) => Err(CloseReason::internal("storage has stopped")),
                },
            }
        });
        let cost = u32::try_from(cost).unwrap_or(u32::MAX);
        let slow = u32::try_from(slow).unwrap_or(u32::MAX);
        Ok((cost, slow, durable))
    }

    /// Integrates `update` (lib0 v1) and whatever held updates it unblocks, in one
    /// transaction, and returns the change to store and broadcast, with the reason to close the
    /// sender when part of its update is refused. Integration stops at the
    /// policy's time limit (see [`metered`]): what went in by then is kept. yrs reports
    /// malformed updates as errors; a panic deep inside integration is caught here and fails
    /// the room, because the replica may be half-changed. The authors of `sections` are checked
    /// against the document's clocks before anything is applied, and claimed for `from` after,
    /// when the update is `live`.
    fn integrate(
        &self,
        state: &mut State,
        from: ConnId,
        expel: &tokio_util::sync::CancellationToken,
        update: &[u8],
        sections: &[super::authors::Section],
        live: bool,
    ) -> Result<Applied, Integration> {
        let State {
            doc,
            pending,
            authors,
            ..
        } = state;
        let limit = self.policy.integration_time_limit;
        let deadline = std::time::Instant::now() + limit;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut txn = doc.transact_mut();
            // Before anything is applied, the transaction's starting clocks are the document's.
            authors
                .check(from, sections, txn.before_state())
                .map_err(Integration::Taken)?;
            let mut refusal = None;
            let mut work_bytes = 0;
            match metered::apply(&mut txn, update, deadline) {
                Err(e) => {
                    refusal = Some(CloseReason::invalid(e.to_string()));
                }
                Ok(applied) => {
                    if let Some(error) = applied.error {
                        refusal = Some(CloseReason::invalid(format!(
                            "update does not apply: {error}"
                        )));
                    } else if !applied.finished {
                        tracing::info!(doc = %self.tag, conn = from, "an update took longer than its time limit to integrate; the rest of it is refused");
                        refusal = Some(CloseReason::policy(format!(
                            "update took longer than {} ms to integrate; the rest of it is refused",
                            limit.as_millis()
                        )));
                    }
                    if let Some(waiting) = applied.waiting {
                        match pending.hold(from, waiting, live, expel) {
                            Ok(merged) => work_bytes += merged,
                            Err(e) => {
                                refusal.get_or_insert(CloseReason::invalid(e.to_string()));
                            }
                        }
                    }
                }
            }
            if self
                .panic_next
                .swap(false, std::sync::atomic::Ordering::SeqCst)
            {
                panic!("integration panicked (on request)");
            }
            // The sender claims what its own update advanced, before held updates of others
            // are retried in the same transaction (those claim for their own senders).
            let before = txn.before_state().clone();
            if live {
                authors.claim(from, sections, &before, &txn.state_vector());
            }
            // After holding, so that the sender's own waiting blocks are tried with the rest.
            let retried = pending.retry(&mut txn, &before, from, authors, deadline);
            work_bytes += retried.bytes;
            // yrs fixes the transaction's after-state when it is first read: only now.
            let changed = txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
            let delta = changed.then(|| txn.encode_update_v1());
            // yrs can integrate an update into a replica it then encodes unreadably: what is
            // stored and broadcast must read back, or the replica is given up before anyone
            // sees it.
            if delta
                .as_deref()
                .is_some_and(|delta| Update::decode_v1(delta).is_err())
            {
                return Err(Integration::Panicked);
            }
            Ok(Applied {
                delta,
                others_included: retried.others_included,
                refusal,
                work_bytes,
            })
        }));
        outcome.unwrap_or(Err(Integration::Panicked))
    }

    /// Drops updates that waited too long for what they depend on; their senders are closed.
    pub(super) fn expire_pending(&self, state: &mut State, now: tokio::time::Instant) {
        let expired = state.pending.expire(now);
        if expired > 0 {
            tracing::info!(doc = %self.tag, expired, "updates waited too long for what they depend on; their senders are closed");
        }
    }

    /// Runs on the journal thread once an update's fate is known, in the order updates were
    /// applied.
    fn committed(
        self: &Arc<Self>,
        sequence: u64,
        from: ConnId,
        frame: Bytes,
        result: Result<i64, StoreError>,
        done: oneshot::Sender<Result<(), StoreError>>,
        after: &mut AfterCommit,
    ) {
        match result {
            Ok(seq) => {
                {
                    let mut ledger = self.ledger();
                    ledger.unstored_bytes = ledger.unstored_bytes.saturating_sub(frame.len());
                    ledger.last_seq = seq;
                    self.mark_stored(&mut ledger, seq);
                }
                self.count_logged(seq, frame.len());
                // Sent to the others, then known as durable (to joiners, the sender and the
                // other instances), with the rest of the commit.
                self.stage((from, frame), (seq, sequence), done, after);
            }
            Err(error) => {
                {
                    let mut ledger = self.ledger();
                    ledger.unstored_bytes = ledger.unstored_bytes.saturating_sub(frame.len());
                }
                let mut state = self.lock();
                self.fail(&mut state, format!("storage failed: {error}"));
                drop(state);
                let _ = done.send(Err(error));
            }
        }
    }

    /// Counts a record added to the document's log at `seq` (here, or by another instance
    /// sharing the store) and starts a compaction when the log has grown enough. A record a
    /// compaction already covers is not counted.
    pub(super) fn count_logged(self: &Arc<Self>, seq: i64, bytes: usize) {
        // Not the replica's lock: an update may hold that while it integrates, and this runs
        // on the journal's one commit thread.
        let compact = {
            let mut ledger = self.ledger();
            if seq <= ledger.compacted_upto {
                return;
            }
            ledger.tail_updates += 1;
            ledger.tail_bytes += bytes;
            ledger.stored_bytes += bytes;
            let due = ledger.tail_updates >= self.policy.compact_after_updates
                || ledger.tail_bytes >= self.policy.compact_after_bytes;
            let start = due && !ledger.compacting && !self.failed.is_cancelled();
            ledger.compacting |= start;
            start
        };
        if compact {
            self.compact_in_background();
        }
    }

    /// When only the log's uncompacted tail stands between an update of `bytes` and the
    /// document's size limit, waits for that tail to be folded into the snapshot (at most
    /// [`MAKE_ROOM_WAIT`]) rather than refusing a change to a small document: a writer that
    /// sends faster than compaction keeps up (its changes are pipelined, see
    /// `crate::server::session`) is slowed to compaction's pace. A document whose content
    /// itself fills the limit has no tail to fold and is refused at once by the caller.
    async fn make_room(self: &Arc<Self>, bytes: usize) {
        let deadline = tokio::time::Instant::now() + MAKE_ROOM_WAIT;
        loop {
            let start = {
                let mut ledger = self.ledger();
                let wanted = ledger.bytes_toward_limit() + bytes;
                // Folding the tail frees at most the tail: when that cannot make room (the
                // content itself fills the limit), the change is refused at once rather than
                // setting off a compaction of a large document for nothing.
                let foldable = ledger.tail_bytes + ledger.unstored_bytes;
                if wanted <= self.policy.max_doc_bytes
                    || wanted - self.policy.max_doc_bytes > foldable
                    || self.failed.is_cancelled()
                {
                    return;
                }
                // What is in flight lands soon; what landed is folded by a compaction.
                let start = ledger.tail_updates > 0 && !ledger.compacting;
                ledger.compacting |= start;
                start
            };
            if start {
                self.compact_in_background();
            }
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(MAKE_ROOM_POLL).await;
        }
    }

    /// Hands the journal's compactor a compaction to build: it rebuilds the document from what
    /// is stored and encodes the snapshot there. The live replica is not read, so neither this
    /// room's editors (whose writes would wait for a read transaction) nor, through them, the
    /// commit thread wait for a large document to encode.
    fn compact_in_background(self: &Arc<Self>) {
        let room = self.clone();
        let accepted = self.journal.try_compact_with(Box::new(move |store| {
            let built = build_compaction(&room.id, store);
            let mut ledger = room.ledger();
            ledger.compacting = false;
            let (compaction, tail_updates, tail_bytes) = match built {
                Ok(built) => built?,
                Err(error) => {
                    tracing::warn!(doc = %room.tag, %error, "a compaction could not be built; the log stays as it is");
                    return None;
                }
            };
            ledger.compacted_upto = ledger.compacted_upto.max(compaction.upto);
            // What was logged after the records compacted stays in the tail.
            ledger.tail_updates = ledger.tail_updates.saturating_sub(tail_updates);
            ledger.tail_bytes = ledger.tail_bytes.saturating_sub(tail_bytes);
            ledger.stored_bytes = compaction.snapshot.len() + ledger.tail_bytes;
            Some(compaction)
        }));
        if !accepted {
            // The compactor is busy: the next commit asks again.
            self.ledger().compacting = false;
        }
    }

    /// Waits until every change up to `sequence` is durable, or the room fails.
    pub(super) async fn durable_at(&self, sequence: u64) -> Result<(), CloseReason> {
        let mut durable = self.durable.subscribe();
        tokio::select! {
            result = durable.wait_for(|d| *d >= sequence) => result
                .map(|_| ())
                .map_err(|_| CloseReason::internal("storage has stopped")),
            _ = self.failed.cancelled() => Err(CloseReason::internal(
                self.failure().unwrap_or_else(|| "the document failed".into()),
            )),
        }
    }

    /// Called when the last connection has left: merges the stored log into a snapshot so
    /// the next load is short.
    pub fn unload(self: &Arc<Self>) {
        if self.deleted() {
            // Nothing of it is written again; whatever was queued before is removed after it
            // lands (on every instance that had it open).
            let (journal, doc, tag) = (self.journal.clone(), self.id.clone(), self.tag);
            tokio::spawn(async move {
                if let Err(error) = journal.erase(doc).await {
                    tracing::error!(doc = %tag, %error, "a deleted document's last rows could not be removed");
                }
            });
            return;
        }
        let start = {
            let mut state = self.lock();
            // The last editor left: what they wrote becomes a version.
            self.cut_version(&mut state);
            let mut ledger = self.ledger();
            let start = state.failure.is_none() && ledger.tail_updates > 0 && !ledger.compacting;
            ledger.compacting |= start;
            start
        };
        if start {
            self.compact_in_background();
        }
    }
}

/// What one update changed.
struct Applied {
    /// The transaction's change, lib0 v1; `None` when it changed nothing.
    delta: Option<Vec<u8>>,
    /// Whether the change includes updates held for other connections.
    others_included: bool,
    /// Why the sender is closed, when part of what it sent is refused.
    refusal: Option<CloseReason>,
    /// Bytes of held updates merged or retried: work beyond the update itself.
    work_bytes: usize,
}

/// Why integration did not return a change.
enum Integration {
    /// The update adds to a client another open connection owns; nothing was applied.
    Taken(super::authors::Taken),
    /// yrs panicked or left the replica unreadable: the room fails.
    Panicked,
}

/// Merges what the store holds for `doc` into one snapshot, with the number and bytes of the
/// log records it replaces; `None` when nothing is stored. The snapshot replaces the log for
/// good, so it must read back (yrs has encoded documents it could not decode).
fn build_compaction(
    doc: &crate::doc_id::DocId,
    store: &dyn DocStore,
) -> Result<Option<(Compaction, usize, usize)>, String> {
    let Some(stored) = store.load(doc).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let replica = stored.replica()?;
    let txn = replica.transact();
    let snapshot = txn.encode_diff_v1(&StateVector::default());
    Update::decode_v1(&snapshot).map_err(|e| format!("the snapshot does not read back: {e}"))?;
    let compaction = Compaction {
        doc: doc.clone(),
        snapshot,
        upto: stored.last_seq,
        title: protocol::read_title(&txn),
    };
    let tail_bytes = stored.updates.iter().map(Vec::len).sum();
    Ok(Some((compaction, stored.updates.len(), tail_bytes)))
}

pub(super) fn encode_update(delta: &[u8]) -> Bytes {
    super::encode(Message::Sync(SyncMessage::Update(delta.to_vec())))
}
