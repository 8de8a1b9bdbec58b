//! Links as the routes see them: a URL segment is a token, resolved to the document it opens
//! and the role it grants. A token the server never made opens nothing, and a view link reads
//! the document but may not change it.

mod common;
mod net;

use common::{random_id, Peer, TestServer};
use yrs::sync::Message;
use yrs::updates::encoder::Encode;

/// What `GET /link/{token}` says: its status and its `Tandem-Link` header.
async fn link_says(server: &TestServer, token: &str) -> (u16, String) {
    let request = axum::http::Request::get(format!("/link/{token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, headers, _) = server.answer(request).await;
    let said = headers
        .get(tandem::protocol::LINK_STATUS_HEADER)
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status.as_u16(), said)
}

/// Status of `GET path` through the whole router.
async fn status(server: &TestServer, path: &str) -> u16 {
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    server.answer(request).await.0.as_u16()
}

/// The HTTP status a WebSocket upgrade at `/ws/{token}` is refused with.
async fn refused_upgrade(server: &TestServer, token: &str) -> u16 {
    let error = tokio_tungstenite::connect_async(server.ws_url(token))
        .await
        .expect_err("the upgrade is refused");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn a_link_the_server_never_made_opens_nothing() {
    let server = TestServer::start().await;
    let unknown = random_id();
    assert_eq!(refused_upgrade(&server, unknown.as_str()).await, 404);
    for path in ["raw", "html"] {
        assert_eq!(status(&server, &format!("/d/{unknown}/{path}")).await, 404);
    }
    assert_eq!(status(&server, &format!("/d/{unknown}")).await, 404);
    assert_eq!(server.state.hub.room_count(), 0, "no room was opened");
}

#[tokio::test]
async fn a_documents_internal_id_is_not_a_link() {
    let server = TestServer::start().await;
    let edit = server.new_doc().await;
    let doc = server.internal_id(&edit).await;
    assert_eq!(refused_upgrade(&server, doc.as_str()).await, 404);
    assert_eq!(status(&server, &format!("/d/{doc}/raw")).await, 404);
}

#[tokio::test]
async fn new_makes_a_document_and_sends_the_browser_to_its_edit_link() {
    let server = TestServer::start().await;
    let response = net::get(server.addr, "/new").await;
    assert!(response.status.is_redirection(), "{}", response.status);
    let location = response.headers[axum::http::header::LOCATION]
        .to_str()
        .unwrap();
    let token = location.strip_prefix("/d/").expect("an edit link");
    let token = tandem::doc_id::DocId::parse(token).unwrap();
    let mut editor = Peer::join(&server, &token).await;
    editor.insert(0, "made by /new").await;
    let mut other = Peer::join(&server, &token).await;
    other.wait_for_text("made by /new").await;
}

#[tokio::test]
async fn a_view_link_is_not_an_edit_link_on_d_routes() {
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    assert_eq!(status(&server, &format!("/d/{edit}/raw")).await, 200);
    for path in ["", "/raw", "/html"] {
        assert_eq!(
            status(&server, &format!("/d/{view}{path}")).await,
            404,
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_view_link_reads_live_but_its_changes_are_refused_and_go_nowhere() {
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    let doc = server.internal_id(&edit).await;
    let mut editor = Peer::join(&server, &edit).await;
    editor.insert(0, "before").await;

    let mut viewer = Peer::join(&server, &view).await;
    viewer.wait_for_text("before").await;
    editor.insert(6, ", live").await;
    viewer.wait_for_text("before, live").await;

    // A stock client's change, sent as y-protocols sends one.
    viewer.insert(0, "forged ").await;
    viewer
        .pump_until("permission-denied", |_, message| {
            matches!(message, Some(Message::Auth(Some(reason))) if reason == "permission-denied")
        })
        .await;
    // The editor goes on writing and sees only its own text.
    editor.insert(12, "!").await;
    viewer.wait_for_text("forged before, live!").await;
    assert_eq!(editor.text(), "before, live!");
    let mut late = Peer::join(&server, &edit).await;
    late.wait_for_text("before, live!").await;

    // What is stored is the editor's text alone.
    let room = server.state.hub.get(&doc).expect("the room is open");
    assert_eq!(room.texts().1, "before, live!");
    drop((editor, viewer, late));
    server
        .eventually("the room to unload", |s| s.hub.get(&doc).is_none())
        .await;
    server.state.hub.journal().flush().await;
    let store = server.state.store.clone();
    let stored = tokio::task::spawn_blocking(move || store.load(&doc))
        .await
        .unwrap()
        .unwrap()
        .expect("the document is stored");
    assert_eq!(
        tandem::protocol::texts_of(&stored.replica().unwrap()).1,
        "before, live!"
    );
}

/// Resets `roles` of the document `edit` opens, as the Share dialog does; the new links.
async fn reset(
    server: &TestServer,
    edit: &tandem::doc_id::DocId,
    roles: Vec<tandem::server::capability::Role>,
) -> tandem::server::links::DocLinks {
    let doc = server.internal_id(edit).await;
    server
        .state
        .hub
        .reset_links(&server.state.links, doc, roles)
        .await
        .expect("the links are reset")
}

#[tokio::test]
async fn resetting_the_view_link_closes_its_sessions_and_the_old_link_opens_nothing() {
    use tandem::server::capability::Role;
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    let mut editor = Peer::join(&server, &edit).await;
    editor.insert(0, "shared").await;
    let mut viewer = Peer::join(&server, &view).await;
    viewer.wait_for_text("shared").await;
    let mut second_viewer = Peer::join(&server, &view).await;
    second_viewer.wait_for_text("shared").await;

    let started = std::time::Instant::now();
    let links = reset(&server, &edit, vec![Role::View]).await;
    assert_eq!(viewer.expect_close().await, 4001);
    assert_eq!(second_viewer.expect_close().await, 4001);
    println!(
        "sessions on the reset link closed {:?} after the reset began",
        started.elapsed()
    );

    // The old link opens nothing (as a page that slept through the reset finds out from
    // /link/); the new one reads, and the editor never noticed.
    assert_eq!(refused_upgrade(&server, view.as_str()).await, 404);
    assert_eq!(
        link_says(&server, view.as_str()).await,
        (404, "none".into())
    );
    assert_eq!(
        link_says(&server, edit.as_str()).await,
        (204, "live".into())
    );
    assert_eq!(link_says(&server, "not-a-link").await, (400, String::new()));
    let new_view = links.view.expect("a new view link");
    assert_ne!(new_view, view);
    assert_eq!(
        links.edit.as_ref(),
        Some(&edit),
        "the edit link is untouched"
    );
    editor.insert(6, ", still").await;
    let mut reader = Peer::join(&server, &new_view).await;
    reader.wait_for_text("shared, still").await;
    editor.insert(0, "> ").await;
    reader.wait_for_text("> shared, still").await;
    // Asking in a loop is limited like opening connections.
    let mut refused = 0;
    for _ in 0..100 {
        if link_says(&server, common::random_id().as_str()).await.0 == 429 {
            refused += 1;
        }
    }
    assert!(refused > 0, "a flood of link checks is refused");
}

#[tokio::test]
async fn resetting_the_edit_link_closes_its_editors_and_the_new_one_edits() {
    use tandem::server::capability::Role;
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    let mut editor = Peer::join(&server, &edit).await;
    editor.insert(0, "draft").await;
    let mut viewer = Peer::join(&server, &view).await;
    viewer.wait_for_text("draft").await;

    let links = reset(&server, &edit, vec![Role::Edit]).await;
    assert_eq!(editor.expect_close().await, 4001);
    assert_eq!(refused_upgrade(&server, edit.as_str()).await, 404);
    assert_eq!(status(&server, &format!("/d/{edit}")).await, 404);
    let new_edit = links.edit.expect("a new edit link");
    let mut again = Peer::join(&server, &new_edit).await;
    again.wait_for_text("draft").await;
    again.insert(5, " two").await;
    // The view link was not reset: its reader goes on.
    viewer.wait_for_text("draft two").await;
}

/// Every row the store holds of `doc`, across its tables, read from the database file.
fn rows_of(server: &TestServer, doc: &tandem::doc_id::DocId) -> i64 {
    let path = server.state.config.data_dir.join("tandem.db");
    let conn = rusqlite::Connection::open(path).unwrap();
    [
        "SELECT COUNT(*) FROM documents WHERE id = ?1",
        "SELECT COUNT(*) FROM updates WHERE doc = ?1",
        "SELECT COUNT(*) FROM versions WHERE doc = ?1",
        "SELECT COUNT(*) FROM capabilities WHERE doc = ?1",
    ]
    .iter()
    .map(|query| {
        conn.query_row(query, [doc.as_str()], |row| row.get::<_, i64>(0))
            .unwrap()
    })
    .sum()
}

#[tokio::test]
async fn deleting_closes_every_session_removes_every_row_and_both_links_are_gone() {
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    let doc = server.internal_id(&edit).await;
    let mut editor = Peer::join(&server, &edit).await;
    let mut typist = Peer::join(&server, &edit).await;
    editor.insert(0, "secret plans").await;
    let mut viewer = Peer::join(&server, &view).await;
    viewer.wait_for_text("secret plans").await;
    typist.wait_for_text("secret plans").await;
    assert!(rows_of(&server, &doc) > 0);

    // One editor goes on typing while the document is deleted: nothing it sends survives.
    let typing = tokio::spawn(async move {
        for i in 0..200u32 {
            // Sent without waiting for the outcome: the connection may be closing.
            let update = typist.edit(0, 0, "x");
            let frame = Message::Sync(yrs::sync::SyncMessage::Update(update)).encode_v1();
            typist
                .send_raw(tokio_tungstenite::tungstenite::Message::Binary(
                    frame.into(),
                ))
                .await;
            if i % 20 == 0 {
                tokio::task::yield_now().await;
            }
        }
        typist.expect_close().await
    });
    server
        .state
        .hub
        .delete(&server.state.links, doc.clone())
        .await
        .expect("the document is deleted");
    assert_eq!(editor.expect_close().await, 4002);
    assert_eq!(viewer.expect_close().await, 4002);
    assert_eq!(typing.await.unwrap(), 4002);

    server
        .eventually("the room to unload", |s| s.hub.get(&doc).is_none())
        .await;
    // What the closing connections had in flight is removed in the background.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while rows_of(&server, &doc) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        rows_of(&server, &doc),
        0,
        "every row of the document is removed"
    );
    for token in [&edit, &view] {
        assert_eq!(refused_upgrade(&server, token.as_str()).await, 410);
        assert_eq!(
            link_says(&server, token.as_str()).await,
            (410, "deleted".into())
        );
    }
    assert_eq!(status(&server, &format!("/d/{edit}")).await, 410);
    assert_eq!(status(&server, &format!("/v/{view}")).await, 410);
    for path in ["raw", "html"] {
        assert_eq!(status(&server, &format!("/d/{edit}/{path}")).await, 410);
    }
}

/// Calls the server function `name` with a form body as the page does: status and body.
async fn call(server: &TestServer, name: &str, form: &str) -> (u16, String) {
    let request = axum::http::Request::post(format!("/api/{name}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form.to_string()))
        .unwrap();
    let (status, _, body) = server.answer(request).await;
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

#[derive(serde::Deserialize)]
struct Shown {
    edit: Option<String>,
    view: Option<String>,
}

/// The Share dialog's calls take an edit link as their right: a view link, a link that opens
/// nothing, garbage or a link of another document's reset changes nothing; what they answer
/// is what the page then shows.
#[tokio::test]
async fn the_share_calls_need_the_edit_link_and_refuse_everything_else() {
    let server = TestServer::start().await;
    let (edit, view) = server.new_doc_links().await;
    let (other_edit, other_view) = server.new_doc_links().await;

    let (status, body) = call(&server, "share_links", &format!("token={edit}")).await;
    assert_eq!(status, 200, "{body}");
    let shown: Shown = serde_json::from_str(&body).unwrap();
    assert_eq!(shown.edit, Some(format!("/d/{edit}")));
    assert_eq!(shown.view, Some(format!("/v/{view}")));

    let garbage = [
        format!("token={view}"),
        format!("token={}", common::random_id()),
        "token=%00%01".to_string(),
        format!("token={}", "A".repeat(100_000)),
        "".to_string(),
        format!("token={edit}&token={other_edit}"),
    ];
    for name in ["share_links", "reset_links", "delete_document"] {
        for form in &garbage {
            let form = if name == "reset_links" {
                format!("{form}&edit=true&view=true")
            } else {
                form.clone()
            };
            let (status, body) = call(&server, name, &form).await;
            assert!(
                (400..500).contains(&status),
                "{name} {:.60}: {status} {body:.200}",
                form
            );
            assert!(!body.contains(edit.as_str()) && !body.contains(other_view.as_str()));
        }
    }
    // Nothing was reset or deleted.
    let (_, body) = call(&server, "share_links", &format!("token={edit}")).await;
    let shown: Shown = serde_json::from_str(&body).unwrap();
    assert_eq!(shown.view, Some(format!("/v/{view}")));
    let (_, body) = call(&server, "share_links", &format!("token={other_edit}")).await;
    assert!(body.contains(other_view.as_str()));

    // Resetting neither link is refused; resetting the view link answers the new links.
    let (status, _) = call(
        &server,
        "reset_links",
        &format!("token={edit}&edit=false&view=false"),
    )
    .await;
    assert_ne!(status, 200);
    let (status, body) = call(
        &server,
        "reset_links",
        &format!("token={edit}&edit=false&view=true"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let shown: Shown = serde_json::from_str(&body).unwrap();
    assert_eq!(shown.edit, Some(format!("/d/{edit}")));
    assert_ne!(shown.view, Some(format!("/v/{view}")));

    // Deleting by the edit link: done once; the link is gone after.
    let (status, body) = call(&server, "delete_document", &format!("token={edit}")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&server, "delete_document", &format!("token={edit}")).await;
    assert_eq!(status, 410);
    // The other document is untouched.
    let mut reader = Peer::join(&server, &other_view).await;
    reader.wait_for_text("").await;
    assert_eq!(refused_upgrade(&server, view.as_str()).await, 404);
}

/// A document from before links had roles opens by its old id, kept as its edit link
/// (generation 0, whose token is not derived): Share shows that link, and gives the document
/// a view link on first use; resetting the old link moves it to a derived one.
#[tokio::test]
async fn a_document_from_before_roles_is_shared_by_its_old_link() {
    use tandem::server::capability::{token_hash, Role};
    use tandem::server::storage::capabilities::NewLink;
    let server = TestServer::start().await;
    let (doc, old) = (common::random_id(), common::random_id());
    let store = server.state.store.clone();
    let legacy = NewLink {
        token_hash: token_hash(&old),
        generation: 0,
        new_document: true,
    };
    let stored = doc.clone();
    tokio::task::spawn_blocking(move || store.set_link(&stored, Role::Edit, legacy))
        .await
        .unwrap()
        .unwrap();
    let mut editor = Peer::join(&server, &old).await;
    editor.insert(0, "from before").await;

    let (status, body) = call(&server, "share_links", &format!("token={old}")).await;
    assert_eq!(status, 200, "{body}");
    let shown: Shown = serde_json::from_str(&body).unwrap();
    assert_eq!(shown.edit, Some(format!("/d/{old}")));
    let view = shown.view.expect("a view link made on first use");
    let view = tandem::doc_id::DocId::parse(view.strip_prefix("/v/").unwrap()).unwrap();
    let mut reader = Peer::join(&server, &view).await;
    reader.wait_for_text("from before").await;
    // Shown again, the same view link.
    let (_, again) = call(&server, "share_links", &format!("token={old}")).await;
    assert_eq!(
        serde_json::from_str::<Shown>(&again).unwrap().view,
        Some(format!("/v/{view}"))
    );

    let (status, body) = call(
        &server,
        "reset_links",
        &format!("token={old}&edit=true&view=false"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(editor.expect_close().await, 4001);
    let shown: Shown = serde_json::from_str(&body).unwrap();
    let new_edit = shown.edit.unwrap();
    assert_ne!(new_edit, format!("/d/{old}"));
    assert_eq!(refused_upgrade(&server, old.as_str()).await, 404);
    let new_edit = tandem::doc_id::DocId::parse(new_edit.strip_prefix("/d/").unwrap()).unwrap();
    let mut again = Peer::join(&server, &new_edit).await;
    again.wait_for_text("from before").await;
}

/// Links taken back on one document cost the connections joining another nothing but a second
/// look-up: resetting in a loop closes nobody elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resetting_one_document_in_a_loop_closes_nobody_on_another() {
    use tandem::server::capability::Role;
    let server = TestServer::start_with(|c| c.max_new_connections_per_second = 10_000).await;
    let (busy, _) = server.new_doc_links().await;
    let busy_doc = server.internal_id(&busy).await;
    let (calm, calm_view) = server.new_doc_links().await;
    let mut writer = Peer::join(&server, &calm).await;
    writer.insert(0, "calm").await;

    let (hub, links) = (server.state.hub.clone(), server.state.links.clone());
    let resets = tokio::spawn(async move {
        for _ in 0..300 {
            hub.reset_links(&links, busy_doc.clone(), vec![Role::View])
                .await
                .unwrap();
        }
    });
    let mut joined = 0;
    while !resets.is_finished() && joined < 200 {
        for token in [&calm, &calm_view] {
            let mut peer = Peer::join(&server, token).await;
            peer.wait_for_text("calm").await;
            joined += 1;
        }
    }
    resets.await.unwrap();
    assert!(joined > 0);
    // The writer was never closed either.
    writer.insert(4, "!").await;
    let mut last = Peer::join(&server, &calm_view).await;
    last.wait_for_text("calm!").await;
}

/// Resets and deletions are limited per address (30 a minute): beyond that the call is
/// answered 429 and changes nothing.
#[tokio::test]
async fn resetting_links_in_a_loop_is_refused_after_the_allowance() {
    let server = TestServer::start().await;
    let (edit, _) = server.new_doc_links().await;
    let mut refused = 0;
    let mut last = String::new();
    for _ in 0..40 {
        let (status, body) = call(
            &server,
            "reset_links",
            &format!("token={edit}&edit=false&view=true"),
        )
        .await;
        match status {
            200 => last = serde_json::from_str::<Shown>(&body).unwrap().view.unwrap(),
            429 => refused += 1,
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(refused, 10, "30 allowed, then refused");
    // A refused reset changed nothing: the last link shown is the current one.
    let (_, body) = call(&server, "share_links", &format!("token={edit}")).await;
    assert_eq!(
        serde_json::from_str::<Shown>(&body).unwrap().view,
        Some(last)
    );
    let (status, _) = call(&server, "delete_document", &format!("token={edit}")).await;
    assert_eq!(status, 429, "deleting counts too");
}
