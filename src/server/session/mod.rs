//! One WebSocket connection to one room.
//!
//! The socket is split. The reader decodes frames and hands them to the room; the writer owns
//! the sink and is fed by two bounded sources: this connection's own replies ([`Replies`])
//! and the room's broadcast ring. Neither can grow: a full reply queue, a lagging broadcast
//! receiver or a send that does not complete in time closes the connection with 1013, and the
//! client resynchronises when it reconnects. Everything a connection leaves behind (its
//! awareness states, its room membership) is cleaned up in one place when both halves end.
//!
//! A connection the server closes is then read a while longer, until the client answers the
//! close (see [`Connection::linger`]): a client still sending would otherwise get a reset
//! instead of the close frame that says why.

mod outbox;
mod replies;
mod when_woken;

use super::capability::Role;
use super::error::CloseReason;
use super::hub::Hub;
use super::metrics;
use super::room::Presence;
use super::socket::{
    CapacityError, CloseFrame, Connection, Error as WsError, Lingered, Message as WsMessage,
    ProtocolError,
};
use crate::doc_id::DocId;
use bytes::Bytes;
use futures_util::Sink;
use futures_util::{SinkExt, StreamExt};
use outbox::Batch;
pub use outbox::{BATCH_BYTES, BATCH_FRAMES, WRITE_BUFFER_BYTES};
use replies::Replies;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use when_woken::WhenWoken;

/// Most changes of one connection accepted and not yet stored: reading the connection pauses
/// beyond it. Deep enough for a client sending back to back to fill the journal's group
/// commits; each costs a few hundred bytes while it waits.
pub const MAX_UNCONFIRMED: usize = 256;
/// Frames read in a row before the connection's task lets its writer run (see `run`).
const READS_BETWEEN_YIELDS: usize = 8;
/// ... and at most this many bytes of them (as received): a connection of large changes
/// pauses sooner, so what one connection holds in flight stays small beside its message limit.
pub const MAX_UNCONFIRMED_BYTES: usize = 4 * 1024 * 1024;
/// How long one frame may take to leave before the peer is deemed not to be reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the server pings each connection.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// A connection silent for this long (no pong, no message) is closed as dead.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// How long closing may take once decided.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// After the server's close frame, a connection is read (and what it sends discarded) for at
/// most this long while it has not answered with its own: time for a client busy sending to
/// finish its message and read why it was refused. One that never answers is cut off then.
pub const LINGER_TIME: Duration = Duration::from_secs(10);
/// ... and for at most twice the message limit (or [`LINGER_FLOOR_BYTES`], if more) plus this
/// many bytes: a client refused in the middle of an oversized message still gets to finish it
/// and read its close frame; one that keeps sending beyond that is cut off. What it sends is
/// read through a small buffer and dropped, so lingering costs bandwidth, not memory.
pub const LINGER_EXTRA_BYTES: u64 = 1024 * 1024;
/// The least a refused client may finish sending: a 64 MiB message (a pasted video, say)
/// still reads as refused with 1009, not as a dropped connection.
pub const LINGER_FLOOR_BYTES: u64 = 64 * 1024 * 1024;

/// The most a closed connection is read for, by [`LINGER_TIME`] and [`LINGER_EXTRA_BYTES`].
pub fn linger_bytes(max_message_bytes: usize) -> u64 {
    (max_message_bytes as u64)
        .saturating_mul(2)
        .max(LINGER_FLOOR_BYTES)
        .saturating_add(LINGER_EXTRA_BYTES)
}

/// What a reply queue holds beyond one whole document: small answers around a large one.
pub const SEND_QUEUE_EXTRA_BYTES: usize = 1024 * 1024;

pub struct SessionSettings {
    /// Capacity of the reply queue, in frames.
    pub send_queue: usize,
    /// Capacity of the reply queue, in bytes: one answer may be the whole document, so this
    /// is the document size limit plus a little; a peer that asks for more than it reads is
    /// closed with 1013 instead of holding the server's memory.
    pub send_queue_bytes: usize,
    /// The client is Tandem's own and wants to know when its changes are durable.
    pub acks: bool,
    /// Incoming messages allowed per second; beyond it the connection is closed with 1008.
    pub messages: governor::DefaultDirectRateLimiter,
    /// This connection's place in its address's count; held for the session's life.
    pub admission: super::limits::Admission,
    /// The largest message the socket accepts; bounds the reading after a close.
    pub max_message_bytes: usize,
    /// The link the connection came by: a view link reads the document, and its changes are
    /// refused; a link taken back while the connection is open closes it.
    pub link: LinkGrant,
}

/// The link a connection came by, as the server found it before the upgrade.
#[derive(Clone)]
pub struct LinkGrant {
    pub role: Role,
    pub generation: u32,
    /// How to look the link up again should links have been taken back anywhere while the
    /// connection was joining; `None` for a session made without a look-up.
    pub recheck: Option<Recheck>,
}

/// A link's token, where to look it up, and the hub's links epoch before it was looked up
/// (see [`Hub::links_epoch`]).
#[derive(Clone)]
pub struct Recheck {
    pub links: super::links::Links,
    pub token: DocId,
    pub epoch: u64,
}

impl LinkGrant {
    /// An edit link no reset ever reaches, for sessions made without one (tests, tools).
    pub fn edit() -> LinkGrant {
        LinkGrant {
            role: Role::Edit,
            generation: u32::MAX,
            recheck: None,
        }
    }

    /// Why the connection may not stay, looked up again when links were taken back anywhere
    /// since it was first looked up: a reset landing between that look-up and the join
    /// reached no room this connection was in. Costs one look-up, and only then.
    async fn taken_back_while_joining(&self, hub: &Hub, doc: &DocId) -> Option<CloseReason> {
        use super::links::Found;
        let recheck = self.recheck.as_ref()?;
        if hub.links_epoch() == recheck.epoch {
            return None;
        }
        match recheck.links.find_async(recheck.token.clone()).await {
            Ok(Found::Live(now))
                if now.doc == *doc
                    && now.role == self.role
                    && now.generation == self.generation =>
            {
                None
            }
            Ok(Found::Gone) => Some(CloseReason::deleted()),
            Ok(_) => Some(CloseReason::link_reset()),
            Err(error) => Some(CloseReason::internal(format!(
                "the link could not be looked up: {error}"
            ))),
        }
    }
}

/// Runs a connection to the document `id` until either side ends it or `shutdown` fires.
///
/// `socket` is anything that carries WebSocket messages both ways: the upgraded connection
/// in the server, plain channels in tests.
///
/// The returned future is every connection's task for its whole life, so its size is memory
/// per idle connection. Hence the shape: not an `async fn`, whose arguments take room twice
/// in its state (once as passed, once as moved into the body); the socket split before the
/// future is made, so the whole socket never takes room in it beside its halves; and the
/// steps that run once, at the end, behind a box of their own ([`linger_after_close`]).
pub fn run<S: Connection>(
    socket: S,
    hub: Hub,
    id: DocId,
    settings: SessionSettings,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    let (sink, stream) = socket.split();
    session(sink, stream, hub, id, settings, shutdown)
}

/// The writing half of a connection.
type SinkOf<S> = futures_util::stream::SplitSink<S, WsMessage>;
/// The reading half of a connection.
type StreamOf<S> = futures_util::stream::SplitStream<S>;

/// [`run`]'s body, on the socket's halves.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice in every connection's task (see `run`)"
)]
fn session<S: Connection>(
    mut sink: SinkOf<S>,
    mut stream: StreamOf<S>,
    hub: Hub,
    id: DocId,
    settings: SessionSettings,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let member = match hub.join(id.clone()).await {
            Ok(member) => member,
            Err(error) => {
                // The room refuses rather than serve an empty document that would then be
                // written over the stored one. The error itself was logged where it happened.
                let reason =
                    CloseReason::internal(format!("document could not be loaded: {error}"));
                if send_close(&mut sink, reason).await {
                    linger_after_close(sink, stream, &id, &settings, &shutdown).await;
                }
                return;
            }
        };
        let conn = member.conn;
        let room = member.room().clone();
        // Taken back since it was looked up: by a change the room heard of, or by one that may
        // have landed between the look-up and the join.
        let mut revocations = room.revocations();
        let heard = revocations
            .borrow_and_update()
            .closes(settings.link.role, settings.link.generation);
        let taken_back = match heard {
            Some(reason) => Some(reason),
            None => settings.link.taken_back_while_joining(&hub, &id).await,
        };
        if let Some(reason) = taken_back {
            tracing::info!(doc = %room.tag, conn, code = reason.code, "link taken back before the connection joined");
            drop(member);
            if send_close(&mut sink, reason).await {
                linger_after_close(sink, stream, &id, &settings, &shutdown).await;
            }
            return;
        }
        // Subscribe before the greeting is computed, so nothing published in between is missed.
        let mut updates = room.subscribe();
        let replies = Replies::new(settings.send_queue.max(4), settings.send_queue_bytes);
        let enqueue = |frame: Bytes| replies.try_push(frame);
        for frame in room.greeting() {
            let _ = enqueue(frame);
        }

        let closing = shutdown.child_token();
        let verdict: Mutex<Option<CloseReason>> = Mutex::new(None);
        let decide = |reason: CloseReason| {
            let mut slot = verdict.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(reason);
            closing.cancel();
        };
        let mut presence = Presence {
            viewer: settings.link.role == Role::View,
            ..Presence::default()
        };
        let expelled = presence.expelled.clone();
        // When the peer was last heard from (any frame, pongs included).
        let heard = Mutex::new(tokio::time::Instant::now());
        let saved = saved_frame();
        tracing::debug!(doc = %room.tag, conn, "connection opened");

        // Changes accepted from this connection and on their way to disk, oldest first: each is
        // confirmed ("saved", to Tandem's page) once stored, in order, while reading goes on.
        // Each resolves with the bytes it stands for, which count toward [`MAX_UNCONFIRMED_BYTES`].
        let mut unconfirmed = futures_util::stream::FuturesOrdered::<
            std::pin::Pin<
                Box<dyn std::future::Future<Output = (Result<(), CloseReason>, usize)> + Send>,
            >,
        >::new();
        let mut unconfirmed_bytes = 0usize;
        // Confirmations due that the reply queue had no room for: a commit can confirm many
        // changes at once, more than the queue holds. They wait here (counted against
        // [`MAX_UNCONFIRMED`], so reading pauses while they do) and go out as the queue drains.
        let mut owed_acks = 0usize;
        let mut read_in_a_row = 0usize;
        let reader = async {
            // Made once: each costs a lock to make and to drop, and the loop turns once per frame.
            let closed = closing.cancelled();
            let failed = room.failed().cancelled();
            let expelled = expelled.cancelled();
            tokio::pin!(closed, failed, expelled);
            loop {
                let paused = unconfirmed.len() + owed_acks >= MAX_UNCONFIRMED
                    || unconfirmed_bytes >= MAX_UNCONFIRMED_BYTES;
                let next = tokio::select! {
                    // Closing and taking a link back come before anything more is read.
                    biased;
                    _ = &mut closed => break,
                    _ = &mut failed => {
                        let failure = room.failure().unwrap_or_else(|| "the document failed".into());
                        decide(CloseReason::internal(failure));
                        break;
                    }
                    changed = revocations.changed() => {
                        if changed.is_err() {
                            break; // the room is gone
                        }
                        let taken_back = revocations
                            .borrow_and_update()
                            .closes(settings.link.role, settings.link.generation);
                        match taken_back {
                            Some(reason) => {
                                tracing::info!(doc = %room.tag, conn, code = reason.code, "the link this connection came by was taken back, closing");
                                decide(reason);
                                break;
                            }
                            None => continue,
                        }
                    }
                    confirmed = unconfirmed.next(), if !unconfirmed.is_empty() => {
                        let confirmed = confirmed.map(|(result, bytes)| {
                            unconfirmed_bytes -= bytes;
                            result
                        });
                        // Time spent not reading, waiting for the disk, is not the peer's silence.
                        if paused {
                            *heard.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
                        }
                        match confirmed {
                            Some(Ok(())) if settings.acks => {
                                if owed_acks > 0 || !enqueue(saved.clone()) {
                                    owed_acks += 1;
                                }
                            }
                            Some(Ok(())) | None => {}
                            Some(Err(reason)) => {
                                tracing::warn!(doc = %room.tag, conn, code = reason.code, reason = %reason.reason, "a change could not be stored, closing connection");
                                decide(reason);
                                break;
                            }
                        }
                        continue;
                    }
                    _ = &mut expelled => {
                        tracing::info!(doc = %room.tag, conn, "update waited too long for what it depends on, closing");
                        decide(CloseReason::invalid(
                            "an update depends on changes this document never received".into(),
                        ));
                        break;
                    }
                    // A confirmation owed goes out as soon as the reply queue has room.
                    _ = replies.room_for(saved.len()), if owed_acks > 0 => {
                        if replies.try_push(saved.clone()) {
                            owed_acks -= 1;
                        }
                        continue;
                    }
                    // Reading waits while too many changes are on their way to disk.
                    next = stream.next(), if !paused => next,
                };
                *heard.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
                // The writer below shares this task: while frames keep arriving, reading never
                // waits, and the writer would not take this connection's share of the room's ring
                // (its own changes among them) until the ring overflowed and closed it for falling
                // behind. Every few frames the task yields, so the writer runs too.
                read_in_a_row += 1;
                if read_in_a_row >= READS_BETWEEN_YIELDS {
                    read_in_a_row = 0;
                    tokio::task::yield_now().await;
                }
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
                        metrics::received(&frame);
                        // In a box: inline, the room's work on a frame would make the reader's
                        // state (boxed once per connection, see `WhenWoken`) a third bigger for
                        // the connection's whole life, to be used only while a frame is handled.
                        match Box::pin(room.accept(conn, &mut presence, &frame)).await {
                            Ok(mut received) => {
                                // Large answers count as more messages: asking for the whole
                                // document again and again runs out of allowance.
                                if !charge(&settings.messages, received.cost) {
                                    tracing::warn!(doc = %room.tag, conn, cost = received.cost, "expensive requests beyond the message rate, closing connection");
                                    decide(CloseReason::policy("too many requests; slow down"));
                                    break;
                                }
                                if !charge_up_to_burst(&settings.messages, received.slow_cost) {
                                    tracing::warn!(doc = %room.tag, conn, cost = received.slow_cost, "updates slow to integrate beyond the message rate, closing connection");
                                    decide(CloseReason::policy(
                                        "updates too slow to integrate; slow down",
                                    ));
                                    break;
                                }
                                if let Some(durable) = received.durable.take() {
                                    let bytes = frame.len();
                                    unconfirmed_bytes += bytes;
                                    unconfirmed
                                        .push_back(Box::pin(async move { (durable.await, bytes) }));
                                }
                                if !received.replies.into_iter().all(&enqueue) {
                                    tracing::info!(doc = %room.tag, conn, "reply queue full, closing");
                                    decide(CloseReason::lagging("reply queue full"));
                                    break;
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
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_))) => {}
                    Some(Err(error)) => {
                        match refusal(&error) {
                            Some(reason) => {
                                tracing::warn!(doc = %room.tag, conn, %error, code = reason.code, "bad input, closing connection");
                                decide(reason);
                            }
                            None => {
                                tracing::debug!(doc = %room.tag, conn, %error, "connection error")
                            }
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
            let closed = closing.cancelled();
            tokio::pin!(closed);
            loop {
                // The first frame ready, then whatever else is ready with it.
                let mut batch = Batch::default();
                tokio::select! {
                    biased;
                    _ = &mut closed => break,
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
                    frame = replies.pop() => batch.push_reply(frame),
                    update = updates.recv() => match update {
                        Ok(update) => {
                            batch.push_entry(&update, conn);
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::info!(doc = %room.tag, conn, missed, "connection fell behind, closing");
                            decide(CloseReason::lagging("fell behind; reconnect to resync"));
                            break;
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                };
                // Woken by the room's first change of a round: every other connection of the room
                // was woken with it, and the next changes arrive while they take theirs. Letting
                // them run first gathers those into this write.
                if batch.has_broadcast() {
                    tokio::task::yield_now().await;
                }
                while !batch.is_full() {
                    let Some(frame) = replies.try_pop() else {
                        break;
                    };
                    batch.push_reply(frame);
                }
                let mut lagged = None;
                while !batch.is_full() {
                    match updates.try_recv() {
                        Ok(update) => {
                            batch.push_entry(&update, conn);
                        }
                        Err(broadcast::error::TryRecvError::Lagged(missed)) => {
                            lagged = Some(missed);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // Only this connection's own changes came: nothing to write.
                if batch.is_empty() && lagged.is_none() {
                    continue;
                }
                match tokio::time::timeout(SEND_TIMEOUT, batch.write(&mut sink)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break,
                    Err(_) => {
                        tracing::info!(doc = %room.tag, conn, "peer is not reading, closing");
                        decide(CloseReason::lagging("not reading"));
                        break;
                    }
                }
                // What was ready went out first; the connection then resynchronises.
                if let Some(missed) = lagged {
                    tracing::info!(doc = %room.tag, conn, missed, "connection fell behind, closing");
                    decide(CloseReason::lagging("fell behind; reconnect to resync"));
                    break;
                }
            }
            closing.cancel();
            let reason = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
            let reason = reason.or_else(|| shutdown.is_cancelled().then(CloseReason::going_away));
            let delivered = match reason {
                Some(reason) => send_close(&mut sink, reason).await,
                None => true,
            };
            // A close that could not go out (the peer stopped reading) is not followed by one
            // without a reason: the connection is dropped, and the peer sees it cut off.
            if delivered {
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            }
            delivered
        };

        // The writer is polled on every wake of the task: a fast writer's confirmations then go
        // out as soon as they are due (polled only on its own wakes, that connection wrote 40%
        // fewer durable changes a second). The reader is polled only when something it waits on
        // woke it: each frame the room broadcasts wakes the task, and re-polling the reader's wait
        // (its socket, the tokens it watches) tripled the instructions per delivery.
        let ((), delivered) = tokio::join!(WhenWoken::new(reader), writer);
        room.leave(conn, &presence);
        drop(member);
        // Nothing of the room is kept while the connection lingers: an unread place in the
        // broadcast ring keeps the changes after it alive, and replies and changes on their way
        // to disk are of no use to a connection that is closing.
        drop((updates, revocations, unconfirmed, replies));
        let tag = room.tag;
        drop(room);
        // Still counted against its address while it lingers.
        if delivered {
            linger_after_close(sink, stream, &id, &settings, &shutdown).await;
        }
        tracing::debug!(doc = %tag, conn, "connection closed");
        drop(settings);
    }
}

/// [`linger`] on the socket put back together, in a box: it runs once, as the connection
/// ends, and inline its state (the whole socket among it) would be part of every connection's
/// task for the connection's whole life.
fn linger_after_close<'a, S: Connection + 'a>(
    sink: SinkOf<S>,
    stream: StreamOf<S>,
    doc: &'a DocId,
    settings: &'a SessionSettings,
    shutdown: &'a CancellationToken,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
    Box::pin(async move {
        match stream.reunite(sink) {
            Ok(mut socket) => linger(&mut socket, doc, settings, shutdown).await,
            // Not from one split: cannot happen, both halves are this connection's.
            Err(_) => {
                tracing::warn!(doc = %crate::server::redact::doc_tag(doc), "the socket's halves did not fit together; not lingering")
            }
        }
    })
}

/// What tungstenite's refusal of the input means for the client: `None` when the connection
/// merely failed (or the peer left) and there is nobody to tell.
fn refusal(error: &WsError) -> Option<CloseReason> {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { max_size, .. }) => Some(
            CloseReason::too_big(format!("message too big; the limit is {max_size} bytes")),
        ),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(error) => Some(CloseReason::protocol(error.to_string())),
        WsError::Utf8(_) => Some(CloseReason::invalid("text frame is not UTF-8".into())),
        _ => None,
    }
}

/// Reads what the peer still sends after the close frame, within [`LINGER_TIME`] and
/// [`linger_bytes`]; on shutdown within [`CLOSE_TIMEOUT`].
async fn linger<S: Connection>(
    socket: &mut S,
    doc: &DocId,
    settings: &SessionSettings,
    shutdown: &CancellationToken,
) {
    let max_bytes = linger_bytes(settings.max_message_bytes);
    let limit = if shutdown.is_cancelled() {
        CLOSE_TIMEOUT
    } else {
        LINGER_TIME
    };
    let shutdown_grace = async {
        shutdown.cancelled().await;
        tokio::time::sleep(CLOSE_TIMEOUT).await;
    };
    let lingered = tokio::select! {
        lingered = tokio::time::timeout(limit, socket.linger(max_bytes)) => lingered.ok(),
        _ = shutdown_grace => None,
    };
    match lingered {
        Some(Lingered::Answered | Lingered::Ended) => {}
        Some(Lingered::TooMuch) => {
            tracing::info!(doc = %crate::server::redact::doc_tag(doc), max_bytes, "peer kept sending after the close, cutting it off")
        }
        None => {
            tracing::info!(doc = %crate::server::redact::doc_tag(doc), ?limit, "peer did not answer the close in time, cutting it off")
        }
    }
}

/// Tandem's confirmation that a change is stored: the same bytes for every connection, encoded
/// once and never counted (a static slice), so confirming on many cores at once shares no
/// counter.
fn saved_frame() -> Bytes {
    static SAVED: std::sync::OnceLock<&'static [u8]> = std::sync::OnceLock::new();
    Bytes::from_static(SAVED.get_or_init(|| {
        let encoded = crate::protocol::wire::encode(&yrs::sync::Message::Custom(
            crate::protocol::MSG_SAVED,
            Vec::new(),
        ));
        Box::leak(encoded.into_boxed_slice())
    }))
}

/// Charges `cost` extra messages against a connection's rate; false when it is exhausted.
/// One answer never costs more than half the burst, so a single join of a very large
/// document still leaves room for the joiner's own messages.
fn charge(limiter: &governor::DefaultDirectRateLimiter, cost: u32) -> bool {
    let Some(cost) = std::num::NonZeroU32::new(cost) else {
        return true;
    };
    match limiter.check_n(cost) {
        Ok(allowed) => allowed.is_ok(),
        Err(governor::InsufficientCapacity(burst)) => std::num::NonZeroU32::new(burst / 2)
            .is_none_or(|half| limiter.check_n(half).is_ok_and(|allowed| allowed.is_ok())),
    }
}

/// Charges `cost` extra messages, at most the whole burst; false when it is exhausted. One
/// costly message passes however costly; another before the allowance refills does not.
fn charge_up_to_burst(limiter: &governor::DefaultDirectRateLimiter, cost: u32) -> bool {
    let Some(cost) = std::num::NonZeroU32::new(cost) else {
        return true;
    };
    match limiter.check_n(cost) {
        Ok(allowed) => allowed.is_ok(),
        Err(governor::InsufficientCapacity(burst)) => std::num::NonZeroU32::new(burst)
            .is_none_or(|burst| limiter.check_n(burst).is_ok_and(|allowed| allowed.is_ok())),
    }
}

/// Sends a close frame with `reason`, giving up after [`CLOSE_TIMEOUT`]; true if it went out.
async fn send_close<S>(sink: &mut S, reason: CloseReason) -> bool
where
    S: Sink<WsMessage> + Unpin,
{
    metrics::closed(reason.code);
    if let Some(refusal) = metrics::Refusal::of_close(reason.code) {
        metrics::refused(refusal);
    }
    let frame = CloseFrame {
        code: reason.code.into(),
        reason: reason.reason.into(),
    };
    let sent = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(WsMessage::Close(Some(frame)))).await;
    matches!(sent, Ok(Ok(())))
}
