//! The writing half of a connection: frames that are ready together leave together.
//!
//! A busy room queues many frames for each reader between two wake-ups of its writer. Sent one
//! by one they cost a write system call, a timer and a metrics update each; a [`Batch`] takes
//! whatever is ready (up to [`BATCH_FRAMES`] frames or [`BATCH_BYTES`] bytes), formats it
//! into the socket's write buffer and flushes once.
//!
//! A large frame (the whole document, answered to someone joining) goes out as fragments of
//! [`FRAGMENT_BYTES`], RFC 6455 continuation frames that every WebSocket client puts back
//! together. The socket's write buffer then holds at most a fragment beyond its target
//! ([`WRITE_BUFFER_BYTES`]) instead of a copy of the document, which it would also keep
//! allocated for the rest of the connection's life: fifty people opening a large document at
//! once share the one encoded answer rather than each holding their own.

use super::super::metrics;
use super::super::room::{Broadcast, ConnId};
use super::super::socket::{Error as WsError, Message as WsMessage};
use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use std::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;

/// Most frames written together.
pub const BATCH_FRAMES: usize = 256;
/// Most bytes gathered for one write (a larger frame goes alone).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Frames larger than this are sent in fragments of this size.
pub const FRAGMENT_BYTES: usize = 64 * 1024;
/// The socket's write buffer fills to this before it is written out; a flush writes the rest.
pub const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Frames ready to be written together, and what they count for in the metrics.
#[derive(Default)]
pub struct Batch {
    frames: Vec<Bytes>,
    bytes: usize,
    replies: (u64, u64),
    broadcasts: (u64, u64),
    /// When the oldest broadcast change in the batch was published.
    oldest_change: Option<Instant>,
}

impl Batch {
    /// A frame for this connection alone (an answer, a confirmation).
    pub fn push_reply(&mut self, frame: Bytes) {
        self.replies.0 += 1;
        self.replies.1 += frame.len() as u64;
        self.push(frame);
    }

    /// The frames of one entry of the room's ring that are for connection `conn` (all but its
    /// own).
    pub fn push_entry(&mut self, entry: &Broadcast, conn: ConnId) {
        for frame in entry.for_conn(conn) {
            self.push_broadcast(frame.clone(), entry.change_at);
        }
    }

    /// A frame broadcast by the room; `published` when it carries a change, for the fan-out
    /// delay histogram.
    fn push_broadcast(&mut self, frame: Bytes, published: Option<Instant>) {
        self.broadcasts.0 += 1;
        self.broadcasts.1 += frame.len() as u64;
        if self.oldest_change.is_none() {
            self.oldest_change = published;
        }
        self.push(frame);
    }

    fn push(&mut self, frame: Bytes) {
        self.bytes += frame.len();
        self.frames.push(frame);
    }

    /// Holds a frame the room broadcast.
    pub fn has_broadcast(&self) -> bool {
        self.broadcasts.0 > 0
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// No more frames should join this batch.
    pub fn is_full(&self) -> bool {
        self.frames.len() >= BATCH_FRAMES || self.bytes >= BATCH_BYTES
    }

    /// Writes every frame, large ones in fragments, and flushes once. The caller bounds the
    /// time; on success the batch is counted in the metrics.
    pub async fn write<S>(self, sink: &mut S) -> Result<(), WsError>
    where
        S: Sink<WsMessage, Error = WsError> + Unpin,
    {
        for frame in &self.frames {
            if frame.len() <= FRAGMENT_BYTES {
                sink.feed(WsMessage::Binary(frame.clone())).await?;
            } else {
                for fragment in fragments(frame) {
                    sink.feed(WsMessage::Frame(fragment)).await?;
                }
            }
        }
        sink.flush().await?;
        if self.replies.0 > 0 {
            metrics::sent_many(metrics::Path::Reply, self.replies.0, self.replies.1);
        }
        if self.broadcasts.0 > 0 {
            metrics::sent_many(
                metrics::Path::Broadcast,
                self.broadcasts.0,
                self.broadcasts.1,
            );
        }
        if let Some(at) = self.oldest_change {
            metrics::fanout_delay(at.elapsed());
        }
        Ok(())
    }
}

/// One binary message as a first frame and continuations of [`FRAGMENT_BYTES`] each, sharing
/// `frame`'s bytes.
fn fragments(frame: &Bytes) -> impl Iterator<Item = Frame> + '_ {
    let count = frame.len().div_ceil(FRAGMENT_BYTES);
    (0..count).map(move |i| {
        let start = i * FRAGMENT_BYTES;
        let end = (start + FRAGMENT_BYTES).min(frame.len());
        let opcode = if i == 0 {
            OpCode::Data(Data::Binary)
        } else {
            OpCode::Data(Data::Continue)
        };
        Frame::message(frame.slice(start..end), opcode, i + 1 == count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_frame_is_cut_into_continuations_that_add_up_to_it() {
        let frame = Bytes::from(
            (0..(3 * FRAGMENT_BYTES + 17))
                .map(|i| i as u8)
                .collect::<Vec<_>>(),
        );
        let parts: Vec<Frame> = fragments(&frame).collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0].header().opcode, OpCode::Data(Data::Binary));
        assert!(parts[1..]
            .iter()
            .all(|p| p.header().opcode == OpCode::Data(Data::Continue)));
        assert!(parts[..3].iter().all(|p| !p.header().is_final));
        assert!(parts[3].header().is_final);
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.payload().to_vec()).collect();
        assert_eq!(joined, frame);
    }

    #[test]
    fn a_batch_is_full_by_count_or_by_bytes() {
        let mut batch = Batch::default();
        for _ in 0..BATCH_FRAMES - 1 {
            batch.push_reply(Bytes::from_static(b"x"));
        }
        assert!(!batch.is_full());
        batch.push_broadcast(Bytes::from_static(b"y"), None);
        assert!(batch.is_full());
        let mut batch = Batch::default();
        batch.push_reply(Bytes::from(vec![0; BATCH_BYTES]));
        assert!(batch.is_full());
    }
}
