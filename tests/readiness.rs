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
