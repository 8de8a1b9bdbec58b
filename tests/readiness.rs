//! `/readyz` and `/healthz` over real HTTP: ready means changes can be stored.
#![cfg(feature = "ssr")]

mod common;

use common::{random_id, TestServer, PATIENCE};
use std::time::Duration;
use tandem::server::storage::sqlite::SqliteStore;
use tandem::server::storage::{Compaction, DocStore, NewUpdate, StoreError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One plain HTTP/1.1 request over a fresh connection; returns the status and the body.
async fn get(server: &TestServer, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("the server answers");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_server_that_can_store_changes_is_ready() {
    let server = TestServer::start().await;
    assert_eq!(get(&server, "/readyz").await, (200, "ready".into()));
    assert_eq!(get(&server, "/healthz").await, (200, "ok".into()));
}

#[tokio::test]
async fn a_full_store_is_not_ready_while_the_process_stays_healthy() {
    let server = TestServer::start_with(|c| c.max_storage_mb = 1).await;
    assert_eq!(get(&server, "/readyz").await.0, 200);

    // Another writer fills the database up to the server's cap.
    let filler = SqliteStore::open(server.data_dir.path(), 1024 * 1024).unwrap();
    let doc = random_id();
    let mut last = 0;
    let mut full = false;
    for _ in 0..200 {
        match filler.append(&[NewUpdate {
            doc: doc.clone(),
            data: vec![9; 16 * 1024],
            title: String::new(),
        }]) {
            Ok(seqs) => last = seqs[0],
            Err(StoreError::Full) => {
                full = true;
                break;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(full, "the cap was reached");

    // The answer is cached for a second: poll until the probe runs again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let (status, body) = loop {
        let answer = get(&server, "/readyz").await;
        if answer.0 != 200 || tokio::time::Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the disk is full"), "{body}");
    assert_eq!(get(&server, "/healthz").await, (200, "ok".into()));

    // Space freed: ready again.
    filler
        .compact(&Compaction {
            doc,
            snapshot: Vec::new(),
            upto: last,
            title: String::new(),
        })
        .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while get(&server, "/readyz").await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real store whose writability probe waits until the test lets it finish.
struct SlowProbe {
    real: SqliteStore,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    probes: std::sync::atomic::AtomicUsize,
}

impl DocStore for SlowProbe {
    fn load(
        &self,
        doc: &tandem::doc_id::DocId,
    ) -> Result<Option<tandem::server::storage::StoredDoc>, StoreError> {
        self.real.load(doc)
    }
    fn append(&self, updates: &[NewUpdate]) -> Result<Vec<i64>, StoreError> {
        self.real.append(updates)
    }
    fn compact(&self, compaction: &Compaction) -> Result<(), StoreError> {
        self.real.compact(compaction)
    }
    fn backup(&self, destination: &std::path::Path) -> Result<(), StoreError> {
        self.real.backup(destination)
    }
    fn check_writable(&self) -> Result<(), StoreError> {
        self.probes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.release.lock().unwrap().recv_timeout(PATIENCE);
        self.real.check_writable()
    }
}

#[tokio::test(start_paused = true)]
async fn a_store_that_does_not_answer_is_not_ready_and_is_probed_once_at_a_time() {
    use tandem::server::readiness::{NotReady, Readiness, FRESH_FOR, PROBE_PATIENCE};
    let dir = tempfile::tempdir().unwrap();
    let (release, waiting) = std::sync::mpsc::channel();
    let store = std::sync::Arc::new(SlowProbe {
        real: SqliteStore::open(dir.path(), 0).unwrap(),
        release: std::sync::Mutex::new(waiting),
        probes: Default::default(),
    });
    let journal = tandem::server::journal::Journal::start(store.clone(), 16);
    let readiness = Readiness::new(journal, store.clone());

    // The probe is blocked on a thread of its own, so the clock is moved by hand: past the
    // poll's patience, while the poll waits.
    let outlast = || async {
        tokio::task::yield_now().await;
        tokio::time::advance(PROBE_PATIENCE).await;
    };
    let (first, ()) = tokio::join!(readiness.check(), outlast());
    assert!(matches!(first, Err(NotReady::Unresponsive)), "{first:?}");
    // The probe's thread may start late; let it (bounded) before counting probes.
    for _ in 0..1000 {
        if store.probes.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    tokio::time::advance(FRESH_FOR).await;
    let (second, ()) = tokio::join!(readiness.check(), outlast());
    assert!(matches!(second, Err(NotReady::Unresponsive)), "{second:?}");
    assert_eq!(
        store.probes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the second poll waited for the first probe instead of starting another"
    );

    release.send(()).unwrap();
    tokio::time::advance(FRESH_FOR).await;
    assert!(readiness.check().await.is_ok());
}
