//! Pages rendered side by side. Building a router generates the app's route list, which runs
//! the app with resource loading switched off by a flag global to the process; a document page
//! whose resource first ran during any such generation waited for good, its request never
//! answered (leptos-rs/leptos#4773). The server now generates the list once per process.
#![cfg(feature = "ssr")]

mod common;

use axum::body::Body;
use axum::http::Request;
use common::{TestServer, PATIENCE};
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_pages_rendered_while_routers_are_built_all_answer() {
    let server = Arc::new(TestServer::start().await);
    let edit = server.new_doc().await;
    let mut renders = Vec::new();
    for _ in 0..24 {
        let (server, edit) = (server.clone(), edit.clone());
        renders.push(tokio::spawn(async move {
            for _ in 0..5 {
                // Each request builds its own router (see `TestServer::answer`), as each test
                // server in a test process does.
                let request = Request::get(format!("/d/{edit}"))
                    .body(Body::empty())
                    .unwrap();
                let (status, _, _) = tokio::time::timeout(PATIENCE, server.answer(request))
                    .await
                    .expect("the document page answers");
                assert_eq!(status, 200);
            }
        }));
    }
    for render in renders {
        render.await.unwrap();
    }
}
