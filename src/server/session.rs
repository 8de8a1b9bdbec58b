//! One WebSocket connection to one room.
//!
//! The socket is split. The reader decodes frames and hands them to the room; the writer owns
//! the sink and is fed by two bounded sources: this connection's own replies (an mpsc queue)
//! and the room's broadcast ring. Neither can grow: a full reply queue, a lagging broadcast
//! receiver or a send that does not complete in time closes the connection with 1013, and the
//! client resynchronises when it reconnects. Everything a connection leaves behind (its
//! awareness states, its room membership) is cleaned up in one place when both halves end.

use super::error::CloseReason;
use super::hub::Hub;
use super::room::{encode, Presence};
use crate::doc_id::DocId;
use axum::extract::ws::{CloseFrame, Message as WsMessage};
use bytes::Bytes;
use futures_util::{Sink, Stream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

/// How long one frame may take to leave before the peer is deemed not to be reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings each connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// A connection silent for this long (no pong, no message) is closed as dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// How long closing may take once decided.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

pub struct SessionSettings {
    /// Capacity of the reply queue.
    pub send_queue: usize,
    /// The client is Tandem's own and wants to know when its changes are durable.
    pub acks: bool,
    /// Incoming messages allowed per second; beyond it the connection is closed with 1008.
    pub messages: governor::DefaultDirectRateLimiter,
    /// This connection's place in its address's count; held for the session's life.
    pub admission: super::limits::Admission,
}

/// Runs a connection to the document `id` until either side ends it or `shutdown` fires.
///
/// `socket` is anything that carries WebSocket messages both ways: axum's `WebSocket` in the
/// server, plain channels in tests.
pub async fn run<S>(
    mut socket: S,
    hub: Hub,
    id: DocId,
    settings: SessionSettings,
    shutdown: CancellationToken,
) where
    S: Stream<Item = Result<WsMessage, axum::Error>>
        + Sink<WsMessage, Error = axum::Error>
        + Send
        + Unpin,
{
    let member = match hub.join(id.clone()).await {
        Ok(member) => member,
        Err(error) => {
            // The room refuses rather than serve an empty document that would then be
            // written over the stored one. The error itself was logged where it happened.
            let reason = CloseReason::internal(format!("document could not be loaded: {error}"));
            send_close(&mut socket, reason).await;
            return;
        }
    };
    let conn = member.conn;
    let room = member.room().clone();
    // Subscribe before the greeting is computed, so nothing published in between is missed.
    let mut updates = room.subscribe();
    let (replies, mut queued) = mpsc::channel::<Bytes>(settings.send_queue.max(4));
    for frame in room.greeting() {
        let _ = replies.try_send(frame);
    }

    let (mut sink, mut stream) = socket.split();
    let closing = shutdown.child_token();
    let verdict: Mutex<Option<CloseReason>> = Mutex::new(None);
    let decide = |reason: CloseReason| {
        let mut slot = verdict.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(reason);
        closing.cancel();
    };
    let mut presence = Presence::default();
    let expelled = presence.expelled.clone();
    // When the peer was last heard from (any frame, pongs included).
    let heard = Mutex::new(tokio::time::Instant::now());
    let saved = encode(yrs::sync::Message::Custom(
        crate::protocol::MSG_SAVED,
        Vec::new(),
    ));
    tracing::debug!(doc = %room.tag, conn, "connection opened");

    let reader = async {
        loop {
            let next = tokio::select! {
                _ = closing.cancelled() => break,
                _ = room.failed().cancelled() => {
                    let failure = room.failure().unwrap_or_else(|| "the document failed".into());
                    decide(CloseReason::internal(failure));
                    break;
                }
                _ = expelled.cancelled() => {
                    tracing::info!(doc = %room.tag, conn, "update waited too long for what it depends on, closing");
                    decide(CloseReason::invalid(
                        "an update depends on changes this document never received".into(),
                    ));
                    break;
                }
                next = stream.next() => next,
            };
            *heard.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
            if matches!(next, Some(Ok(WsMessage::Binary(_) | WsMessage::Text(_))))
                && settings.messages.check().is_err()
            {
                tracing::warn!(doc = %room.tag, conn, "message rate exceeded, closing connection");
                decide(CloseReason::policy("too many messages; slow down"));
                break;
            }
            match next {
                None | Some(Ok(WsMessage::Close(_))) => break,
                Some(Ok(WsMessage::Binary(frame))) => {
                    match room.receive(conn, &mut presence, &frame).await {
                        Ok(mut received) => {
                            // Large answers count as more messages: asking for the whole
                            // document again and again runs out of allowance.
                            let extra = std::num::NonZeroU32::new(received.cost);
                            if extra.is_some_and(|n| settings.messages.check_n(n) != Ok(Ok(()))) {
                                tracing::warn!(doc = %room.tag, conn, cost = received.cost, "expensive requests beyond the message rate, closing connection");
                                decide(CloseReason::policy("too many requests; slow down"));
                                break;
                            }
                            if received.stored && settings.acks {
                                received.replies.push(saved.clone());
                            }
                            for frame in received.replies {
                                if replies.try_send(frame).is_err() {
                                    decide(CloseReason::lagging("reply queue full"));
                                }
                            }
                        }
                        Err(reason) => {
                            tracing::warn!(doc = %room.tag, conn, code = reason.code, reason = %reason.reason, "bad message, closing connection");
                            decide(reason);
                            break;
                        }
                    }
                }
                Some(Ok(WsMessage::Text(_))) => {
                    tracing::warn!(doc = %room.tag, conn, "text frame, closing connection");
                    decide(CloseReason::unsupported(
                        "the Yjs protocol uses binary frames".into(),
                    ));
                    break;
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => {}
                Some(Err(error)) => {
                    let text = error.to_string();
                    if text.contains("too long") || text.contains("Space limit") {
                        tracing::warn!(doc = %room.tag, conn, %text, "message too big, closing connection");
                        decide(CloseReason::too_big("message too big"));
                    } else {
                        tracing::debug!(doc = %room.tag, conn, %text, "connection error");
                    }
                    break;
                }
            }
        }
        closing.cancel();
    };

    let writer = async {
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            let frame = tokio::select! {
                biased;
                _ = closing.cancelled() => break,
                _ = pings.tick() => {
                    let silent_for = heard.lock().unwrap_or_else(|p| p.into_inner()).elapsed();
                    if silent_for >= SILENCE_LIMIT {
                        tracing::info!(doc = %room.tag, conn, ?silent_for, "peer stopped answering pings, closing");
                        decide(CloseReason::silent());
                        break;
                    }
                    match tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Ping(Bytes::new()))).await {
                        Ok(Ok(())) => continue,
                        _ => break,
                    }
                }
                frame = queued.recv() => match frame {
                    Some(frame) => frame,
                    None => break,
                },
                update = updates.recv() => match update {
                    Ok(update) if update.from == conn => continue,
                    Ok(update) => update.frame,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::info!(doc = %room.tag, conn, missed, "connection fell behind, closing");
                        decide(CloseReason::lagging("fell behind; reconnect to resync"));
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            };
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(WsMessage::Binary(frame))).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break,
                Err(_) => {
                    tracing::info!(doc = %room.tag, conn, "peer is not reading, closing");
                    decide(CloseReason::lagging("not reading"));
                    break;
                }
            }
        }
        closing.cancel();
        let reason = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
        let reason = reason.or_else(|| shutdown.is_cancelled().then(CloseReason::going_away));
        if let Some(reason) = reason {
            send_close(&mut sink, reason).await;
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    };

    tokio::join!(reader, writer);
    room.leave(conn, &presence);
    tracing::debug!(doc = %room.tag, conn, "connection closed");
    drop(member);
    drop(settings);
}

/// Sends a close frame with `reason`, giving up after [`CLOSE_TIMEOUT`].
async fn send_close<S>(sink: &mut S, reason: CloseReason)
where
    S: Sink<WsMessage> + Unpin,
{
    let frame = CloseFrame {
        code: reason.code,
        reason: reason.reason.into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
}
