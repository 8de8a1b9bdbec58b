//! Group commit: the one writer between the rooms and the store.
//!
//! Rooms hand the journal their accepted updates; a dedicated thread takes everything that
//! has queued up while the previous commit ran and stores it in one transaction, so the cost of
//! a durable commit is shared by all the updates that arrive together. After a commit, each
//! update's completion runs on that thread in queue order: that is where a room broadcasts the
//! update, so nobody ever sees a change that is not yet on disk.
//!
//! When a batch fails, its updates are retried one by one, so one room's failure (a cap
//! reached, a bad row) does not fail the others in the same batch.
//!
//! The queue is bounded: a room reserves a slot before it applies an update, so a storm of
//! updates waits at the door instead of piling up in memory.

use super::storage::{Compaction, DocStore, NewUpdate, StoreError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most updates committed in one transaction.
const MAX_BATCH: usize = 512;

/// Called on the journal thread once an update's fate is known: its log position, or why it
/// could not be stored.
pub type Completion = Box<dyn FnOnce(Result<i64, StoreError>) + Send>;

enum Job {
    Append(NewUpdate, Completion),
    Compact(Compaction),
    /// Replies once every job queued before it is done.
    Flush(oneshot::Sender<()>),
}

/// Cheap-clone handle to the journal thread.
#[derive(Clone)]
pub struct Journal {
    jobs: mpsc::Sender<Job>,
}

/// A reserved place in the journal's queue, taken before an update is applied so that
/// storing it can never be refused afterwards.
pub struct Slot<'a>(mpsc::Permit<'a, Job>);

impl Journal {
    /// Starts the journal thread over `store`. The thread ends when every handle is dropped.
    pub fn start(store: Arc<dyn DocStore>, capacity: usize) -> Self {
        let (jobs, receiver) = mpsc::channel(capacity.max(1));
        std::thread::Builder::new()
            .name("tandem-journal".into())
            .spawn(move || run(store, receiver))
            .expect("spawning the journal thread");
        Journal { jobs }
    }

    /// Waits for a place in the queue. Fails only when the journal has stopped.
    pub async fn reserve(&self) -> Option<Slot<'_>> {
        self.jobs.reserve().await.ok().map(Slot)
    }

    /// Queues a compaction if there is room; compaction is an optimisation and may be skipped.
    pub fn try_compact(&self, compaction: Compaction) -> bool {
        self.jobs.try_send(Job::Compact(compaction)).is_ok()
    }

    /// Resolves once everything queued so far has been committed.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Slot<'_> {
    pub fn append(self, update: NewUpdate, completion: Completion) {
        self.0.send(Job::Append(update, completion));
    }
}

/// Appends waiting for the next commit: the updates and, at the same index, their completions.
#[derive(Default)]
struct Batch {
    updates: Vec<NewUpdate>,
    completions: Vec<Completion>,
}

fn run(store: Arc<dyn DocStore>, mut receiver: mpsc::Receiver<Job>) {
    let mut batch = Batch::default();
    while let Some(first) = receiver.blocking_recv() {
        let mut next = Some(first);
        // Take what is already waiting, up to a batch, stopping at anything that is not an
        // append so that jobs stay in queue order.
        while let Some(job) = next.take() {
            match job {
                Job::Append(update, completion) => {
                    batch.updates.push(update);
                    batch.completions.push(completion);
                    if batch.updates.len() < MAX_BATCH {
                        next = receiver.try_recv().ok();
                    }
                }
                other => {
                    commit(&*store, &mut batch);
                    handle(&*store, other);
                }
            }
        }
        commit(&*store, &mut batch);
    }
}

fn handle(store: &dyn DocStore, job: Job) {
    match job {
        Job::Append(update, completion) => {
            let mut batch = Batch {
                updates: vec![update],
                completions: vec![completion],
            };
            commit(store, &mut batch);
        }
        Job::Compact(compaction) => {
            if let Err(error) = store.compact(&compaction) {
                // The log stays as it was: nothing is lost, loading just reads more.
                tracing::warn!(doc = %compaction.doc, %error, "compaction failed");
            } else {
                tracing::debug!(doc = %compaction.doc, upto = compaction.upto, bytes = compaction.snapshot.len(), "compacted");
            }
        }
        Job::Flush(done) => {
            let _ = done.send(());
        }
    }
}

fn commit(store: &dyn DocStore, batch: &mut Batch) {
    if batch.updates.is_empty() {
        return;
    }
    match store.append(&batch.updates) {
        Ok(seqs) => {
            for (completion, seq) in batch.completions.drain(..).zip(seqs) {
                completion(Ok(seq));
            }
        }
        Err(error) if batch.updates.len() > 1 => {
            tracing::warn!(%error, batch = batch.updates.len(), "batch failed; storing its updates one by one");
            for (update, completion) in batch.updates.iter().zip(batch.completions.drain(..)) {
                completion(
                    store
                        .append(std::slice::from_ref(update))
                        .map(|seqs| seqs[0]),
                );
            }
        }
        Err(error) => {
            let completion = batch.completions.pop().expect("one completion per update");
            completion(Err(error));
        }
    }
    batch.updates.clear();
}
