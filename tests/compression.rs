//! Rendered pages and downloads are gzipped for clients that accept it; everything else (the
//! WebSocket upgrade, small answers, errors) passes through as it is, whatever the client
//! writes in `Accept-Encoding`.

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::{Peer, TestServer, ONE_AT_A_TIME};
use std::io::Read;
use tandem::doc_id::DocId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A GET through the whole router with the given `Accept-Encoding`; the body as sent.
async fn get(
    server: &TestServer,
    path: &str,
    accept: Option<&str>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    get_raw(server, path, accept.map(str::as_bytes)).await
}

async fn get_raw(
    server: &TestServer,
    path: &str,
    accept: Option<&[u8]>,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = Request::get(path);
    if let Some(accept) = accept {
        let value = axum::http::HeaderValue::from_bytes(accept).unwrap();
        request = request.header("accept-encoding", value);
    }
    server.answer(request.body(Body::empty()).unwrap()).await
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a valid gzip stream");
    text
}

/// A document of some 200 KB of varied Markdown, written through a real WebSocket peer.
async fn long_document(server: &TestServer) -> (DocId, String) {
    let id = server.new_doc().await;
    let text: String = (0..4000)
        .map(|i| format!("- item {i}: the *quick* brown fox {}\n", i * 7919 % 1000))
        .collect();
    let mut author = Peer::join(server, &id).await;
    author.insert(0, &text).await;
    let mut reader = Peer::join(server, &id).await;
    reader.wait_for_text(&text).await;
    (id, text)
}

#[tokio::test]
async fn a_document_page_and_its_download_are_gzipped_when_accepted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let (id, text) = long_document(&server).await;

    let (status, headers, plain) = get(&server, &format!("/d/{id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("content-encoding").is_none());
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.contains("the *quick* brown fox"));

    let browser = "gzip, deflate, br, zstd";
    let (status, headers, packed) = get(&server, &format!("/d/{id}"), Some(browser)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert!(headers["vary"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    let unpacked = gunzip(&packed);
    // The same page but for its fresh nonce.
    assert_eq!(unpacked.len(), plain.len());
    assert!(unpacked.contains("the *quick* brown fox"));
    assert!(
        packed.len() * 4 < plain.len(),
        "{} of {}",
        packed.len(),
        plain.len()
    );

    let (status, headers, packed) = get(&server, &format!("/d/{id}/raw"), Some("gzip")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(gunzip(&packed), text);
}

#[tokio::test]
async fn what_is_small_refused_or_not_accepted_gzipped_is_sent_as_it_is() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let (id, text) = long_document(&server).await;
    let raw = format!("/d/{id}/raw");
    let refused_gzip = ["identity", "gzip;q=0", "br", "zstd, deflate", "*;q=0"];
    for accept in refused_gzip {
        let (status, headers, body) = get(&server, &raw, Some(accept)).await;
        assert_eq!(status, StatusCode::OK, "{accept}");
        assert!(headers.get("content-encoding").is_none(), "{accept}");
        assert_eq!(String::from_utf8(body).unwrap(), text, "{accept}");
    }
    // Small answers and errors.
    for path in ["/healthz", "/d/short", "/d/short/raw"] {
        let (_, headers, _) = get(&server, path, Some("gzip")).await;
        assert!(headers.get("content-encoding").is_none(), "{path}");
    }
    // Garbage, repetition and an oversize list: an answer, gzip or not, and never a panic.
    let garbage = [
        b"gzip;q=".to_vec(),
        b";;;,,,;q=1;q=2".to_vec(),
        b"gzip;q=0.5, ".repeat(500),
        b"\xff\xfegzip\tbr".to_vec(),
        b"x".repeat(8000),
    ];
    for accept in &garbage {
        let (status, headers, body) = get_raw(&server, &raw, Some(accept)).await;
        assert_eq!(status, StatusCode::OK);
        let body = match headers.get("content-encoding") {
            Some(encoding) => {
                assert_eq!(encoding, "gzip");
                gunzip(&body)
            }
            None => String::from_utf8(body).unwrap(),
        };
        assert_eq!(body, text);
    }
}

#[tokio::test]
async fn a_websocket_upgrade_asking_for_gzip_is_switched_untouched_and_syncs() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let (id, text) = long_document(&server).await;
    let mut socket = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "GET /ws/{id} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Accept-Encoding: gzip\r\n\r\n",
        server.addr
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let read = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(!answer.contains("content-encoding"), "{answer}");
    drop(socket);
    // And a client that asks for nothing gets the document as always.
    let mut reader = Peer::join(&server, &id).await;
    reader.wait_for_text(&text).await;
}
