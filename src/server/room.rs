//! One open document: its replica, its awareness and its fan-out.
//!
//! Protocol handling here is sans-IO: [`Room::receive`] takes the bytes of one frame from one
//! connection and returns the replies for that connection, publishing whatever the others must
//! see on the room's broadcast channel. Sessions own the sockets; rooms never await.

use super::error::CloseReason;
use crate::doc_id::DocId;
use crate::protocol;
use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Mutex;
use tokio::sync::broadcast;
use yrs::encoding::read::Cursor;
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, ReadTxn, StateVector, Transact, Update};

/// Identifies a connection within the process, so a broadcast can skip its own sender.
pub type ConnId = u64;

/// A frame published to every connection of a room except `from`.
#[derive(Clone, Debug)]
pub struct Broadcast {
    pub from: ConnId,
    pub frame: Bytes,
}

/// What a connection introduced into the room, so that leaving can undo it.
#[derive(Debug, Default)]
pub struct Presence {
    /// Awareness client ids this connection has set a state for.
    pub awareness_clients: HashSet<ClientID>,
}

pub struct Room {
    pub id: DocId,
    /// The replica and the presence states. A std mutex: every operation on it is short and
    /// synchronous, and it is never held across an `.await`.
    state: Mutex<Awareness>,
    /// Fan-out of encoded frames. A bounded ring: a receiver that falls more than its
    /// capacity behind learns it has lagged and is closed, rather than holding memory.
    updates: broadcast::Sender<Broadcast>,
}

impl Room {
    pub fn new(id: DocId, doc: yrs::Doc, fanout_capacity: usize) -> Self {
        let (updates, _) = broadcast::channel(fanout_capacity.max(1));
        Room {
            id,
            state: Mutex::new(Awareness::new(doc)),
            updates,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Broadcast> {
        self.updates.subscribe()
    }

    /// The frames a new connection receives first: the room's state vector (sync step 1) and,
    /// when anyone is present, everyone's awareness state.
    pub fn greeting(&self) -> Vec<Bytes> {
        let state = self.lock();
        let sv = state.doc().transact().state_vector();
        let mut frames = vec![encode(Message::Sync(SyncMessage::SyncStep1(sv)))];
        if let Ok(update) = state.update() {
            if !update.clients.is_empty() {
                frames.push(encode(Message::Awareness(update)));
            }
        }
        frames
    }

    /// Handles one binary frame from connection `from`. Returns the replies for that
    /// connection; changes for the others are published on the broadcast channel.
    pub fn receive(
        &self,
        from: ConnId,
        presence: &mut Presence,
        frame: &Bytes,
    ) -> Result<Vec<Bytes>, CloseReason> {
        let mut replies = Vec::new();
        let mut decoder = DecoderV1::new(Cursor::new(frame));
        let mut count = 0;
        for message in MessageReader::new(&mut decoder) {
            let message = message.map_err(|e| CloseReason::invalid(format!("undecodable message: {e}")))?;
            count += 1;
            match message {
                Message::Sync(SyncMessage::SyncStep1(sv)) => replies.push(self.sync_step2_for(&sv)),
                Message::Sync(SyncMessage::SyncStep2(update))
                | Message::Sync(SyncMessage::Update(update)) => self.apply_update(from, &update)?,
                Message::Awareness(update) => {
                    let mut state = self.lock();
                    for (client, entry) in &update.clients {
                        if &*entry.json == "null" {
                            presence.awareness_clients.remove(client);
                        } else {
                            presence.awareness_clients.insert(*client);
                        }
                    }
                    let changed = state
                        .apply_update_summary(update)
                        .map_err(|e| CloseReason::invalid(format!("bad awareness update: {e}")))?;
                    drop(state);
                    if changed.is_some() {
                        self.publish(from, frame.clone());
                    }
                }
                Message::AwarenessQuery => {
                    let state = self.lock();
                    if let Ok(update) = state.update() {
                        replies.push(encode(Message::Awareness(update)));
                    }
                }
                // Authentication is not part of Tandem's protocol: the link is the key.
                Message::Auth(_) => {}
                Message::Custom(tag, _) => {
                    return Err(CloseReason::unsupported(format!("unknown message type {tag}")))
                }
            }
        }
        if count == 0 {
            return Err(CloseReason::invalid("empty or truncated message".into()));
        }
        Ok(replies)
    }

    /// Removes the awareness states a departing connection introduced and tells the others.
    pub fn leave(&self, from: ConnId, presence: &Presence) {
        if presence.awareness_clients.is_empty() {
            return;
        }
        let mut state = self.lock();
        for client in &presence.awareness_clients {
            state.remove_state(*client);
        }
        let removal = state.update_with_clients(presence.awareness_clients.iter().copied());
        drop(state);
        if let Ok(removal) = removal {
            self.publish(from, encode(Message::Awareness(removal)));
        }
    }

    /// The document's title and text, for server-side rendering.
    pub fn texts(&self) -> (String, String) {
        protocol::read_texts(&self.lock().doc().transact())
    }

    /// The whole document as one update, for a page to start its replica from.
    pub fn full_update(&self) -> Vec<u8> {
        self.lock()
            .doc()
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn sync_step2_for(&self, sv: &StateVector) -> Bytes {
        let update = self.lock().doc().transact().encode_state_as_update_v1(sv);
        encode(Message::Sync(SyncMessage::SyncStep2(update)))
    }

    /// Applies an update and broadcasts what it changed. What is broadcast is the
    /// transaction's own delta, not the bytes received: a reconnecting client's sync step 2
    /// repeats much that the room already has, and the others need none of it.
    fn apply_update(&self, from: ConnId, bytes: &[u8]) -> Result<(), CloseReason> {
        let update =
            Update::decode_v1(bytes).map_err(|e| CloseReason::invalid(format!("undecodable update: {e}")))?;
        let state = self.lock();
        // yrs reports malformed updates as errors, but a panic deep inside integration must
        // still not take the process down.
        let delta = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut txn = state.doc().transact_mut();
            txn.apply_update(update)?;
            let changed = txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
            Ok::<_, yrs::error::UpdateError>(changed.then(|| txn.encode_update_v1()))
        }));
        drop(state);
        match delta {
            Ok(Ok(Some(delta))) => {
                self.publish(from, encode(Message::Sync(SyncMessage::Update(delta))));
                Ok(())
            }
            Ok(Ok(None)) => Ok(()),
            Ok(Err(e)) => Err(CloseReason::invalid(format!("update does not apply: {e}"))),
            Err(_) => Err(CloseReason::invalid("update does not apply: integration failed".into())),
        }
    }

    fn publish(&self, from: ConnId, frame: Bytes) {
        // An error only means nobody is subscribed, which is fine.
        let _ = self.updates.send(Broadcast { from, frame });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Awareness> {
        // A poisoned lock means a panic while holding it; the replica itself is still usable
        // (updates are applied transactionally), so carry on rather than cascade the panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub fn encode(message: Message) -> Bytes {
    Bytes::from(message.encode_v1())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text};

    fn room() -> Room {
        Room::new(DocId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap(), protocol::new_doc(), 16)
    }

    fn update_frame(text: &str) -> Bytes {
        let doc = protocol::new_doc();
        let content = doc.get_or_insert_text(protocol::CONTENT);
        let mut txn = doc.transact_mut();
        content.insert(&mut txn, 0, text);
        encode(Message::Sync(SyncMessage::Update(txn.encode_update_v1())))
    }

    #[test]
    fn sync_step1_is_answered_with_the_missing_state() {
        let room = room();
        let mut rx = room.subscribe();
        room.receive(1, &mut Presence::default(), &update_frame("hello")).unwrap();
        assert_eq!(rx.try_recv().unwrap().from, 1);
        assert_eq!(room.texts().1, "hello");

        let ask = encode(Message::Sync(SyncMessage::SyncStep1(StateVector::default())));
        let replies = room.receive(2, &mut Presence::default(), &ask).unwrap();
        assert_eq!(replies.len(), 1);
        let Message::Sync(SyncMessage::SyncStep2(update)) = Message::decode_v1(&replies[0]).unwrap() else {
            panic!("expected sync step 2");
        };
        let doc = protocol::new_doc();
        doc.transact_mut().apply_update(Update::decode_v1(&update).unwrap()).unwrap();
        let text = doc.get_or_insert_text(protocol::CONTENT);
        assert_eq!(text.get_string(&doc.transact()), "hello");
    }

    #[test]
    fn a_repeated_update_is_not_broadcast_again() {
        let room = room();
        let mut rx = room.subscribe();
        let frame = update_frame("once");
        room.receive(1, &mut Presence::default(), &frame).unwrap();
        room.receive(1, &mut Presence::default(), &frame).unwrap();
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn an_update_naming_a_non_type_parent_does_not_apply() {
        let room = room();
        // Client 1 writes "abc"; then client 2 claims the string item (1, 0) as its parent.
        let doc = yrs::Doc::with_client_id(1);
        let text = doc.get_or_insert_text(protocol::CONTENT);
        let update = {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "abc");
            txn.encode_update_v1()
        };
        let frame = encode(Message::Sync(SyncMessage::Update(update)));
        room.receive(1, &mut Presence::default(), &frame).unwrap();
        let bad = encode(Message::Sync(SyncMessage::Update(vec![1, 1, 2, 0, 0x04, 0, 1, 0, 1, b'x', 0])));
        let reason = room.receive(2, &mut Presence::default(), &bad).unwrap_err();
        assert_eq!(reason.code, 1007);
        assert!(reason.reason.contains("does not apply"), "{reason:?}");
        assert_eq!(room.texts().1, "abc");
    }

    #[test]
    fn garbage_is_rejected_and_leaves_the_document_alone() {
        let room = room();
        room.receive(1, &mut Presence::default(), &update_frame("kept")).unwrap();
        for bad in [&b""[..], &[0, 2][..], &[0, 2, 200, 1, 2][..], &[0xff, 0xff, 0xff][..], &[0, 2, 3, 1, 2, 3][..]] {
            assert!(room.receive(2, &mut Presence::default(), &Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(room.texts().1, "kept");
    }
}
