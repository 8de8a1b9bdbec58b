//! The journal against a store that misbehaves: calls that panic, completions that panic, and
//! a compaction that takes its time. The store is real SQLite in a temporary directory, with a
//! script layered over it that panics on a chosen call or holds a call until the test says go.
#![cfg(feature = "ssr")]

mod common;

use common::{random_id, PATIENCE};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tandem::doc_id::DocId;
use tandem::server::journal::Journal;
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::{Compaction, DocStore, NewUpdate, StoreError, StoredDoc};
use tokio::sync::{mpsc, oneshot};

/// Holds a store call until the test releases it, and tells the test when a call is waiting.
struct Gate {
    entered: mpsc::UnboundedSender<()>,
    release: Mutex<std::sync::mpsc::Receiver<()>>,
}

/// The test's side of a [`Gate`].
struct GateControl {
    entered: mpsc::UnboundedReceiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

fn gate() -> (Gate, GateControl) {
    let (entered_tx, entered) = mpsc::unbounded_channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    (
        Gate {
            entered: entered_tx,
            release: Mutex::new(release_rx),
        },
        GateControl { entered, release },
    )
}

impl Gate {
    fn pass(&self) {
        let _ = self.entered.send(());
        // Bounded: a test that forgets to open the gate fails instead of hanging.
        let _ = self.release.lock().unwrap().recv_timeout(PATIENCE);
    }
}

impl GateControl {
    async fn wait_entered(&mut self) {
        tokio::time::timeout(PATIENCE, self.entered.recv())
            .await
            .expect("the store call starts")
            .expect("the store is still there");
    }
    fn open(&self) {
        let _ = self.release.send(());
    }
}

/// A panic whose payload panics again when it is dropped: a panic that escapes any handler
/// that drops what it caught.
struct DropBomb;
impl Drop for DropBomb {
    fn drop(&mut self) {
        panic!("the payload of a panic panicked when dropped");
    }
}

#[derive(Default)]
struct Script {
    /// The append call (counting from 1) that panics.
    panic_on_append: Option<usize>,
    /// ... with a payload that panics when dropped.
    drop_bomb: bool,
    /// Holds the first append call.
    hold_first_append: Option<Gate>,
    /// Holds every compaction.
    hold_compact: Option<Gate>,
}

struct ScriptedStore {
    real: SqliteStore,
    script: Script,
    appends: AtomicUsize,
}

impl ScriptedStore {
    fn open(dir: &Path, script: Script) -> Arc<Self> {
        Arc::new(ScriptedStore {
            real: SqliteStore::open(dir, 0).unwrap(),
            script,
            appends: AtomicUsize::new(0),
        })
    }
}

impl DocStore for ScriptedStore {
    fn load(&self, doc: &DocId) -> Result<Option<StoredDoc>, StoreError> {
        self.real.load(doc)
    }

    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        let call = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        if call == 1 {
            if let Some(gate) = &self.script.hold_first_append {
                gate.pass();
            }
        }
        if self.script.panic_on_append == Some(call) {
            if self.script.drop_bomb {
                std::panic::panic_any(DropBomb);
            }
            panic!("the store fails on append call {call}");
        }
        self.real.append(updates)
    }

    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        if let Some(gate) = &self.script.hold_compact {
            gate.pass();
        }
        self.real.compact(compaction)
    }

    fn backup(&self, destination: &Path) -> Result<(), StoreError> {
        self.real.backup(destination)
    }
}

fn update(doc: &DocId, data: &str) -> NewUpdate {
    NewUpdate {
        doc: doc.clone(),
        data: data.as_bytes().to_vec(),
        title: String::new(),
    }
}

/// Queues an update; the receiver gets its completion's result.
async fn append(
    journal: &Journal,
    doc: &DocId,
    data: &str,
) -> oneshot::Receiver<Result<i64, StoreError>> {
    let (done, result) = oneshot::channel();
    journal
        .reserve()
        .await
        .expect("the journal is running")
        .append(
            update(doc, data),
            Box::new(move |outcome, _| {
                let _ = done.send(outcome);
            }),
        );
    result
}

async fn outcome(result: oneshot::Receiver<Result<i64, StoreError>>) -> Result<i64, StoreError> {
    tokio::time::timeout(PATIENCE, result)
        .await
        .expect("the update's fate is known in time")
        .expect("the completion was called")
}

fn stored(store: &dyn DocStore, doc: &DocId) -> Vec<String> {
    store
        .load(doc)
        .unwrap()
        .map(|d| d.updates)
        .unwrap_or_default()
        .into_iter()
        .map(|u| String::from_utf8(u).unwrap())
        .collect()
}

#[tokio::test]
async fn a_store_call_that_panics_fails_its_update_and_later_appends_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = ScriptedStore::open(
        dir.path(),
        Script {
            panic_on_append: Some(1),
            ..Script::default()
        },
    );
    let journal = Journal::start(store.clone(), 16);
    let doc = random_id();

    let first = outcome(append(&journal, &doc, "lost").await).await;
    assert!(matches!(first, Err(StoreError::Panicked)), "{first:?}");
    assert!(journal.is_alive());

    let second = outcome(append(&journal, &doc, "kept").await).await;
    assert!(second.is_ok(), "{second:?}");
    assert_eq!(stored(&*store, &doc), ["kept"]);
}

#[tokio::test]
async fn a_batch_whose_store_call_panics_is_stored_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let (hold, mut control) = gate();
    let store = ScriptedStore::open(
        dir.path(),
        Script {
            hold_first_append: Some(hold),
            panic_on_append: Some(2),
            ..Script::default()
        },
    );
    let journal = Journal::start(store.clone(), 16);
    let (a, b) = (random_id(), random_id());

    // While the first commit is held, three updates queue up: the next commit takes them
    // together, and that is the call that panics.
    let first = append(&journal, &a, "first").await;
    control.wait_entered().await;
    let queued = [
        append(&journal, &a, "one").await,
        append(&journal, &b, "two").await,
        append(&journal, &a, "three").await,
    ];
    control.open();

    assert!(outcome(first).await.is_ok());
    for result in queued {
        let result = outcome(result).await;
        assert!(result.is_ok(), "retried alone, it is stored: {result:?}");
    }
    assert_eq!(
        store.appends.load(Ordering::SeqCst),
        5,
        "one held call, one batch of three that panicked, three retries"
    );
    assert_eq!(stored(&*store, &a), ["first", "one", "three"]);
    assert_eq!(stored(&*store, &b), ["two"]);
}

#[tokio::test]
async fn a_completion_that_panics_does_not_stop_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let store = ScriptedStore::open(dir.path(), Script::default());
    let journal = Journal::start(store.clone(), 16);
    let doc = random_id();

    journal.reserve().await.unwrap().append(
        update(&doc, "stored, then its room fails"),
        Box::new(|_, _| panic!("a room's completion fails")),
    );
    let next = outcome(append(&journal, &doc, "next").await).await;
    assert!(next.is_ok(), "{next:?}");
    assert!(journal.is_alive());
    assert_eq!(
        stored(&*store, &doc),
        ["stored, then its room fails", "next"]
    );
}

#[tokio::test]
async fn a_long_compaction_does_not_hold_up_other_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (hold, mut control) = gate();
    let store = ScriptedStore::open(
        dir.path(),
        Script {
            hold_compact: Some(hold),
            ..Script::default()
        },
    );
    let journal = Journal::start(store.clone(), 16);
    let (big, other) = (random_id(), random_id());

    let upto = outcome(append(&journal, &big, "logged").await)
        .await
        .unwrap();
    assert!(journal.try_compact(Compaction {
        doc: big.clone(),
        snapshot: vec![b'S'; 4 * 1024 * 1024],
        upto,
        title: String::new(),
    }));
    control.wait_entered().await;

    // The compaction is under way and held: another document's changes still commit.
    let meanwhile = outcome(append(&journal, &other, "meanwhile").await).await;
    assert!(meanwhile.is_ok(), "{meanwhile:?}");
    assert_eq!(stored(&*store, &other), ["meanwhile"]);

    // Flushing waits for the compaction too.
    let flush = tokio::spawn({
        let journal = journal.clone();
        async move { journal.flush().await }
    });
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert!(
        !flush.is_finished(),
        "flush returned while a compaction was pending"
    );
    control.open();
    tokio::time::timeout(PATIENCE, flush)
        .await
        .expect("flush ends once the compaction is done")
        .unwrap();
    let compacted = store.load(&big).unwrap().unwrap();
    assert_eq!(compacted.snapshot.map(|s| s.len()), Some(4 * 1024 * 1024));
    assert!(compacted.updates.is_empty());
}

#[tokio::test]
async fn is_alive_tells_when_a_journal_thread_has_died() {
    let dir = tempfile::tempdir().unwrap();
    let store = ScriptedStore::open(
        dir.path(),
        Script {
            panic_on_append: Some(1),
            drop_bomb: true,
            ..Script::default()
        },
    );
    let journal = Journal::start(store.clone(), 16);
    assert!(journal.is_alive());

    let result = append(&journal, &random_id(), "the end").await;
    let ended = tokio::time::timeout(PATIENCE, result).await.unwrap();
    assert!(ended.is_err(), "the completion died with the thread");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while journal.is_alive() {
        assert!(tokio::time::Instant::now() < deadline, "still alive");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(journal.reserve().await.is_none(), "nothing more is queued");
}

#[tokio::test]
async fn work_left_by_a_commits_completions_runs_once_all_of_them_have() {
    let dir = tempfile::tempdir().unwrap();
    let (held, mut control) = gate();
    let store = ScriptedStore::open(
        dir.path(),
        Script {
            hold_first_append: Some(held),
            ..Script::default()
        },
    );
    let journal = Journal::start(store.clone(), 16);
    let doc = random_id();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (done, finished) = oneshot::channel();
    let mut done = Some(done);
    // The first commit holds the store; the next three updates queue behind it and are
    // committed together.
    for i in 0..4 {
        if i == 1 {
            control.wait_entered().await;
        }
        let (log, done) = (log.clone(), if i == 3 { done.take() } else { None });
        journal.reserve().await.unwrap().append(
            update(&doc, &format!("update {i}")),
            Box::new(move |outcome, after| {
                assert!(outcome.is_ok());
                log.lock().unwrap().push(format!("completed {i}"));
                if i == 2 {
                    after.then(|| panic!("a room's work after the commit fails"));
                }
                let log = log.clone();
                after.then(move || {
                    log.lock().unwrap().push(format!("after {i}"));
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                });
            }),
        );
    }
    control.open();
    tokio::time::timeout(PATIENCE, finished)
        .await
        .expect("the last update's after-commit work runs")
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [
            "completed 0",
            "after 0",
            "completed 1",
            "completed 2",
            "completed 3",
            "after 1",
            "after 2",
            "after 3",
        ],
        "each commit's work runs after all of its completions, past one that panics"
    );
    assert!(journal.is_alive());
}
