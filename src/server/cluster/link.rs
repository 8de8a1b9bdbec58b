//! The two connections to Redis. Both come back by themselves after Redis restarts or the
//! network drops; while they are away, documents stay in step through the store (see the
//! module above).

use super::{follower::Inbound, Cluster, Outgoing};
use crate::doc_id::DocId;
use futures_util::StreamExt;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest wait for Redis to answer connecting, subscribing or publishing.
const ANSWER_LIMIT: Duration = Duration::from_secs(5);
/// How often the subscribing connection is checked with a PING: a connection whose other end
/// vanished without closing it is noticed within this plus [`ANSWER_LIMIT`].
const PING_EVERY: Duration = Duration::from_secs(5);
/// Waits between attempts to reconnect, doubling from the first to the last.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MOST: Duration = Duration::from_secs(5);
/// A connection up this long was not failing at once: the next one starts from the quickest
/// retry. One that fails sooner, again and again, is retried ever more slowly.
const STEADY: Duration = Duration::from_secs(1);
/// Channels named in one SUBSCRIBE.
const SUBSCRIBE_CHUNK: usize = 500;
/// Messages sent to Redis in one pipeline.
const PUBLISH_BATCH: usize = 256;

/// Keeps a subscribing connection up for as long as the instance runs.
pub async fn subscribe_forever(cluster: Cluster) {
    let mut retry = RETRY_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        let outcome = subscribe_once(&cluster).await;
        // Back to quick retries only after a connection that lasted: one that fails at once,
        // again and again, is retried ever more slowly rather than a few times a second.
        if started.elapsed() >= STEADY {
            retry = RETRY_FIRST;
        }
        if cluster.inner.connected.swap(false, Ordering::Relaxed) {
            ::metrics::gauge!(crate::server::metrics::CLUSTER_CONNECTED).set(0.0);
        }
        if let Err(error) = outcome {
            tracing::warn!(%error, retry_ms = retry.as_millis() as u64, "the subscription to Redis is down; documents keep in step through the store meanwhile");
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MOST);
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {} s", ANSWER_LIMIT.as_secs())]
    Silent,
    #[error("Redis closed the connection")]
    Closed,
}

async fn answer<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, LinkError> {
    tokio::time::timeout(ANSWER_LIMIT, call)
        .await
        .map_err(|_| LinkError::Silent)?
        .map_err(LinkError::Redis)
}

async fn subscribe_once(cluster: &Cluster) -> Result<(), LinkError> {
    let pubsub = answer(cluster.inner.client.get_async_pubsub()).await?;
    let (mut sink, mut stream) = pubsub.split();
    // Whatever is open now; later changes arrive through `dirty`.
    cluster
        .inner
        .dirty
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let open: Vec<DocId> = cluster.followed().keys().cloned().collect();
    let mut subscribed = HashSet::new();
    for chunk in open.chunks(SUBSCRIBE_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|id| cluster.channel_of(id)).collect();
        answer(sink.subscribe(&channels)).await?;
        subscribed.extend(chunk.iter().cloned());
    }
    cluster.inner.connected.store(true, Ordering::Relaxed);
    ::metrics::gauge!(crate::server::metrics::CLUSTER_CONNECTED).set(1.0);
    tracing::info!(documents = open.len(), "subscribed to Redis");
    // Whatever was published while the subscription was down is read from the store now.
    for id in &open {
        cluster.deliver(id, Inbound::Subscribed);
    }
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return Err(LinkError::Closed);
                };
                cluster.dispatch(message.get_channel_name(), message.get_payload_bytes());
            }
            _ = cluster.inner.resubscribe.notified() => {
                resubscribe(cluster, &mut sink, &mut subscribed).await?;
            }
            _ = ping.tick() => {
                // Subscribed, Redis answers a PING with an array: any answer will do.
                answer(sink.ping::<redis::Value>()).await?;
            }
        }
    }
}

/// Brings the subscriptions in line with the documents open now; each newly subscribed
/// document reads what was stored before its subscription took hold, and asks who is here.
async fn resubscribe(
    cluster: &Cluster,
    sink: &mut redis::aio::PubSubSink,
    subscribed: &mut HashSet<DocId>,
) -> Result<(), LinkError> {
    let dirty: Vec<DocId> = std::mem::take(
        &mut *cluster
            .inner
            .dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    )
    .into_iter()
    .collect();
    let (mut join, mut leave) = (Vec::new(), Vec::new());
    {
        let followed = cluster.followed();
        for id in dirty {
            match (followed.contains_key(&id), subscribed.contains(&id)) {
                (true, false) => join.push(id),
                (false, true) => leave.push(id),
                // Reopened while subscribed: the new room still reads the store.
                (true, true) => join.push(id),
                (false, false) => {}
            }
        }
    }
    for chunk in leave.chunks(SUBSCRIBE_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|id| cluster.channel_of(id)).collect();
        answer(sink.unsubscribe(&channels)).await?;
        for id in chunk {
            subscribed.remove(id);
        }
    }
    for chunk in join.chunks(SUBSCRIBE_CHUNK) {
        let channels: Vec<String> = chunk.iter().map(|id| cluster.channel_of(id)).collect();
        answer(sink.subscribe(&channels)).await?;
        for id in chunk {
            subscribed.insert(id.clone());
            cluster.deliver(id, Inbound::Subscribed);
        }
    }
    Ok(())
}

/// Publishes what the rooms hand over, in order, a pipeline at a time. While Redis is away the
/// messages are dropped: the other instances read the store.
pub async fn publish_forever(cluster: Cluster, mut outgoing: mpsc::Receiver<Outgoing>) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    let mut down_since: Option<std::time::Instant> = None;
    let mut last_attempt: Option<std::time::Instant> = None;
    while outgoing.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        let count = batch.len() as u64;
        let mut pipe = redis::pipe();
        // The bytes stay counted until the pipeline is sent or dropped.
        let charges: Vec<Outgoing> = std::mem::take(&mut batch);
        for message in &charges {
            pipe.publish(&message.channel, &message.message).ignore();
        }
        if connection.is_none() {
            // While Redis is away, one attempt to reach it a second is enough.
            if down_since.is_some()
                && last_attempt.is_some_and(|at: std::time::Instant| at.elapsed() < RETRY_MOST / 5)
            {
                ::metrics::counter!(crate::server::metrics::CLUSTER_UNSENT).increment(count);
                continue;
            }
            last_attempt = Some(std::time::Instant::now());
            match answer(cluster.inner.client.get_multiplexed_async_connection()).await {
                Ok(made) => connection = Some(made),
                Err(error) => {
                    if down_since.is_none() {
                        tracing::warn!(%error, "cannot publish to Redis; other instances read changes from the store meanwhile");
                        down_since = Some(std::time::Instant::now());
                    }
                    ::metrics::counter!(crate::server::metrics::CLUSTER_UNSENT).increment(count);
                    continue;
                }
            }
        }
        let Some(made) = connection.as_mut() else {
            continue;
        };
        let mut sent = answer(pipe.query_async::<()>(made)).await;
        if sent.is_err() && down_since.is_none() {
            // The connection may have died since the last batch (Redis restarted): one new
            // connection and one more try, so that the first changes after a restart do not
            // wait for the others' poll of the store.
            if let Ok(made) = answer(cluster.inner.client.get_multiplexed_async_connection()).await
            {
                sent = answer(pipe.query_async::<()>(connection.insert(made))).await;
            }
        }
        match sent {
            Ok(()) => {
                if let Some(since) = down_since.take() {
                    tracing::info!(
                        down_ms = since.elapsed().as_millis() as u64,
                        "publishing to Redis again"
                    );
                }
                ::metrics::counter!(crate::server::metrics::CLUSTER_SENT).increment(count);
            }
            Err(error) => {
                if down_since.is_none() {
                    tracing::warn!(%error, "publishing to Redis failed; other instances read changes from the store meanwhile");
                    down_since = Some(std::time::Instant::now());
                }
                connection = None;
                ::metrics::counter!(crate::server::metrics::CLUSTER_UNSENT).increment(count);
            }
        }
    }
}
