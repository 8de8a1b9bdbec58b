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
//!
//! # Compaction runs beside the commits
//! Compactions go to a second thread, the compactor, with its own small queue, so that one
//! large document's compaction (a multi-megabyte write and the vacuum after it) never stands
//! between other documents and their commits. The compactor takes them one at a time in the
//! order they were accepted, so a later compaction of a document never lands before an
//! earlier one. Both threads write through the store: an engine that admits one writer at a
//! time (SQLite) lets them take turns (see [`super::storage::sqlite`]), and while the compactor
//! works outside the engine's write lock, commits go on. [`Journal::flush`] waits for both
//! queues.
//!
//! # Panics
//! A store call or a completion that panics must not stop storage for every document. Each
//! store call runs under `catch_unwind`: a panic fails that call's updates with
//! [`StoreError::Panicked`] (a batch is then retried one by one, as for any failure). A
//! completion that panics is logged and the thread carries on. Should a thread end anyway,
//! [`Journal::is_alive`] says so, and readiness reports it.

use super::redact::doc_tag;
use super::storage::{Compaction, DocStore, NewUpdate, StoreError};
use crate::doc_id::DocId;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most updates committed in one transaction.
const MAX_BATCH: usize = 512;

/// Compactions accepted but not yet done. A compaction holds a whole document, so this stays
/// small; one refused is only postponed (the room asks again after its next commit).
const COMPACTION_QUEUE: usize = 64;

/// Called on the journal thread once an update's fate is known: its log position, or why it
/// could not be stored. What should happen once the whole commit is done goes in the
/// [`AfterCommit`].
pub type Completion = Box<dyn FnOnce(Result<i64, StoreError>, &mut AfterCommit) + Send>;

/// Work left by a commit's completions for when all of them have run: a room publishes the
/// commit's changes together (see `room::fanout`). Holds at most one task per completion.
#[derive(Default)]
pub struct AfterCommit(Vec<Box<dyn FnOnce() + Send>>);

/// Left behind by a commit cut short (the journal's thread unwinding), the work still runs:
/// what it publishes and confirms was stored, and its senders would otherwise wait for good.
impl Drop for AfterCommit {
    fn drop(&mut self) {
        self.run();
    }
}

impl AfterCommit {
    /// Runs `work` once every completion of this commit has.
    pub fn then(&mut self, work: impl FnOnce() + Send + 'static) {
        self.0.push(Box::new(work));
    }

    /// Runs what was left, each task on its own: a panic in one is logged and the rest run.
    fn run(&mut self) {
        for work in std::mem::take(&mut self.0) {
            if let Err(payload) = catch_unwind(AssertUnwindSafe(work)) {
                tracing::error!(
                    panic = panic_message(&*payload),
                    "work after a commit panicked; the journal carries on"
                );
            }
        }
    }
}

enum Job {
    Append(NewUpdate, Completion),
    /// Replies once every job queued before it is done.
    Flush(oneshot::Sender<()>),
}

/// Builds a compaction on the compactor thread, reading the store if it needs to; `None` when
/// there is nothing to do after all. Encoding a whole document takes a while for a large one,
/// so rooms hand over this instead of a finished snapshot: neither their lock nor the commit
/// thread waits for it.
pub type BuildCompaction = Box<dyn FnOnce(&dyn DocStore) -> Option<Compaction> + Send>;

enum CompactionJob {
    Compact(BuildCompaction),
    /// A version for a document's History, kept beside its compactions.
    KeepVersion(crate::server::storage::NewVersion),
    /// Replies once every compaction queued before it is done.
    Flush(oneshot::Sender<()>),
    /// Removes everything stored of a deleted document, after what was queued before it.
    Erase(DocId, oneshot::Sender<Result<bool, StoreError>>),
}

/// Cheap-clone handle to the journal's threads.
#[derive(Clone)]
pub struct Journal {
    jobs: mpsc::Sender<Job>,
    compactions: mpsc::Sender<CompactionJob>,
    committer_running: Arc<AtomicBool>,
    compactor_running: Arc<AtomicBool>,
}

/// A reserved place in the journal's queue, taken before an update is applied so that
/// storing it can never be refused afterwards.
pub struct Slot(mpsc::OwnedPermit<Job>);

impl Journal {
    /// Starts the journal's threads over `store`. They end when every handle is dropped.
    pub fn start(store: Arc<dyn DocStore>, capacity: usize) -> Self {
        let (jobs, receiver) = mpsc::channel(capacity.max(1));
        let committer_running = spawn_worker("tandem-journal", {
            let store = store.clone();
            move || run(store, receiver)
        });
        let (compactions, receiver) = mpsc::channel(COMPACTION_QUEUE);
        let compactor_running = spawn_worker("tandem-compactor", move || compact(store, receiver));
        Journal {
            jobs,
            compactions,
            committer_running,
            compactor_running,
        }
    }

    /// Waits for a place in the queue. Fails only when the journal has stopped.
    pub async fn reserve(&self) -> Option<Slot> {
        self.jobs.clone().reserve_owned().await.ok().map(Slot)
    }

    /// Queues a compaction for the compactor if there is room; compaction is an optimisation
    /// and may be skipped. Returns whether it was accepted.
    pub fn try_compact(&self, compaction: Compaction) -> bool {
        self.try_compact_with(Box::new(move |_| Some(compaction)))
    }

    /// Like [`Journal::try_compact`], with the compaction built on the compactor thread.
    pub fn try_compact_with(&self, build: BuildCompaction) -> bool {
        self.compactions
            .try_send(CompactionJob::Compact(build))
            .is_ok()
    }

    /// Queues a version of a document for keeping, if there is room (a version is history, not
    /// the document: skipping one under load loses nothing of the text). Returns whether it
    /// was accepted.
    pub fn try_keep_version(&self, version: crate::server::storage::NewVersion) -> bool {
        self.compactions
            .try_send(CompactionJob::KeepVersion(version))
            .is_ok()
    }

    /// Resolves once everything queued so far has been committed, and every compaction queued
    /// so far (including those the commits' completions asked for) is done.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
        let (done, wait) = oneshot::channel();
        if self
            .compactions
            .send(CompactionJob::Flush(done))
            .await
            .is_ok()
        {
            let _ = wait.await;
        }
    }

    /// Removes everything stored of the deleted document `doc` once every change and
    /// compaction queued before is done, so none of them brings a row of it back. The caller
    /// makes sure nothing more is queued for it (its room refuses changes once deleted).
    /// Returns whether anything was stored.
    pub async fn erase(&self, doc: DocId) -> Result<bool, StoreError> {
        let (done, wait) = oneshot::channel();
        if self.jobs.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
        let (done, wait) = oneshot::channel();
        self.compactions
            .send(CompactionJob::Erase(doc, done))
            .await
            .map_err(|_| StoreError::Panicked)?;
        wait.await.unwrap_or(Err(StoreError::Panicked))
    }

    /// Whether both of the journal's threads are still running. False means updates can no
    /// longer be stored (or compacted): the server is up but not ready.
    pub fn is_alive(&self) -> bool {
        self.committer_running.load(Ordering::Acquire)
            && self.compactor_running.load(Ordering::Acquire)
    }
}

impl Slot {
    pub fn append(self, update: NewUpdate, completion: Completion) {
        self.0.send(Job::Append(update, completion));
    }
}

/// Runs `work` on a new named thread; the flag returned is cleared when the thread ends,
/// however it ends.
fn spawn_worker(name: &str, work: impl FnOnce() + Send + 'static) -> Arc<AtomicBool> {
    struct ClearOnExit(Arc<AtomicBool>);
    impl Drop for ClearOnExit {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let running = Arc::new(AtomicBool::new(true));
    let guard = ClearOnExit(running.clone());
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _guard = guard;
            work();
        })
        .expect("spawning a journal thread");
    running
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
                Job::Flush(done) => {
                    commit(&*store, &mut batch);
                    let _ = done.send(());
                }
            }
        }
        commit(&*store, &mut batch);
    }
}

fn compact(store: Arc<dyn DocStore>, mut receiver: mpsc::Receiver<CompactionJob>) {
    while let Some(job) = receiver.blocking_recv() {
        match job {
            CompactionJob::KeepVersion(version) => {
                if let Err(error) = guarded("keep a version", || store.add_version(&version)) {
                    tracing::warn!(doc = %doc_tag(&version.doc), %error, "a version could not be kept");
                }
            }
            CompactionJob::Compact(build) => {
                let compaction = match guarded("build a compaction", || Ok(build(&*store))) {
                    Ok(Some(compaction)) => compaction,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(%error, "building a compaction failed");
                        continue;
                    }
                };
                let doc = doc_tag(&compaction.doc);
                match guarded("compact", || store.compact(&compaction)) {
                    // The log stays as it was: nothing is lost, loading just reads more.
                    Err(error) => {
                        tracing::warn!(%doc, %error, "compaction failed")
                    }
                    Ok(()) => {
                        tracing::debug!(%doc, upto = compaction.upto, bytes = compaction.snapshot.len(), "compacted")
                    }
                }
            }
            CompactionJob::Flush(done) => {
                let _ = done.send(());
            }
            CompactionJob::Erase(doc, done) => {
                let _ = done.send(guarded("delete a document", || store.delete_document(&doc)));
            }
        }
    }
}

fn commit(store: &dyn DocStore, batch: &mut Batch) {
    if batch.updates.is_empty() {
        return;
    }
    let started = std::time::Instant::now();
    let mut after = AfterCommit::default();
    let result = guarded("append", || store.append(&batch.updates));
    ::metrics::histogram!(super::metrics::COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
    match result {
        Ok(seqs) => {
            ::metrics::counter!(super::metrics::UPDATES_STORED).increment(seqs.len() as u64);
            for (completion, seq) in batch.completions.drain(..).zip(seqs) {
                complete(completion, Ok(seq), &mut after);
            }
        }
        // One update may be what the store refused (a document over a limit); a store that is
        // down, full or read-only would refuse each one again, a wait at a time.
        Err(error) if batch.updates.len() > 1 && !error.is_store_wide() => {
            tracing::warn!(%error, batch = batch.updates.len(), "batch failed; storing its updates one by one");
            for (update, completion) in batch.updates.iter().zip(batch.completions.drain(..)) {
                let result = guarded("append", || {
                    store
                        .append(std::slice::from_ref(update))
                        .map(|seqs| seqs[0])
                });
                if result.is_ok() {
                    ::metrics::counter!(super::metrics::UPDATES_STORED).increment(1);
                }
                complete(completion, result, &mut after);
            }
        }
        Err(error) => {
            let mut completions = batch.completions.drain(..);
            let last = completions.next_back();
            for completion in completions {
                complete(completion, Err(error.shared()), &mut after);
            }
            if let Some(completion) = last {
                complete(completion, Err(error), &mut after);
            }
        }
    }
    after.run();
    batch.updates.clear();
    // Only if a store returned fewer positions than updates: those updates' completions are
    // dropped uncalled, which their rooms see as storage having stopped.
    batch.completions.clear();
}

/// Runs a store call; a panic inside it becomes [`StoreError::Panicked`].
fn guarded<T>(
    call: &'static str,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|payload| {
        tracing::error!(
            call,
            panic = panic_message(&*payload),
            "the store panicked; the call's updates are failed"
        );
        Err(StoreError::Panicked)
    })
}

/// Runs a room's completion; a panic inside it is logged and goes no further.
fn complete(completion: Completion, result: Result<i64, StoreError>, after: &mut AfterCommit) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || completion(result, after))) {
        tracing::error!(
            panic = panic_message(&*payload),
            "an update's completion panicked; the journal carries on"
        );
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a message)")
}
