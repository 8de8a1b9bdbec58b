//! Pages rendered side by side. Two things once made a document page's render stop:
//! - Building a router generates the app's route list, which runs the app with resource
//!   loading switched off by a flag global to the process; a page whose document resource
//!   first ran during any such generation waited for good (leptos-rs/leptos#4773). The server
//!   now generates the list once per process.
//! - leptos_meta reads a page's `<title>` once the body is rendered, outside the render's
//!   reactive arena. A title read from a signal there came from whichever arena the thread last
//!   held: another page's title, or a panic that cut the response off. On the server the title
//!   is now the one loaded with the page.
#![cfg(feature = "ssr")]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{TestServer, PATIENCE};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_pages_rendered_side_by_side_each_finish_with_their_own_title() {
    // 48 connections in a moment from one address, two for each document written.
    let server = Arc::new(
        TestServer::start_with(|config| config.max_new_connections_per_second = 1_000).await,
    );
    let mut renders = Vec::new();
    for i in 0..24 {
        let (edit, view) = server.new_doc_links().await;
        // Each its own title, written to break out of `<title>`.
        let title = format!("</title><b>document {i}</b>&");
        let content = format!("The text of document {i}.");
        common::write_title_and_text(&server, &edit, &title, &content).await;
        // Half of them through the edit link, half through the view link.
        let path = if i % 2 == 0 {
            format!("/d/{edit}")
        } else {
            format!("/v/{view}")
        };
        let expected = format!(
            "<title>{}</title>",
            tandem::app::title_as_html(&format!("{title} · Tandem"))
        );
        let server = server.clone();
        renders.push(tokio::spawn(async move {
            for _ in 0..5 {
                // Each request builds its own router (see `TestServer::answer`), as each test
                // server in a test process does.
                let request = Request::get(&path).body(Body::empty()).unwrap();
                let (status, _, body) = tokio::time::timeout(PATIENCE, server.answer(request))
                    .await
                    .expect("the document page answers");
                let body = String::from_utf8(body).unwrap();
                assert_eq!(status, 200, "{path}");
                assert!(body.contains(&expected), "{path}: not {expected} in {body}");
                assert!(body.contains(&content), "{path}: {body}");
            }
        }));
    }
    for render in renders {
        render.await.unwrap();
    }
}
