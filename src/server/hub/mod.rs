//! The set of open documents.
//!
//! A room exists while at least one connection is in it. Joining and leaving change the
//! member count under the hub's lock, so a room is removed in the same critical section that
//! sees its last member go. Loading happens outside the lock, through the entry's once-cell:
//! two first connections to a document share one load, never two.

mod revoke;

pub use revoke::RevokeError;

use super::journal::Journal;
use super::redact::doc_tag;
use super::room::{ConnId, Loaded, Room, RoomPolicy};
use super::storage::{DocStore, StoreError, Version, VersionInfo};
use crate::doc_id::DocId;
use crate::protocol;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;
use yrs::{ReadTxn, Transact};

/// Cheap-clone handle to the open rooms.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Open rooms by document. A std mutex: only map look-ups and counter updates happen under
    /// it, never an `.await`.
    rooms: Mutex<HashMap<DocId, Entry>>,
    store: Arc<dyn DocStore>,
    journal: Journal,
    policy: RoomPolicy,
    /// Capacity of each room's broadcast ring.
    fanout_capacity: usize,
    /// Source of connection ids, unique for the life of the process.
    next_conn: AtomicU64,
    /// The other instances sharing the store, with `--redis-url`.
    cluster: Option<super::cluster::Cluster>,
    /// Moved on whenever links are taken back (see [`revoke`]).
    links_epoch: AtomicU64,
}

struct Entry {
    slot: Arc<Slot>,
    members: usize,
}

/// A room that is being loaded or is loaded.
#[derive(Default)]
struct Slot {
    room: OnceCell<Arc<Room>>,
}

/// Why a document could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading the document failed: {0}")]
    Store(#[from] StoreError),
    #[error("the stored document is damaged: {0}")]
    Corrupt(String),
}

/// A connection's place in a room. Dropping it leaves the room, which unloads the room when
/// it was the last member: cleanup cannot be forgotten on any exit path.
pub struct Membership {
    /// Held only for its `Drop`, which gives the place back.
    _seat: Seat,
    room: Arc<Room>,
    pub conn: ConnId,
}

/// A counted place in a slot, given back on drop (also when loading fails).
struct Seat {
    hub: Hub,
    id: DocId,
    slot: Arc<Slot>,
}

/// A document read for display without opening a room.
pub struct Snapshot {
    pub title: String,
    pub content: String,
    pub update: Vec<u8>,
}

impl Hub {
    pub fn new(
        store: Arc<dyn DocStore>,
        journal: Journal,
        policy: RoomPolicy,
        fanout_capacity: usize,
        cluster: Option<super::cluster::Cluster>,
    ) -> Self {
        Hub {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                store,
                journal,
                policy,
                fanout_capacity,
                next_conn: AtomicU64::new(1),
                cluster,
                links_epoch: AtomicU64::new(0),
            }),
        }
    }

    pub fn journal(&self) -> &Journal {
        &self.inner.journal
    }

    /// Enters the room of `id`, loading it if this is its first connection.
    pub async fn join(&self, id: DocId) -> Result<Membership, LoadError> {
        let slot = {
            let mut rooms = self.rooms();
            let entry = rooms.entry(id.clone()).or_insert_with(|| Entry {
                slot: Arc::default(),
                members: 0,
            });
            // A room whose storage failed is not reused: the next connection starts afresh
            // from what the store holds.
            if let Some(failed) = entry
                .slot
                .room
                .get()
                .filter(|room| room.failed().is_cancelled())
            {
                if let Some(cluster) = &self.inner.cluster {
                    cluster.unfollow(failed);
                }
                *entry = Entry {
                    slot: Arc::default(),
                    members: 0,
                };
            }
            entry.members += 1;
            entry.slot.clone()
        };
        let seat = Seat {
            hub: self.clone(),
            id: id.clone(),
            slot,
        };
        let room = seat
            .slot
            .room
            .get_or_try_init(|| self.load(id.clone()))
            .await?
            .clone();
        Ok(Membership {
            _seat: seat,
            room,
            conn: self.inner.next_conn.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// The open room of `id`, if any connection is in it.
    pub fn get(&self, id: &DocId) -> Option<Arc<Room>> {
        self.rooms()
            .get(id)
            .and_then(|entry| entry.slot.room.get().cloned())
    }

    /// Presence entries across the rooms in memory.
    pub fn presence_count(&self) -> usize {
        let rooms: Vec<Arc<Room>> = self
            .rooms()
            .values()
            .filter_map(|entry| entry.slot.room.get().cloned())
            .collect();
        rooms.iter().map(|room| room.presence_count()).sum()
    }

    /// Whether the instance is subscribed to Redis; `None` without `--redis-url`.
    pub fn cluster_connected(&self) -> Option<bool> {
        self.inner
            .cluster
            .as_ref()
            .map(|cluster| cluster.connected())
    }

    /// How many rooms are in memory.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    /// The document's title, text and state, from memory when it is open and from the store
    /// otherwise. Never opens a room.
    pub async fn snapshot(&self, id: &DocId) -> Result<Snapshot, LoadError> {
        if let Some(room) = self.get(id).filter(|room| !room.failed().is_cancelled()) {
            // A room that fails meanwhile is read from the store instead.
            if let Ok((title, content, update)) = room.settled_snapshot().await {
                return Ok(Snapshot {
                    title,
                    content,
                    update,
                });
            }
        }
        let loaded = self.read(id.clone()).await?;
        let (title, content) = protocol::texts_of(&loaded.doc);
        let update = loaded
            .doc
            .transact()
            .encode_diff_v1(&yrs::StateVector::default());
        Ok(Snapshot {
            title,
            content,
            update,
        })
    }

    /// The document's title and text, from memory when it is open and from the store
    /// otherwise, without encoding its state (for downloads). Never opens a room.
    pub async fn texts(&self, id: &DocId) -> Result<(String, String), LoadError> {
        if let Some(room) = self.get(id).filter(|room| !room.failed().is_cancelled()) {
            if let Ok(texts) = room.settled_texts().await {
                return Ok(texts);
            }
        }
        let loaded = self.read(id.clone()).await?;
        Ok(protocol::texts_of(&loaded.doc))
    }

    /// The versions kept of a document for its History, newest first (on a blocking thread).
    pub async fn versions(&self, id: &DocId) -> Result<Vec<VersionInfo>, StoreError> {
        let (store, id) = (self.inner.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.versions(&id))
            .await
            .unwrap_or(Err(StoreError::Panicked))
    }

    /// One version of a document, if it is kept (on a blocking thread).
    pub async fn version(&self, id: &DocId, version: i64) -> Result<Option<Version>, StoreError> {
        let (store, id) = (self.inner.store.clone(), id.clone());
        tokio::task::spawn_blocking(move || store.version(&id, version))
            .await
            .unwrap_or(Err(StoreError::Panicked))
    }

    async fn load(&self, id: DocId) -> Result<Arc<Room>, LoadError> {
        let loaded = self.read(id.clone()).await.inspect_err(|error| {
            tracing::error!(doc = %doc_tag(&id), %error, "document could not be loaded; refusing its room");
        })?;
        tracing::debug!(doc = %doc_tag(&id), tail = loaded.tail_updates, "room opened");
        let room = Arc::new(Room::new(
            id,
            loaded,
            self.inner.journal.clone(),
            self.inner.policy,
            self.inner.fanout_capacity,
        ));
        tokio::spawn(sweep_presence(Arc::downgrade(&room)));
        tokio::spawn(super::room::send_presence_batches(
            Arc::downgrade(&room),
            room.presence_due(),
        ));
        if let Some(cluster) = &self.inner.cluster {
            cluster.follow(&room);
        }
        Ok(room)
    }

    /// Reads a document from the store and rebuilds its replica, on a blocking thread.
    async fn read(&self, id: DocId) -> Result<Loaded, LoadError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || {
            let Some(stored) = store.load(&id)? else {
                return Ok(Loaded {
                    doc: protocol::new_doc(),
                    snapshot_bytes: 0,
                    last_seq: 0,
                    tail_updates: 0,
                    tail_bytes: 0,
                });
            };
            let tail_bytes = stored.updates.iter().map(Vec::len).sum();
            let tail_updates = stored.updates.len();
            let doc = stored.replica().map_err(LoadError::Corrupt)?;
            Ok(Loaded {
                doc,
                snapshot_bytes: stored.snapshot.as_ref().map_or(0, Vec::len),
                last_seq: stored.last_seq,
                tail_updates,
                tail_bytes,
            })
        })
        .await
        .unwrap_or_else(|join_error| {
            Err(LoadError::Corrupt(format!(
                "loading panicked: {join_error}"
            )))
        })
    }

    fn leave(&self, id: &DocId, slot: &Arc<Slot>) {
        let unloaded = {
            let mut rooms = self.rooms();
            match rooms.get_mut(id) {
                Some(entry) if Arc::ptr_eq(&entry.slot, slot) => {
                    entry.members -= 1;
                    if entry.members == 0 {
                        rooms
                            .remove(id)
                            .and_then(|entry| entry.slot.room.get().cloned())
                    } else {
                        None
                    }
                }
                _ => None,
            }
        };
        if let Some(room) = unloaded {
            tracing::debug!(doc = %doc_tag(id), "room closed");
            if let Some(cluster) = &self.inner.cluster {
                cluster.unfollow(&room);
            }
            room.unload();
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, Entry>> {
        self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Expires silent presence and overdue pending updates in a room for as long as the room is
/// in memory.
pub async fn sweep_presence(room: std::sync::Weak<Room>) {
    let mut every = tokio::time::interval(super::room::PRESENCE_SWEEP);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(room) = room.upgrade() else { break };
        room.sweep();
    }
}

impl Membership {
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Deref for Membership {
    type Target = Room;
    fn deref(&self) -> &Room {
        &self.room
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.hub.leave(&self.id, &self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::storage::sqlite::SqliteStore;

    fn hub(dir: &std::path::Path) -> Hub {
        let store: Arc<dyn DocStore> = Arc::new(SqliteStore::open(dir, 0).unwrap());
        let journal = Journal::start(store.clone(), 64);
        let policy = RoomPolicy {
            compact_after_updates: 100,
            compact_after_bytes: 1 << 20,
            max_doc_bytes: usize::MAX,
            integration_time_limit: crate::server::room::INTEGRATION_TIME_LIMIT,
            presence: Default::default(),
        };
        Hub::new(store, journal, policy, 16, None)
    }

    #[tokio::test]
    async fn a_room_lives_exactly_as_long_as_its_members() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let id = DocId::parse("BBBBBBBBBBBBBBBBBBBBBB").unwrap();
        let a = hub.join(id.clone()).await.unwrap();
        let b = hub.join(id.clone()).await.unwrap();
        assert!(Arc::ptr_eq(a.room(), b.room()), "two joins share one room");
        assert_eq!(hub.room_count(), 1);
        drop(a);
        assert!(hub.get(&id).is_some());
        drop(b);
        assert!(hub.get(&id).is_none());
        assert_eq!(hub.room_count(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_first_joins_load_one_room() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub(dir.path());
        let id = DocId::parse("CCCCCCCCCCCCCCCCCCCCCC").unwrap();
        let joins: Vec<_> = (0..16)
            .map(|_| {
                let (hub, id) = (hub.clone(), id.clone());
                tokio::spawn(async move { hub.join(id).await.unwrap() })
            })
            .collect();
        let mut members = Vec::new();
        for join in joins {
            members.push(join.await.unwrap());
        }
        assert!(members
            .iter()
            .all(|m| Arc::ptr_eq(m.room(), members[0].room())));
        assert_eq!(hub.room_count(), 1);
    }
}
