//! What a stranger with a document link and a WebSocket client can do to the server, frame by
//! frame: each refusal closes only the offender, with its code, and the others carry on.
#![cfg(feature = "ssr")]

mod common;

use common::{Peer, TestServer, PATIENCE};
use futures_util::StreamExt;
use std::collections::HashMap;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message, SyncMessage};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Map, ReadTxn, StateVector, Text, Transact};

fn frame(message: &Message) -> WsMessage {
    WsMessage::Binary(message.encode_v1().into())
}

/// Reads until the server closes; returns the code, the reason, and the messages that came
/// before the close.
async fn close_of(peer: &mut Peer) -> (u16, String, Vec<Message>) {
    let mut before = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, peer.ws.next()).await {
            Err(_) => panic!("the server did not close the connection"),
            Ok(Some(Ok(WsMessage::Close(Some(close))))) => {
                return (u16::from(close.code), close.reason.to_string(), before)
            }
            Ok(Some(Ok(WsMessage::Binary(bytes)))) => before.extend(common::decode(&bytes)),
            Ok(Some(Ok(_))) => {}
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}

fn awareness(client: u64, clock: u32, json: &str) -> Message {
    let mut clients = HashMap::new();
    clients.insert(
        ClientID::new(client),
        AwarenessUpdateEntry {
            clock,
            json: json.into(),
        },
    );
    Message::Awareness(AwarenessUpdate { clients })
}

/// Problem: one 50 KB frame of 10,000 sync step 1 messages with alternating state vectors
/// made the server encode the document 10,000 times. Now a frame holds one message: the
/// frame is refused whole, before anything is answered.
#[tokio::test]
async fn a_frame_packed_with_messages_is_refused_before_any_answer() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut writer = Peer::join(&server, &id).await;
    writer.insert(0, &"x".repeat(50 * 1024)).await;
    let mut reader = Peer::join(&server, &id).await;
    reader.wait_for_text(&"x".repeat(50 * 1024)).await;

    let mut packed = Vec::new();
    for i in 0..10_000u32 {
        let mut sv = StateVector::default();
        if i % 2 == 1 {
            sv.set_max(ClientID::new(7), 1);
        }
        packed.extend(Message::Sync(SyncMessage::SyncStep1(sv)).encode_v1());
    }
    for query in 0..10_000 {
        let _ = query;
        packed.extend(Message::AwarenessQuery.encode_v1());
    }
    let mut attacker = Peer::join(&server, &id).await;
    attacker.send_raw(WsMessage::Binary(packed.into())).await;
    let (code, reason, before) = close_of(&mut attacker).await;
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("more than one message"), "{reason}");
    assert!(
        !before
            .iter()
            .any(|m| matches!(m, Message::Sync(SyncMessage::SyncStep2(_)))),
        "nothing was answered"
    );
    // Everyone else is untouched.
    writer.insert(0, ">").await;
    reader
        .pump_until("the next edit", |p, _| p.text().starts_with('>'))
        .await;
}

/// Asking for a large document over and over costs the asker its message allowance.
#[tokio::test]
async fn repeated_requests_for_a_large_document_run_out_of_allowance() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut writer = Peer::join(&server, &id).await;
    writer.insert(0, &"y".repeat(1024 * 1024)).await;
    let mut asker = Peer::join(&server, &id).await;
    let ask = frame(&Message::Sync(SyncMessage::SyncStep1(
        StateVector::default(),
    )));
    let mut sent = 0;
    let code = loop {
        assert!(
            sent < 500,
            "a thousand answers of a megabyte were given without limit"
        );
        asker.send_raw(ask.clone()).await;
        sent += 1;
        // Read its answer (or the close).
        match tokio::time::timeout(PATIENCE, asker.ws.next())
            .await
            .unwrap()
        {
            Some(Ok(WsMessage::Close(Some(close)))) => break u16::from(close.code),
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(code, 1008);
    assert!(sent > 1, "an ordinary join is never refused");
}

/// Problem: a frame holding an awareness message was relayed byte for byte, carrying along
/// whatever rode in the same frame. Now such a frame is refused, and awareness is re-encoded.
#[tokio::test]
async fn presence_is_parsed_and_reencoded_never_relayed_as_received() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut watcher = Peer::join(&server, &id).await;

    // An awareness message with a forged "saved" acknowledgement and an update riding along.
    let mut smuggled = awareness(41, 1, r#"{"user":{"name":"Mallory"}}"#).encode_v1();
    smuggled.extend(Message::Custom(tandem::protocol::MSG_SAVED, vec![]).encode_v1());
    let mut mallory = Peer::join(&server, &id).await;
    mallory.send_raw(WsMessage::Binary(smuggled.into())).await;
    assert_eq!(close_of(&mut mallory).await.0, 1007);

    // Not a JSON object: refused, never relayed.
    for bad in ["[1,2]", "\"text\"", "{\"unterminated\":", "{} {}"] {
        let mut peer = Peer::join(&server, &id).await;
        peer.send_raw(frame(&awareness(42, 1, bad))).await;
        let (code, reason, _) = close_of(&mut peer).await;
        assert_eq!(code, 1007, "{bad}: {reason}");
    }
    // Too large: refused.
    let mut big = Peer::join(&server, &id).await;
    let huge = format!(r#"{{"user":{{"name":"{}"}}}}"#, "n".repeat(64 * 1024));
    big.send_raw(frame(&awareness(43, 1, &huge))).await;
    assert_eq!(close_of(&mut big).await.0, 1009);

    // A well-formed state arrives re-encoded (whitespace gone), not as sent.
    let mut alice = Peer::join(&server, &id).await;
    alice
        .send_raw(frame(&awareness(
            44,
            1,
            r#"  { "user" : { "name" : "Alice" } }  "#,
        )))
        .await;
    watcher
        .pump_until("Alice's presence", |p, _| p.seen_presence.contains_key(&44))
        .await;
    assert_eq!(watcher.seen_presence[&44], r#"{"user":{"name":"Alice"}}"#);
    for refused in [41, 42, 43] {
        assert!(
            !watcher.seen_presence.contains_key(&refused),
            "refused presence {refused} was relayed"
        );
    }
    assert_eq!(watcher.acks, 0, "no forged acknowledgement reached anyone");
    drop(alice);
}

/// Problem: any connection could overwrite or remove another person's presence.
#[tokio::test]
async fn a_connection_may_touch_only_the_presence_it_introduced() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut watcher = Peer::join(&server, &id).await;
    let mut alice = Peer::join(&server, &id).await;
    alice
        .send_raw(frame(&awareness(51, 1, r#"{"user":{"name":"Alice"}}"#)))
        .await;
    watcher
        .pump_until("Alice", |p, _| p.seen_presence.contains_key(&51))
        .await;

    for (what, json) in [
        ("overwrite", r#"{"user":{"name":"Not Alice"}}"#),
        ("remove", "null"),
    ] {
        let mut mallory = Peer::join(&server, &id).await;
        mallory.send_raw(frame(&awareness(51, 99, json))).await;
        let (code, reason, _) = close_of(&mut mallory).await;
        assert_eq!(code, 1008, "{what}: {reason}");
    }
    // Echoing Alice's state unchanged, as stock y-websocket clients do, is harmless.
    let mut echo = Peer::join(&server, &id).await;
    echo.send_raw(frame(&awareness(51, 1, r#"{"user":{"name":"Alice"}}"#)))
        .await;
    echo.send_raw(frame(&awareness(51, 1, "null"))).await;
    echo.insert(0, "still connected").await;
    watcher.wait_for_text("still connected").await;
    // Alice's state is as she set it, for a newcomer too.
    let mut newcomer = Peer::join(&server, &id).await;
    newcomer
        .pump_until("Alice in the greeting", |p, _| {
            p.seen_presence.contains_key(&51)
        })
        .await;
    assert_eq!(newcomer.seen_presence[&51], r#"{"user":{"name":"Alice"}}"#);
    assert_eq!(watcher.seen_presence[&51], r#"{"user":{"name":"Alice"}}"#);
}

/// Problem: neither the number of presence entries nor their lifetime was bounded; removed
/// entries were never forgotten.
#[tokio::test]
async fn presence_entries_are_bounded_and_removed_ones_forgotten() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let mut churner = Peer::join(&server, &id).await;
    for round in 0..500u32 {
        churner
            .send_raw(frame(&awareness(60, 2 * round + 1, "{}")))
            .await;
        churner
            .send_raw(frame(&awareness(60, 2 * round + 2, "null")))
            .await;
        if round % 50 == 49 {
            // Stay under the message rate.
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        }
    }
    let check = Peer::join(&server, &id).await;
    let room = server.state.hub.get(&doc).expect("the room is open");
    server
        .eventually("the churn to be processed", |_| room.presence_count() == 0)
        .await;
    drop(check);

    // One connection cannot introduce many people.
    let mut many = Peer::join(&server, &id).await;
    let mut clients = HashMap::new();
    for client in 0..100u64 {
        clients.insert(
            ClientID::new(1000 + client),
            AwarenessUpdateEntry {
                clock: 1,
                json: "{}".into(),
            },
        );
    }
    many.send_raw(frame(&Message::Awareness(AwarenessUpdate { clients })))
        .await;
    assert_eq!(close_of(&mut many).await.0, 1008);
    server
        .eventually("the refused connection's presence to go", |_| {
            room.presence_count() == 0
        })
        .await;
}

/// Problem: an update that makes a text into a map was relayed and broke every stock peer.
#[tokio::test]
async fn an_update_that_retypes_a_text_is_refused() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut a = Peer::join(&server, &id).await;
    a.insert(0, "text stays text").await;
    let mut b = Peer::join(&server, &id).await;
    b.wait_for_text("text stays text").await;

    let hostile = yrs::Doc::new();
    let update = {
        let content = hostile.get_or_insert_map(tandem::protocol::CONTENT);
        let mut txn = hostile.transact_mut();
        content.insert(&mut txn, "key", "a map where everyone has a text");
        txn.encode_update_v1()
    };
    let mut mallory = Peer::join(&server, &id).await;
    mallory
        .send_raw(frame(&Message::Sync(SyncMessage::Update(update))))
        .await;
    let (code, reason, _) = close_of(&mut mallory).await;
    assert_eq!(code, 1007);
    assert!(reason.contains("map entry"), "{reason}");

    a.insert(0, ">").await;
    b.wait_for_text(">text stays text").await;
    assert!(
        b.received.iter().all(|u| {
            let doc = yrs::Doc::new();
            doc.get_or_insert_text(tandem::protocol::CONTENT);
            let update = yrs::updates::decoder::Decode::decode_v1(u).unwrap();
            doc.transact_mut().apply_update(update).unwrap();
            let txn = doc.transact();
            txn.get_map(tandem::protocol::CONTENT)
                .is_none_or(|m| m.len(&txn) == 0)
        }),
        "nothing of the map reached the peer"
    );
}

/// Two updates from two writers: the second (by 778, who had seen the first) depends on the
/// first (by 777).
fn dependent_pair() -> (Vec<u8>, Vec<u8>) {
    let doc = yrs::Doc::with_client_id(777);
    let text = doc.get_or_insert_text(tandem::protocol::CONTENT);
    let first = {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "first ");
        txn.encode_update_v1()
    };
    let other = yrs::Doc::with_client_id(778);
    let text = other.get_or_insert_text(tandem::protocol::CONTENT);
    let second = {
        let mut txn = other.transact_mut();
        txn.apply_update(yrs::updates::decoder::Decode::decode_v1(&first).unwrap())
            .unwrap();
        let sv = txn.state_vector();
        text.insert(&mut txn, 6, "second");
        txn.encode_state_as_update_v1(&sv)
    };
    (first, second)
}

/// Problem: an update with missing dependencies stayed in the server's memory outside every
/// limit and was relayed. Now it waits, unrelayed and unstored, and integrates when what it
/// needs arrives (updates may cross on the way).
#[tokio::test]
async fn an_update_waits_for_what_it_depends_on_and_is_relayed_only_once_whole() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut watcher = Peer::join(&server, &id).await;
    let (first, second) = dependent_pair();

    let mut early = Peer::join(&server, &id).await;
    early
        .send_raw(frame(&Message::Sync(SyncMessage::Update(second))))
        .await;
    // While it waits it is not part of the document anyone receives.
    let fresh = Peer::join(&server, &id).await;
    assert_eq!(
        fresh.text(),
        "",
        "a waiting update is not part of the document"
    );

    let mut late = Peer::join(&server, &id).await;
    late.send_raw(frame(&Message::Sync(SyncMessage::Update(first))))
        .await;
    watcher.wait_for_text("first second").await;
    let reloaded = Peer::join(&server, &id).await;
    assert_eq!(reloaded.text(), "first second");
    drop(early);
}

/// A waiting update is refused with 1007 when its bound runs out: after the default time, or
/// at once when too many bytes wait.
#[tokio::test]
async fn a_waiting_update_is_refused_when_its_bound_runs_out() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let watcher = Peer::join(&server, &id).await;

    // Bytes: more than a megabyte that depends on something that never comes.
    let doc = yrs::Doc::with_client_id(888);
    let text = doc.get_or_insert_text(tandem::protocol::CONTENT);
    {
        // Written locally, never sent: what the orphan below depends on.
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "never sent");
    }
    let orphan = {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 10, &"o".repeat(1100 * 1024));
        txn.encode_update_v1()
    };
    let mut hoarder = Peer::join(&server, &id).await;
    hoarder
        .send_raw(frame(&Message::Sync(SyncMessage::Update(orphan))))
        .await;
    let (code, reason, _) = close_of(&mut hoarder).await;
    assert_eq!(code, 1007, "{reason}");

    // Time: a small orphan waits, then its sender is closed (default bound, real time).
    let (_, second) = dependent_pair();
    let mut patient = Peer::join(&server, &id).await;
    let started = tokio::time::Instant::now();
    patient
        .send_raw(frame(&Message::Sync(SyncMessage::Update(second))))
        .await;
    let (code, reason, _) = {
        let deadline = started + std::time::Duration::from_secs(30);
        loop {
            match tokio::time::timeout_at(deadline, patient.ws.next()).await {
                Ok(Some(Ok(WsMessage::Close(Some(close))))) => {
                    break (u16::from(close.code), close.reason.to_string(), ())
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(code, 1007, "{reason}");
    assert!(reason.contains("never received"), "{reason}");
    assert!(
        started.elapsed() >= tandem::server::room::pending::PENDING_TIMEOUT,
        "not refused before its time"
    );
    let check = Peer::join(&server, &id).await;
    assert_eq!(check.text(), "");
    drop(watcher);
}

/// Someone else's identifier: a connection that writes under another editor's Yjs client id,
/// at clocks that editor has not reached yet, would take those clocks, and every peer would
/// drop the real editor's next keystrokes as ones it already has. The first open connection
/// that writes as a client owns it; another is refused with 1013 (a reconnecting editor whose
/// old connection the server has not yet noticed gone retries and gets through later).
#[tokio::test]
async fn writing_as_another_open_connections_client_is_refused_and_their_work_goes_on() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut ann = Peer::join_as(&server, &id, Some(77)).await;
    ann.insert(0, "hello").await;
    let mut bob = Peer::join(&server, &id).await;
    bob.wait_for_text("hello").await;

    // Mallory's replica has Ann's text and Ann's client id; she writes the clocks Ann would.
    let forged = yrs::Doc::with_client_id(77);
    let forged_text = forged.get_or_insert_text(tandem::protocol::CONTENT);
    let update = {
        let state = ann
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        let mut txn = forged.transact_mut();
        txn.apply_update(yrs::updates::decoder::Decode::decode_v1(&state).unwrap())
            .unwrap();
        let sv = txn.state_vector();
        forged_text.insert(&mut txn, 5, " pwned");
        txn.encode_state_as_update_v1(&sv)
    };
    let mut mallory = Peer::join(&server, &id).await;
    mallory
        .send_raw(frame(&Message::Sync(SyncMessage::Update(update.clone()))))
        .await;
    let (code, reason, _) = close_of(&mut mallory).await;
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("another open connection"), "{reason}");

    // Ann's own next keystrokes (the same clocks) reach Bob and stay in the document.
    ann.insert(5, " world").await;
    bob.wait_for_text("hello world").await;
    let fresh = Peer::join(&server, &id).await;
    assert_eq!(fresh.text(), "hello world");

    // Repeating what the document already has is anyone's right: a reconnecting page's sync
    // step 2 does it.
    let state = ann
        .doc()
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let mut repeater = Peer::join(&server, &id).await;
    repeater
        .send(Message::Sync(SyncMessage::Update(state)))
        .await;
    repeater.insert(0, "> ").await;
    bob.wait_for_text("> hello world").await;

    // Once Ann's connection is gone, her reconnecting page writes as her again (its replica,
    // synchronised first, continues her clocks).
    let url = server.ws_url(id.as_str());
    ann.close().await;
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts <= 20, "Ann's reconnected page never got through");
        let mut ann_again = Peer::join_url(&url, Some(77)).await;
        ann_again.insert(0, "!").await;
        match tokio::time::timeout(std::time::Duration::from_secs(1), ann_again.expect_close())
            .await
        {
            // The server had not yet seen her old connection leave.
            Ok(1013) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Ok(code) => panic!("Ann's page was closed with {code}"),
            Err(_) => break,
        }
    }
    bob.wait_for_text("!> hello world").await;
}

/// Problem: a panic inside yrs was caught, but the half-changed replica went on serving. Now a
/// caught panic fails the room: every editor is closed with 1011 and the next join reloads the
/// document from storage, without the change that was applied but never stored. (Every input
/// known to panic yrs is now refused before yrs reads it, so the panic is requested.)
#[tokio::test]
async fn a_panic_during_integration_fails_the_room_and_the_next_join_reloads_it() {
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let doc = server.internal_id(&id).await;
    let mut ann = Peer::join(&server, &id).await;
    ann.insert(0, "kept").await;
    let mut bob = Peer::join(&server, &id).await;
    bob.wait_for_text("kept").await;

    let room = server.state.hub.get(&doc).expect("the room is open");
    room.panic_in_next_integration();
    bob.insert(4, " half-applied").await;
    assert_eq!(bob.expect_close().await, 1011);
    assert_eq!(ann.expect_close().await, 1011);
    drop(room);

    let fresh = Peer::join(&server, &id).await;
    assert_eq!(
        fresh.text(),
        "kept",
        "the next join reloads what was stored"
    );
    let reopened = server.state.hub.get(&doc).expect("the room is open again");
    assert!(reopened.failure().is_none());
}
