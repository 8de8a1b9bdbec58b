//! Where pages find the site's files in a build that reads them from disk (every test build);
//! the release executable that carries them is checked end to end by
//! `end2end/tests/one-file.spec.ts`.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{TestServer, ONE_AT_A_TIME};

async fn get(server: &TestServer, path: &str) -> (StatusCode, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let (status, _, body) = server.answer(request).await;
    (status, String::from_utf8(body).unwrap())
}

#[tokio::test]
async fn a_server_that_reads_its_site_from_disk_links_it_at_the_plain_addresses() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    const {
        assert!(
            !tandem::server::site::EMBEDDED,
            "these tests are of a build that reads its site from disk"
        )
    };
    let (status, page) = get(&server, &format!("/d/{}", server.new_doc().await)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"href="/pkg/tandem.css""#), "{page}");
    assert!(page.contains(r#"href="/pkg/tandem.js""#));
    assert!(page.contains(r#"href="/pkg/tandem.wasm""#));
    assert!(page.contains(r#"href="/favicon.svg""#));
}

#[tokio::test]
async fn without_an_embedded_site_versioned_addresses_are_not_found() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    for path in [
        "/site/0123456789abcdef/pkg/tandem.js",
        "/site/x/../pkg/tandem.js",
    ] {
        let (status, page) = get(&server, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("Page not found"), "{path}");
    }
}
