//! The HTTP side: health, new documents, malformed links and server-rendered pages.
#![cfg(feature = "ssr")]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{random_id, Peer, TestServer};
use tandem::doc_id::DocId;
use tower::ServiceExt;

async fn get(server: &TestServer, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let response = tandem::server::router(server.state.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_answers_ok() {
    let server = TestServer::start().await;
    let (status, _, body) = get(&server, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn new_redirects_to_a_fresh_random_document() {
    let server = TestServer::start().await;
    let (status, headers, _) = get(&server, "/new").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let first = headers["location"].to_str().unwrap().to_string();
    let id = first.strip_prefix("/d/").expect("redirects to /d/{id}");
    DocId::parse(id).expect("a well-formed id");
    let (_, headers, _) = get(&server, "/new").await;
    assert_ne!(
        headers["location"].to_str().unwrap(),
        first,
        "every new document is new"
    );
}

#[tokio::test]
async fn a_malformed_document_link_is_a_400_page() {
    let server = TestServer::start().await;
    for path in [
        "/d/short",
        "/d/AAAAAAAAAAAAAAAAAAAA%2F",
        "/d/AAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, _, body) = get(&server, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("not a document link"), "{path}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_document_opens_empty() {
    let server = TestServer::start().await;
    let (status, _, body) = get(&server, &format!("/d/{}", random_id())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("data-testid=\"source\""), "{body}");
    assert!(body.contains("Untitled · Tandem"), "{body}");
}

#[tokio::test]
async fn the_page_is_server_rendered_with_the_current_text_and_safe_preview() {
    let server = TestServer::start().await;
    let id = random_id();
    let mut peer = Peer::join(&server, &id).await;
    peer.insert(
        0,
        "# Hello there\n\n<script>alert('x')</script> and [link](javascript:alert(1))",
    )
    .await;
    // Wait until the server has it: a second peer sees it.
    let mut check = Peer::join(&server, &id).await;
    check
        .pump_until("the text", |p, _| p.text().starts_with("# Hello"))
        .await;

    let (status, _, body) = get(&server, &format!("/d/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // The source, escaped inside the textarea.
    assert!(body.contains("# Hello there"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{body}"
    );
    // The preview, rendered.
    assert!(body.contains("<h1>Hello there</h1>"), "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("href=\"javascript"), "{body}");
}
