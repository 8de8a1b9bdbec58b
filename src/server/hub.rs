//! The set of open documents.
//!
//! A room exists while at least one connection is in it. Joining and leaving change the
//! member count under the hub's lock, so two first connections to a document can never create
//! it twice, and a room is removed in the same critical section that sees its last member go.

use super::room::{ConnId, Room};
use crate::doc_id::DocId;
use crate::protocol;
use std::collections::HashMap;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Cheap-clone handle to the open rooms.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Open rooms by document. A std mutex: only map look-ups and counter updates happen under
    /// it, never an `.await`.
    rooms: Mutex<HashMap<DocId, Entry>>,
    /// Source of connection ids, unique for the life of the process.
    next_conn: AtomicU64,
    /// Capacity of each room's broadcast ring.
    fanout_capacity: usize,
}

struct Entry {
    room: Arc<Room>,
    members: usize,
}

/// A connection's place in a room. Dropping it leaves the room, which unloads the room when
/// it was the last member: cleanup cannot be forgotten on any exit path.
pub struct Membership {
    hub: Hub,
    room: Arc<Room>,
    pub conn: ConnId,
}

impl Hub {
    pub fn new(fanout_capacity: usize) -> Self {
        Hub {
            inner: Arc::new(Inner {
                rooms: Mutex::new(HashMap::new()),
                next_conn: AtomicU64::new(1),
                fanout_capacity,
            }),
        }
    }

    /// Enters the room of `id`, opening it if this is its first connection.
    pub fn join(&self, id: DocId) -> Membership {
        let conn = self.inner.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut rooms = self.rooms();
        let entry = rooms.entry(id.clone()).or_insert_with(|| {
            tracing::debug!(doc = %id, "room opened");
            Entry {
                room: Arc::new(Room::new(id, protocol::new_doc(), self.inner.fanout_capacity)),
                members: 0,
            }
        });
        entry.members += 1;
        Membership {
            hub: self.clone(),
            room: entry.room.clone(),
            conn,
        }
    }

    /// The open room of `id`, if any connection is in it.
    pub fn get(&self, id: &DocId) -> Option<Arc<Room>> {
        self.rooms().get(id).map(|entry| entry.room.clone())
    }

    /// How many rooms are in memory.
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }

    fn leave(&self, room: &Arc<Room>) {
        let mut rooms = self.rooms();
        if let Some(entry) = rooms.get_mut(&room.id) {
            if Arc::ptr_eq(&entry.room, room) {
                entry.members -= 1;
                if entry.members == 0 {
                    rooms.remove(&room.id);
                    tracing::debug!(doc = %room.id, "room closed");
                }
            }
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<DocId, Entry>> {
        self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner())
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

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.leave(&self.room);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_lives_exactly_as_long_as_its_members() {
        let hub = Hub::new(8);
        let id = DocId::parse("BBBBBBBBBBBBBBBBBBBBBB").unwrap();
        let a = hub.join(id.clone());
        let b = hub.join(id.clone());
        assert!(Arc::ptr_eq(a.room(), b.room()), "two joins share one room");
        assert_eq!(hub.room_count(), 1);
        drop(a);
        assert!(hub.get(&id).is_some());
        drop(b);
        assert!(hub.get(&id).is_none());
        assert_eq!(hub.room_count(), 0);
    }

    #[test]
    fn concurrent_first_joins_create_one_room() {
        let hub = Hub::new(8);
        let id = DocId::parse("CCCCCCCCCCCCCCCCCCCCCC").unwrap();
        let members: Vec<Membership> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8).map(|_| s.spawn(|| hub.join(id.clone()))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(members.iter().all(|m| Arc::ptr_eq(m.room(), members[0].room())));
        assert_eq!(hub.room_count(), 1);
    }
}
