//! What the server counts, for `GET /metrics` in the Prometheus text format: recorded with the
//! `metrics` crate where things happen, rendered by `metrics-exporter-prometheus`. Counts that
//! are a state rather than an event (connections, documents, presence, storage) are read when
//! scraped.
//!
//! Every label takes values from a fixed set (message kinds, close codes, refusal reasons), so
//! no client can grow the number of series.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Open WebSocket connections.
pub const CONNECTIONS: &str = "tandem_connections";
/// Documents in memory (with at least one connection).
pub const DOCUMENTS: &str = "tandem_documents_open";
/// Presence entries across open documents.
pub const PRESENCE: &str = "tandem_presence_entries";
/// Bytes of the database and its write-ahead log.
pub const STORAGE_BYTES: &str = "tandem_storage_bytes";
/// Messages received, by `kind`.
pub const MESSAGES_IN: &str = "tandem_messages_received_total";
/// Bytes received in messages, by `kind`.
pub const BYTES_IN: &str = "tandem_received_bytes_total";
/// Messages sent, by `path` (`reply` to the sender, `broadcast` to the others).
pub const MESSAGES_OUT: &str = "tandem_messages_sent_total";
/// Bytes sent in messages, by `path`.
pub const BYTES_OUT: &str = "tandem_sent_bytes_total";
/// Updates stored durably.
pub const UPDATES_STORED: &str = "tandem_updates_stored_total";
/// Seconds one journal commit (a batch of updates) took.
pub const COMMIT_SECONDS: &str = "tandem_journal_commit_seconds";
/// Seconds from a document update's broadcast to its frame leaving for one other connection
/// (presence, far more frequent, is not timed).
pub const FANOUT_SECONDS: &str = "tandem_fanout_seconds";
/// Connections the server closed, by `code`.
pub const CLOSES: &str = "tandem_closes_total";
/// Requests and connections refused, by `reason`.
pub const REFUSALS: &str = "tandem_refusals_total";
/// 1 while the subscription to Redis is up (with `--redis-url`).
pub const CLUSTER_CONNECTED: &str = "tandem_redis_connected";
/// Messages published to Redis.
pub const CLUSTER_SENT: &str = "tandem_redis_published_total";
/// Messages not published (Redis away, or the queue full): other instances read the store.
pub const CLUSTER_UNSENT: &str = "tandem_redis_unpublished_total";
/// Messages from other instances received through Redis.
pub const CLUSTER_RECEIVED: &str = "tandem_redis_received_total";
/// Messages on Redis that were not Tandem's, dropped.
pub const CLUSTER_REFUSED: &str = "tandem_redis_refused_total";
/// Messages that found a document's follower queue full.
pub const CLUSTER_OVERFLOWS: &str = "tandem_redis_overflows_total";
/// Times a document read changes from the store that Redis did not bring (or not in time).
pub const CLUSTER_CATCH_UPS: &str = "tandem_store_catch_ups_total";

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Latency buckets, in seconds: from a tenth of a millisecond to ten seconds.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process's recorder, installed on first use (one per process: the `metrics` macros
/// record into a global).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
        }
        describe();
        // Histogram samples are held raw until upkeep folds them into buckets: done every
        // second, whether anyone scrapes or not, so they cannot pile up.
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open WebSocket connections.");
    describe_gauge!(DOCUMENTS, "Documents in memory.");
    describe_gauge!(PRESENCE, "Presence entries across open documents.");
    describe_gauge!(STORAGE_BYTES, Unit::Bytes, "Database and write-ahead log.");
    describe_counter!(MESSAGES_IN, "Messages received, by kind.");
    describe_counter!(
        BYTES_IN,
        Unit::Bytes,
        "Bytes received in messages, by kind."
    );
    describe_counter!(MESSAGES_OUT, "Messages sent, by path.");
    describe_counter!(BYTES_OUT, Unit::Bytes, "Bytes sent in messages, by path.");
    describe_counter!(UPDATES_STORED, "Updates stored durably.");
    describe_histogram!(COMMIT_SECONDS, Unit::Seconds, "Journal commit time.");
    describe_histogram!(
        FANOUT_SECONDS,
        Unit::Seconds,
        "From an update's broadcast to its frame leaving for another connection."
    );
    describe_counter!(CLOSES, "Connections closed by the server, by close code.");
    describe_counter!(REFUSALS, "Requests and connections refused, by reason.");
    describe_gauge!(CLUSTER_CONNECTED, "1 while subscribed to Redis.");
    describe_counter!(CLUSTER_SENT, "Messages published to Redis.");
    describe_counter!(CLUSTER_UNSENT, "Messages not published to Redis.");
    describe_counter!(
        CLUSTER_RECEIVED,
        "Messages from other instances through Redis."
    );
    describe_counter!(CLUSTER_REFUSED, "Foreign messages on Redis, dropped.");
    describe_counter!(
        CLUSTER_OVERFLOWS,
        "Messages that found a follower queue full."
    );
    describe_counter!(CLUSTER_CATCH_UPS, "Reads of missed changes from the store.");
}

/// The kind of a Yjs message, from its first bytes, as a label.
pub fn message_kind(frame: &[u8]) -> &'static str {
    match frame {
        [0, 0, ..] => "sync_step1",
        [0, 1, ..] => "sync_step2",
        [0, 2, ..] => "update",
        [1, ..] => "awareness",
        [3, ..] => "query_awareness",
        [100, ..] => "saved",
        [101, ..] => "ping",
        [102, ..] => "pong",
        _ => "other",
    }
}

/// Counts a message received.
pub fn received(frame: &[u8]) {
    let kind = message_kind(frame);
    metrics::counter!(MESSAGES_IN, "kind" => kind).increment(1);
    metrics::counter!(BYTES_IN, "kind" => kind).increment(frame.len() as u64);
}

/// Where a message sent went: to the connection that asked, or to the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Reply,
    Broadcast,
}

/// The sent-message counters, looked up once: every batch written to every connection counts
/// itself, and looking a labelled counter up hashes its labels and takes the registry's lock.
struct SentCounters {
    messages: [metrics::Counter; 2],
    bytes: [metrics::Counter; 2],
}

fn sent_counters() -> &'static SentCounters {
    static COUNTERS: OnceLock<SentCounters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        // Counters taken before the recorder is installed would count nowhere, for good.
        handle();
        let path = |p: &'static str| {
            (
                metrics::counter!(MESSAGES_OUT, "path" => p),
                metrics::counter!(BYTES_OUT, "path" => p),
            )
        };
        let (reply, broadcast) = (path("reply"), path("broadcast"));
        SentCounters {
            messages: [reply.0, broadcast.0],
            bytes: [reply.1, broadcast.1],
        }
    })
}

/// Counts `messages` messages of `bytes` bytes in all sent together on one path.
pub fn sent_many(path: Path, messages: u64, bytes: u64) {
    let counters = sent_counters();
    counters.messages[path as usize].increment(messages);
    counters.bytes[path as usize].increment(bytes);
}

/// Records how long a change waited between its broadcast and leaving for one connection.
pub fn fanout_delay(delay: std::time::Duration) {
    static HISTOGRAM: OnceLock<metrics::Histogram> = OnceLock::new();
    HISTOGRAM
        .get_or_init(|| {
            handle();
            metrics::histogram!(FANOUT_SECONDS)
        })
        .record(delay.as_secs_f64());
}

/// Counts a close the server decided, by its code (one of the few the server sends).
pub fn closed(code: u16) {
    let code = match code {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1011 => "1011",
        1013 => "1013",
        _ => "other",
    };
    metrics::counter!(CLOSES, "code" => code).increment(1);
}

/// Why something was refused, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections from one address, or too fast (HTTP 429).
    AddressLimit,
    /// Too many connections in all, or pages rendering (HTTP 503).
    Capacity,
    /// A WebSocket from an origin not allowed (HTTP 403).
    Origin,
    /// A message or document over its size limit (close 1009).
    Size,
    /// Too many messages, or too slow to integrate (close 1008).
    Rate,
    /// A malformed request or message (HTTP 400, close 1002/1003/1007).
    Malformed,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::AddressLimit => "address_limit",
            Refusal::Capacity => "capacity",
            Refusal::Origin => "origin",
            Refusal::Size => "size",
            Refusal::Rate => "rate",
            Refusal::Malformed => "malformed",
        }
    }

    /// The refusal a close code stands for, if it is one.
    pub fn of_close(code: u16) -> Option<Refusal> {
        match code {
            1009 => Some(Refusal::Size),
            1008 => Some(Refusal::Rate),
            1002 | 1003 | 1007 => Some(Refusal::Malformed),
            _ => None,
        }
    }
}

/// Counts a refusal.
pub fn refused(why: Refusal) {
    metrics::counter!(REFUSALS, "reason" => why.label()).increment(1);
}

/// The state the scrape reads, set just before rendering.
pub struct Now {
    pub connections: usize,
    pub documents: usize,
    pub presence: usize,
    pub storage_bytes: Option<u64>,
}

/// Renders every metric, with the state counts as of `now`.
///
/// The recorder is the process's: two servers in one process (the tests run many) scraping at
/// once would each set the gauges and could render the other's values, so setting and
/// rendering happen under one lock.
pub fn render(now: Now) -> String {
    static RENDERING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = RENDERING.lock().unwrap_or_else(|p| p.into_inner());
    let handle = handle();
    metrics::gauge!(CONNECTIONS).set(now.connections as f64);
    metrics::gauge!(DOCUMENTS).set(now.documents as f64);
    metrics::gauge!(PRESENCE).set(now.presence as f64);
    if let Some(bytes) = now.storage_bytes {
        metrics::gauge!(STORAGE_BYTES).set(bytes as f64);
    }
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_kinds_come_from_a_fixed_set() {
        assert_eq!(message_kind(&[0, 0, 1]), "sync_step1");
        assert_eq!(message_kind(&[0, 1]), "sync_step2");
        assert_eq!(message_kind(&[0, 2, 5]), "update");
        assert_eq!(message_kind(&[1, 9]), "awareness");
        assert_eq!(message_kind(&[3]), "query_awareness");
        assert_eq!(message_kind(&[101]), "ping");
        for junk in [&[][..], &[0][..], &[0, 9][..], &[2][..], &[255, 255][..]] {
            assert_eq!(message_kind(junk), "other");
        }
    }
}
