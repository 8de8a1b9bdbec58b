//! A connection the server refuses hears why: its close frame, with code and reason, arrives
//! before the TCP connection ends, even while the client is still sending.
#![cfg(feature = "ssr")]

mod common;

use common::raw::RawClient;
use common::{status_kib, Peer, ServerProcess, TestServer, PATIENCE};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use yrs::sync::Message;
use yrs::updates::encoder::Encode;

use tandem::server::session::{linger_bytes, LINGER_TIME as LINGER};

/// What a refused client saw: the server's close frame (or what came instead), and whether
/// any of its own sends ran into a reset.
#[derive(Debug, PartialEq)]
struct Refusal {
    close: Result<(u16, String), String>,
    send_failure: Option<String>,
}

/// A stock client (tokio-tungstenite) joins a document, then one task sends `first` and, if
/// given, up to `repeats` copies of `then` (stopping at the first failed send), while this
/// task reads.
async fn refused_while_sending(
    server: &TestServer,
    first: WsMessage,
    then: Option<(WsMessage, usize)>,
) -> Refusal {
    let peer = Peer::join(server, &server.new_doc().await).await;
    let (mut sink, mut stream) = peer.ws.split();
    let sender = tokio::spawn(async move {
        sink.send(first).await?;
        if let Some((then, repeats)) = then {
            for _ in 0..repeats {
                sink.send(then.clone()).await?;
            }
        }
        Ok::<_, WsError>(())
    });
    let close = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.next().await {
                Some(Ok(WsMessage::Close(Some(frame)))) => {
                    return Ok((u16::from(frame.code), frame.reason.to_string()))
                }
                Some(Ok(WsMessage::Close(None))) => {
                    return Err("a close frame without a code".into())
                }
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(format!("connection failed: {error}")),
                None => return Err("connection ended without a close frame".into()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no close frame in time".into()));
    // Finish the closing handshake: reading sends the client's close reply.
    let _ = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    let sent = tokio::time::timeout(PATIENCE, sender)
        .await
        .expect("the sender finishes")
        .unwrap();
    // Once the client has the close frame, it refuses to send more: that is no failure. A
    // reset or a broken pipe is.
    let send_failure = match sent {
        Err(WsError::Io(error)) => Some(error.to_string()),
        _ => None,
    };
    Refusal {
        close,
        send_failure,
    }
}

fn refusal(code: u16, reason: &str) -> Refusal {
    Refusal {
        close: Ok((code, reason.to_string())),
        send_failure: None,
    }
}

fn awareness_query() -> WsMessage {
    WsMessage::Binary(Message::AwarenessQuery.encode_v1().into())
}

/// 64 MiB against the default limit of 4 MiB: the server sees the size in the frame header
/// and refuses before the client has finished sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_message_gets_1009_while_it_is_still_being_sent() {
    let server = TestServer::start().await;
    let big = WsMessage::Binary(vec![0u8; 64 * 1024 * 1024].into());
    let outcome = refused_while_sending(&server, big, None).await;
    assert_eq!(
        outcome,
        refusal(1009, "message too big; the limit is 4194304 bytes")
    );
}

#[tokio::test]
async fn a_text_frame_gets_1003_while_the_client_keeps_sending() {
    let server = TestServer::start().await;
    let text = WsMessage::Text("hello".into());
    let outcome = refused_while_sending(&server, text, Some((awareness_query(), 5_000))).await;
    assert_eq!(
        outcome,
        refusal(1003, "the Yjs protocol uses binary frames")
    );
}

#[tokio::test]
async fn undecodable_bytes_get_1007_while_the_client_keeps_sending() {
    let server = TestServer::start().await;
    let garbage = WsMessage::Binary(vec![0xff; 16].into());
    let outcome = refused_while_sending(&server, garbage, Some((awareness_query(), 5_000))).await;
    assert_eq!(outcome.send_failure, None);
    let (code, reason) = outcome.close.expect("a close frame");
    assert_eq!(code, 1007);
    assert!(reason.starts_with("undecodable"), "{reason}");
}

#[tokio::test]
async fn a_flood_gets_1008_while_it_goes_on() {
    let server = TestServer::start_with(|c| c.max_messages_per_second = 20).await;
    let outcome = refused_while_sending(
        &server,
        awareness_query(),
        Some((awareness_query(), 50_000)),
    )
    .await;
    assert_eq!(outcome, refusal(1008, "too many messages; slow down"));
}

/// Reads `client` while writing a byte of an endless frame every 100 ms; returns once the
/// server has ended the connection (EOF or reset), or after at most `limit`.
async fn trickle_until_cut_off(client: &mut RawClient, limit: Duration) -> bool {
    client
        .send_header(OpCode::Data(Data::Binary), 1 << 40)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(100), client.read_some()).await {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => {
                if client.write_raw(b"x").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

/// A client that never answers the server's close frame and keeps trickling data is read for
/// the linger time, then cut off.
#[tokio::test]
async fn a_client_that_never_answers_the_close_is_cut_off_after_the_linger_time() {
    let server = TestServer::start().await;
    let mut client =
        RawClient::connect(server.addr, &format!("/ws/{}", server.new_doc().await)).await;
    client
        .send_frame(OpCode::Data(Data::Text), b"hello")
        .await
        .unwrap();
    let close = client.read_close().await.expect("no reset");
    assert_eq!(
        close,
        Some((1003, "the Yjs protocol uses binary frames".to_string()))
    );
    let refused = tokio::time::Instant::now();
    assert!(
        trickle_until_cut_off(&mut client, LINGER + PATIENCE).await,
        "the server ends the connection"
    );
    // The server's clock started when it sent its close, a moment before the client read it.
    let lingered = refused.elapsed();
    assert!(
        lingered >= LINGER - Duration::from_secs(1),
        "cut off after {lingered:?}, before the linger time"
    );
}

/// ... and is read for no more than twice the message limit (at least 64 MiB) plus 1 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_answers_the_close_is_cut_off_after_the_linger_bytes() {
    let limit = 64 * 1024;
    let server = TestServer::start_with(|c| c.max_message_bytes = limit).await;
    let mut client =
        RawClient::connect(server.addr, &format!("/ws/{}", server.new_doc().await)).await;
    client
        .send_frame(OpCode::Data(Data::Text), b"hello")
        .await
        .unwrap();
    let close = client.read_close().await.expect("no reset");
    assert_eq!(close.map(|(code, _)| code), Some(1003));
    // Far more than the server reads and than socket buffers hold.
    let linger = linger_bytes(limit) as usize;
    client
        .send_header(OpCode::Data(Data::Binary), 1 << 40)
        .await
        .unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut sent = 0usize;
    let cut_off = tokio::time::timeout(PATIENCE, async {
        for _ in 0..linger / chunk.len() + 512 {
            if client.write_raw(&chunk).await.is_err() {
                return true;
            }
            sent += chunk.len();
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(cut_off, "the server kept reading ({sent} bytes sent)");
    assert!(
        sent >= linger - 1024 * 1024,
        "cut off early, after {sent} bytes"
    );
}

/// Refusing a 64 MiB message costs the server little memory: it reads past what it refused
/// through a small buffer instead of holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_a_64_mib_message_costs_the_server_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(dir.path());
    let pid = server.child.id();
    let id = server.new_doc();
    let peer = Peer::join_url(&server.ws_url(&id), None).await;
    let resident_before = status_kib(pid, "VmRSS");
    let peak_before = status_kib(pid, "VmHWM");
    let big = WsMessage::Binary(vec![0u8; 64 * 1024 * 1024].into());
    let (mut sink, mut stream) = peer.ws.split();
    let sender = tokio::spawn(async move { sink.send(big).await });
    // The peak since start may hide what the refusal costs; sample while it happens too.
    let sampling = tokio_util::sync::CancellationToken::new();
    let sampler = tokio::spawn({
        let sampling = sampling.clone();
        async move {
            let mut peak = 0;
            // Bounded: at most 30 s.
            for _ in 0..6_000 {
                peak = peak.max(status_kib(pid, "VmRSS"));
                tokio::select! {
                    _ = sampling.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
            peak
        }
    });
    let code = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("closed in time");
    let _ = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    let _ = tokio::time::timeout(PATIENCE, sender).await;
    sampling.cancel();
    let sampled_peak = sampler.await.unwrap();
    let peak_after = status_kib(pid, "VmHWM");
    eprintln!(
        "server resident memory: {} MiB before, {} MiB at most while refusing (sampled); \
         peak since start {} MiB before, {} MiB after",
        resident_before / 1024,
        sampled_peak / 1024,
        peak_before / 1024,
        peak_after / 1024
    );
    assert_eq!(code, Some(1009));
    let grew_mib = sampled_peak.saturating_sub(resident_before) / 1024;
    assert!(grew_mib < 16, "resident memory grew by {grew_mib} MiB");
    let peak_grew_mib = peak_after.saturating_sub(peak_before) / 1024;
    assert!(
        peak_grew_mib < 16,
        "peak resident memory grew by {peak_grew_mib} MiB"
    );
}

/// A client that stops reading while each change is a commit of its own is lapped by the
/// room's ring, and closed with 1013 after what it had not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_the_ring_laps_is_closed_with_1013() {
    let server = TestServer::start_with(|c| c.send_queue = 8).await;
    let id = server.new_doc().await;
    let mut writer = Peer::join(&server, &id).await;
    let mut sleeper = Peer::join(&server, &id).await; // never reads until the end
                                                      // Sees each change before the next is sent, so each is committed, and enters the ring,
                                                      // on its own: 768 entries, past the ring's 512, once the sleeper's socket is full.
    let mut watcher = Peer::join(&server, &id).await;
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..384u32 {
        writer.insert(0, &chunk).await;
        watcher.wait_for_text(&chunk).await;
        let delete = writer.edit(0, chunk.len() as u32, "");
        writer
            .send(Message::Sync(yrs::sync::SyncMessage::Update(delete)))
            .await;
        watcher.wait_for_text("").await;
        while let Ok(Some(Ok(_))) =
            tokio::time::timeout(Duration::from_millis(1), writer.ws.next()).await
        {}
    }
    assert_eq!(sleeper.expect_close().await, 1013);
}
