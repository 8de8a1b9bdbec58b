//! The sync protocol end to end: a real server on loopback, real WebSocket clients.
#![cfg(feature = "ssr")]

mod common;

use common::{Peer, TestServer};
use futures_util::StreamExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::{Message, SyncMessage};

#[tokio::test]
async fn two_clients_converge() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut a = Peer::join(&server, &id).await;
    let mut b = Peer::join(&server, &id).await;

    // Concurrent edits at the same place: both must end with the same text.
    a.insert(0, "hello ").await;
    b.insert(0, "world ").await;
    a.pump_until("a to see b", |p, _| p.text().len() == 12)
        .await;
    b.pump_until("b to see a", |p, _| p.text().len() == 12)
        .await;
    assert_eq!(a.text(), b.text());
    assert!(a.text().contains("hello ") && a.text().contains("world "));
}

#[tokio::test]
async fn a_late_joiner_receives_the_full_state() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut a = Peer::join(&server, &id).await;
    let mut b = Peer::join(&server, &id).await;
    a.insert(0, "first line\n").await;
    b.wait_for_text("first line\n").await;
    b.insert(11, "second line\n").await;
    a.wait_for_text("first line\nsecond line\n").await;

    let late = Peer::join(&server, &id).await;
    assert_eq!(late.text(), "first line\nsecond line\n");
}

#[tokio::test]
async fn rooms_never_leak_into_each_other() {
    let server = TestServer::start().await;
    let (one, two) = (server.new_doc().await, server.new_doc().await);
    let mut a = Peer::join(&server, &one).await;
    let mut other = Peer::join(&server, &two).await;
    let mut b = Peer::join(&server, &one).await;

    a.insert(0, "only in room one").await;
    b.wait_for_text("only in room one").await;
    other.insert(0, "only in room two").await;
    a.insert(0, ">").await;
    b.wait_for_text(">only in room one").await;

    // Whatever reached room two by now would have been sent before the message above.
    let stray = tokio::time::timeout(Duration::from_millis(300), other.ws.next()).await;
    assert!(stray.is_err(), "room two received {stray:?}");
    assert_eq!(other.text(), "only in room two");
    assert_eq!(b.text(), ">only in room one");
}

/// Each kind of bad input closes that connection with a code, and the room's other clients
/// keep syncing.
#[tokio::test]
async fn bad_input_is_rejected_and_the_room_carries_on() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    // Client 1 writes "abc": the item (1, 0) is a string, which the crafted update below
    // wrongly names as a parent.
    let mut a = Peer::join_as(&server, &id, Some(1)).await;
    let mut b = Peer::join(&server, &id).await;
    a.insert(0, "abc").await;
    b.wait_for_text("abc").await;

    let invalid_parent = vec![1, 1, 2, 0, 0x04, 0, 1, 0, 1, b'x', 0];
    let cases: Vec<(&str, WsMessage, u16)> = vec![
        ("a text frame", WsMessage::Text("hello".into()), 1003),
        (
            "garbage",
            WsMessage::Binary(vec![0xff, 0xff, 0xff, 0xff].into()),
            1007,
        ),
        ("an empty frame", WsMessage::Binary(Vec::new().into()), 1007),
        (
            "a truncated message",
            WsMessage::Binary(vec![0, 2, 50, 1, 2].into()),
            1007,
        ),
        (
            "an undecodable update",
            WsMessage::Binary(
                Message::Sync(SyncMessage::Update(vec![9, 9, 9]))
                    .encode_v1_bytes()
                    .into(),
            ),
            1007,
        ),
        (
            "an update that does not apply",
            WsMessage::Binary(
                Message::Sync(SyncMessage::Update(invalid_parent))
                    .encode_v1_bytes()
                    .into(),
            ),
            1007,
        ),
    ];
    let mut expected = "abc".to_string();
    for (i, (what, frame, code)) in cases.into_iter().enumerate() {
        let mut bad = Peer::join(&server, &id).await;
        bad.send_raw(frame).await;
        assert_eq!(bad.expect_close().await, code, "{what}");

        let mark = char::from(b'0' + i as u8).to_string();
        a.insert(0, &mark).await;
        expected.insert_str(0, &mark);
        b.wait_for_text(&expected).await;
    }
    assert_eq!(a.text(), b.text());
}

trait EncodeBytes {
    fn encode_v1_bytes(&self) -> Vec<u8>;
}
impl EncodeBytes for Message {
    fn encode_v1_bytes(&self) -> Vec<u8> {
        yrs::updates::encoder::Encode::encode_v1(self)
    }
}

#[tokio::test]
async fn awareness_is_forwarded_and_removed_when_its_client_leaves() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut a = Peer::join(&server, &id).await;
    let mut b = Peer::join(&server, &id).await;
    let a_client = a.doc().client_id().get();

    a.set_presence(r##"{"user":{"name":"Quiet Otter","color":"#3b82f6"}}"##)
        .await;
    b.pump_until("a's presence", move |p, _| {
        p.seen_presence
            .get(&a_client)
            .is_some_and(|json| json.contains("Quiet Otter"))
    })
    .await;

    // A newcomer is greeted with the states already present.
    let c = Peer::join(&server, &id).await;
    let mut c = c;
    c.pump_until("greeting presence", move |p, _| {
        p.seen_presence.contains_key(&a_client)
    })
    .await;

    a.close().await;
    b.pump_until("a's presence removed", move |p, _| {
        p.seen_presence
            .get(&a_client)
            .is_some_and(|json| json == "null")
    })
    .await;
    c.pump_until("a's presence removed", move |p, _| {
        p.seen_presence
            .get(&a_client)
            .is_some_and(|json| json == "null")
    })
    .await;
}

#[tokio::test]
async fn a_room_leaves_memory_with_its_last_client() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let a = Peer::join(&server, &id).await;
    let b = Peer::join(&server, &id).await;
    assert!(server.state.hub.get(&doc).is_some());
    a.close().await;
    assert!(
        server.state.hub.get(&doc).is_some(),
        "one client is still there"
    );
    b.close().await;
    server
        .eventually("the room to unload", |s| s.hub.get(&doc).is_none())
        .await;
    assert_eq!(server.state.hub.room_count(), 0);
}

#[tokio::test]
async fn a_malformed_document_id_is_refused() {
    let server = TestServer::start().await;
    let error = tokio_tungstenite::connect_async(server.ws_url("not-a-valid-id"))
        .await
        .expect_err("upgrade must be refused");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 400),
        other => panic!("expected an HTTP 400, got {other}"),
    }
}

/// The page's heartbeat (message type 101) is answered with 102 on the same connection, which
/// stays open and live; an unknown message type is still refused.
#[tokio::test]
async fn the_pages_heartbeat_is_answered_and_the_connection_stays() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut page = Peer::join(&server, &id).await;
    let mut other = Peer::join(&server, &id).await;
    for beat in 0..3 {
        page.send(Message::Custom(tandem::protocol::MSG_PING, Vec::new()))
            .await;
        page.pump_until("the heartbeat's answer", |_, m| {
            matches!(m, Some(Message::Custom(tandem::protocol::MSG_PONG, _)))
        })
        .await;
        other.insert(0, &beat.to_string()).await;
        page.pump_until("an edit after the heartbeat", move |p, _| {
            p.text().starts_with(&beat.to_string())
        })
        .await;
    }
    let mut stranger = Peer::join(&server, &id).await;
    stranger.send(Message::Custom(77, Vec::new())).await;
    assert_eq!(stranger.expect_close().await, 1003);
}

/// A crowd moving their carets at once: the others get the moves gathered into far fewer
/// messages than moves (one per 50 ms window), and every person's newest state arrives. Sent
/// one by one, the watcher would receive all 200.
#[tokio::test]
async fn a_crowd_moving_carets_is_sent_in_batches_with_everyones_newest_state() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut watcher = Peer::join(&server, &id).await;
    let mut movers = Vec::new();
    for _ in 0..20 {
        movers.push(Peer::join(&server, &id).await);
    }
    for round in 0..10 {
        for (who, mover) in movers.iter_mut().enumerate() {
            mover
                .set_presence(&format!(r#"{{"who":{who},"round":{round}}}"#))
                .await;
        }
    }
    let ids: Vec<u64> = movers
        .iter()
        .map(|m| m.awareness.client_id().get())
        .collect();
    let messages = std::cell::Cell::new(0usize);
    watcher
        .pump_until("every mover's last state", |p, message| {
            if let Some(Message::Awareness(_)) = message {
                messages.set(messages.get() + 1);
            }
            ids.iter().all(|id| {
                p.seen_presence
                    .get(id)
                    .is_some_and(|s| s.contains(r#""round":9"#))
            })
        })
        .await;
    assert!(
        messages.get() < 100,
        "{} awareness messages for 200 moves",
        messages.get()
    );
}
