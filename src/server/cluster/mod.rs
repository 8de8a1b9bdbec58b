//! Several instances serving the same documents: PostgreSQL holds the truth, Redis carries the
//! news.
//!
//! # Layout
//! - this module: the handle the hub and the rooms use, and the routing of what arrives.
//! - [`envelope`]: the messages instances exchange.
//! - [`link`]: the Redis connections (one subscribing, one publishing), reconnecting forever.
//! - [`follower`]: one task per open document, applying other instances' changes in log order
//!   and reading from the store whatever Redis did not bring.
//!
//! # Why nothing is lost, whatever Redis does
//! A change is stored (it gets its position in the document's log) before it is published, and
//! every room knows up to which position its replica holds the log. A follower that sees a gap
//! (a change whose predecessor did not come) waits [`GAP_GRACE`] for it, then reads the log from
//! the store. Every [`POLL_INTERVAL`] the instance also asks the store, in one query, where the
//! log of each open document stands: a change whose message was lost, with nothing after it to
//! show the gap, is read at most [`POLL_INTERVAL`] plus [`GAP_GRACE`] later. After Redis comes back, every open document
//! reads what it missed at once. So Redis only decides how fast changes arrive, never whether.
//!
//! # Bounds
//! Each open document's follower queue holds [`FOLLOWER_QUEUE`] messages, and out-of-order
//! changes [`MOST_WAITING`] (or [`MOST_WAITING_BYTES`]); beyond either, the follower reads from the
//! store instead. The publishing queue holds [`PUBLISH_QUEUE`] messages; beyond it, or while
//! Redis is away, messages are dropped and the others read the store.

mod budget;
pub mod envelope;
pub mod follower;
mod link;

use crate::doc_id::DocId;
use crate::server::redact::doc_tag;
use crate::server::room::{Relay, Room};
use crate::server::storage::DocStore;
use bytes::Bytes;
use envelope::{Envelope, Kind};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a follower waits for a change that arrived out of order to be preceded by the
/// ones before it (published by other instances at nearly the same time) before reading them
/// from the store.
pub const GAP_GRACE: Duration = Duration::from_millis(500);
/// How often an instance reads where the log of each of its open documents stands.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Messages waiting for one document's follower.
pub const FOLLOWER_QUEUE: usize = 1024;
/// Changes one follower keeps while it waits for the ones before them.
pub const MOST_WAITING: usize = 1024;
pub const MOST_WAITING_BYTES: usize = 16 * 1024 * 1024;
/// Messages waiting to be published.
pub const PUBLISH_QUEUE: usize = 8192;
/// Documents reading missed changes from the store at once, per instance.
const CATCH_UPS_AT_ONCE: usize = 4;
/// Documents whose subscription waits to change, at most.
const MOST_DIRTY: usize = 64 * 1024;
/// Documents asked about in one poll query.
const POLL_CHUNK: usize = 1000;

/// Cheap-clone handle on the instance's place in the cluster.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    /// Random at start: tells this instance's messages from the others'.
    instance: u64,
    /// `tandem:{store}:doc:`, where `store` is a hash of the store's identity: instances of
    /// another database sharing the same Redis (a staging copy restored from a dump, say) use
    /// other channels and never hear these.
    channel_prefix: String,
    client: redis::Client,
    store: Arc<dyn DocStore>,
    /// The open documents, each with its follower's queue. Bounded by the open rooms.
    followed: Mutex<HashMap<DocId, Followed>>,
    /// Documents whose subscription the subscriber must bring in line with `followed`.
    dirty: Mutex<HashSet<DocId>>,
    resubscribe: tokio::sync::Notify,
    outbox: mpsc::Sender<Outgoing>,
    connected: AtomicBool,
    /// Bytes waiting to be published, and waiting for the followers.
    outgoing_bytes: budget::Budget,
    incoming_bytes: budget::Budget,
    /// Turns at reading missed changes from the store, shared by all documents.
    catching_up: tokio::sync::Semaphore,
    /// Test hook: publish only every other change.
    drop_half: bool,
    stored_sent: AtomicU64,
}

struct Followed {
    room: Weak<Room>,
    queue: mpsc::Sender<follower::Inbound>,
    /// Set when a message found the queue full: the follower reads the store instead.
    overflowed: Arc<AtomicBool>,
}

impl Followed {
    /// A message could not wait for this document's follower: it reads the store instead.
    fn overflow(&self) {
        self.overflowed.store(true, Ordering::Relaxed);
        ::metrics::counter!(crate::server::metrics::CLUSTER_OVERFLOWS).increment(1);
    }
}

/// A message on its way to Redis.
struct Outgoing {
    channel: String,
    message: Vec<u8>,
    _charge: budget::Charge,
}

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("the Redis URL is not usable: {0}")]
    Url(#[source] redis::RedisError),
    #[error("the store's identity could not be read: {0}")]
    Identity(#[source] crate::server::storage::StoreError),
}

impl Cluster {
    /// Starts the connections to Redis at `url` (they connect, and reconnect, in the
    /// background) and the poll of the store. Needs a tokio runtime.
    pub fn start(
        url: &str,
        store: Arc<dyn DocStore>,
        drop_half: bool,
    ) -> Result<Cluster, ClusterError> {
        use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
        use redis::IntoConnectionInfo;
        // Changes are small messages that should leave at once (no Nagle), and a connection
        // whose other end vanished should be noticed even when idle (keepalives).
        let tcp = TcpSettings::default().set_nodelay(true).set_keepalive(
            TcpKeepalive::new()
                .with_time(Duration::from_secs(10))
                .with_interval(Duration::from_secs(5)),
        );
        let info = url
            .into_connection_info()
            .map_err(ClusterError::Url)?
            .set_tcp_settings(tcp);
        let client = redis::Client::open(info).map_err(ClusterError::Url)?;
        let identity = store.identity().map_err(ClusterError::Identity)?;
        let store_tag = &blake3::hash(identity.as_bytes()).to_hex()[..16];
        let channel_prefix = format!("tandem:{store_tag}:doc:");
        let (outbox, outgoing) = mpsc::channel(PUBLISH_QUEUE);
        let cluster = Cluster {
            inner: Arc::new(Inner {
                instance: rand::random(),
                channel_prefix,
                client,
                store,
                followed: Mutex::new(HashMap::new()),
                dirty: Mutex::new(HashSet::new()),
                resubscribe: tokio::sync::Notify::new(),
                outbox,
                connected: AtomicBool::new(false),
                outgoing_bytes: budget::Budget::default(),
                incoming_bytes: budget::Budget::default(),
                catching_up: tokio::sync::Semaphore::new(CATCH_UPS_AT_ONCE),
                drop_half,
                stored_sent: AtomicU64::new(0),
            }),
        };
        tracing::info!(instance = %format!("{:016x}", cluster.inner.instance), "joining other instances through Redis");
        tokio::spawn(link::subscribe_forever(cluster.clone()));
        tokio::spawn(link::publish_forever(cluster.clone(), outgoing));
        tokio::spawn(follower::poll_forever(Arc::downgrade(&cluster.inner)));
        Ok(cluster)
    }

    /// Whether the subscribing connection to Redis is up.
    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// Starts following a room just loaded: its changes are published, and other instances'
    /// reach it. The follower lives until [`Cluster::unfollow`] or the room is dropped.
    pub fn follow(&self, room: &Arc<Room>) {
        room.follow(Arc::new(self.clone()) as Arc<dyn Relay>);
        let (queue, inbound) = mpsc::channel(FOLLOWER_QUEUE);
        let overflowed = Arc::new(AtomicBool::new(false));
        self.followed().insert(
            room.id.clone(),
            Followed {
                room: Arc::downgrade(room),
                queue,
                overflowed: overflowed.clone(),
            },
        );
        tokio::spawn(follower::run(
            self.clone(),
            Arc::downgrade(room),
            inbound,
            overflowed,
        ));
        self.mark_dirty(room.id.clone());
    }

    /// Stops following a room that closed (unless a newer room of the same document replaced
    /// it meanwhile).
    pub fn unfollow(&self, room: &Arc<Room>) {
        let mut followed = self.followed();
        if followed
            .get(&room.id)
            .is_some_and(|entry| std::ptr::eq(entry.room.as_ptr(), Arc::as_ptr(room)))
        {
            followed.remove(&room.id);
            drop(followed);
            self.mark_dirty(room.id.clone());
        }
    }

    fn mark_dirty(&self, id: DocId) {
        let mut dirty = self.inner.dirty.lock().unwrap_or_else(|p| p.into_inner());
        // While Redis is away nothing drains the set, and reconnecting subscribes to what is
        // open then anyway: beyond the bound, what is left out changes nothing.
        if dirty.len() < MOST_DIRTY {
            dirty.insert(id);
        }
        drop(dirty);
        self.inner.resubscribe.notify_one();
    }

    fn followed(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, Followed>> {
        self.inner
            .followed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every document has a channel of its own, so an instance hears only about the documents
    /// it has open.
    fn channel_of(&self, id: &DocId) -> String {
        format!("{}{id}", self.inner.channel_prefix)
    }

    fn store(&self) -> &Arc<dyn DocStore> {
        &self.inner.store
    }

    /// Hands a message to a document's follower; a full queue makes it read the store.
    fn deliver(&self, id: &DocId, message: follower::Inbound) {
        let followed = self.followed();
        let Some(entry) = followed.get(id) else {
            return;
        };
        match entry.queue.try_send(message) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => entry.overflow(),
            // The follower ended while its room is still open (it panicked): the room would
            // fall behind for good, so it is given up and reloads.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                if let Some(room) = entry.room.upgrade().filter(|r| !r.failed().is_cancelled()) {
                    tracing::error!(doc = %room.tag, "a document's follower ended while it was open");
                    room.fail_behind("this document stopped following other instances");
                }
            }
        }
    }

    /// A message for `id` could not wait: its follower reads the store instead.
    fn overflow(&self, id: &DocId) {
        if let Some(entry) = self.followed().get(id) {
            entry.overflow();
        }
    }

    /// Routes one message from Redis: the channel names the document, the envelope what
    /// happened. Foreign or damaged messages are logged and dropped.
    fn dispatch(&self, channel: &str, bytes: &[u8]) {
        let Some(id) = channel
            .strip_prefix(self.inner.channel_prefix.as_str())
            .and_then(|id| DocId::parse(id).ok())
        else {
            tracing::warn!(
                bytes = bytes.len(),
                "a Redis message on a channel that names no document; dropped"
            );
            return;
        };
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(error) => {
                tracing::warn!(doc = %doc_tag(&id), %error, "a Redis message that is not Tandem's; dropped");
                ::metrics::counter!(crate::server::metrics::CLUSTER_REFUSED).increment(1);
                return;
            }
        };
        if envelope.instance == self.inner.instance {
            return;
        }
        ::metrics::counter!(crate::server::metrics::CLUSTER_RECEIVED).increment(1);
        let Some(charge) = self.inner.incoming_bytes.charge(envelope.payload.len()) else {
            // The followers are far behind: this one reads the store instead.
            self.overflow(&id);
            return;
        };
        let payload = Bytes::copy_from_slice(envelope.payload);
        let message = match envelope.kind {
            Kind::Stored => follower::Inbound::Stored {
                seq: envelope.seq,
                frame: payload,
                _charge: charge,
            },
            Kind::Presence => follower::Inbound::Presence {
                instance: envelope.instance,
                frame: payload,
                _charge: charge,
            },
            Kind::WhoIsHere => follower::Inbound::WhoIsHere,
            Kind::Claims => follower::Inbound::Claims {
                instance: envelope.instance,
                clients: payload,
                _charge: charge,
            },
            Kind::Links => follower::Inbound::Links,
        };
        self.deliver(&id, message);
    }

    /// Tells the other instances that links of `id` were taken back (`change`), so they
    /// close the connections that came by them. The message only says "look again": each
    /// reads what the store now holds.
    pub fn announce(&self, id: &DocId, change: crate::server::room::revocation::LinkChange) {
        tracing::debug!(doc = %doc_tag(id), ?change, "telling the other instances links were taken back");
        self.send(id, Kind::Links, 0, &[]);
    }

    /// Queues a message for Redis; dropped when the queue is full (the others read the
    /// store).
    fn send(&self, id: &DocId, kind: Kind, seq: i64, payload: &[u8]) {
        let Some(charge) = self.inner.outgoing_bytes.charge(payload.len()) else {
            ::metrics::counter!(crate::server::metrics::CLUSTER_UNSENT).increment(1);
            return;
        };
        let message = Envelope {
            kind,
            instance: self.inner.instance,
            seq,
            payload,
        }
        .encode();
        let outgoing = Outgoing {
            channel: self.channel_of(id),
            message,
            _charge: charge,
        };
        if self.inner.outbox.try_send(outgoing).is_err() {
            ::metrics::counter!(crate::server::metrics::CLUSTER_UNSENT).increment(1);
        }
    }
}

impl Relay for Cluster {
    fn stored(&self, room: &Room, seq: i64, frame: &Bytes) {
        if self.inner.drop_half && self.inner.stored_sent.fetch_add(1, Ordering::Relaxed) % 2 == 1 {
            return;
        }
        self.send(&room.id, Kind::Stored, seq, frame);
    }

    fn presence(&self, room: &Room, frame: &Bytes) {
        self.send(&room.id, Kind::Presence, 0, frame);
    }

    fn claims(&self, room: &Room, clients: &[u64]) {
        let payload: Vec<u8> = clients.iter().flat_map(|id| id.to_be_bytes()).collect();
        self.send(&room.id, Kind::Claims, 0, &payload);
    }
}
