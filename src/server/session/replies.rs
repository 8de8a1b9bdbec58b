//! A connection's own replies (answers to its sync steps, confirmations, pongs) on their way
//! from its reader to its writer.
//!
//! Bounded by frames and by bytes, like the channel it replaces, but holding nothing while it
//! is empty: tokio's channel allocates its shared state and a first block of 32 slots when it
//! is made, about 1.5 KiB that an idle connection kept for its whole life. Reader and writer
//! are two halves of one task, so one lock that neither holds across an await does, with a
//! wake-up each way.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::Notify;

pub struct Replies {
    queue: Mutex<Queue>,
    /// A reply was queued: the writer waits on it.
    queued: Notify,
    /// A reply was taken: the reader waits on it while it owes confirmations.
    taken: Notify,
    max_frames: usize,
    max_bytes: usize,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
}

impl Replies {
    /// At most `max_frames` replies (at least one) and `max_bytes` bytes waiting at once.
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Replies {
            queue: Mutex::new(Queue::default()),
            queued: Notify::new(),
            taken: Notify::new(),
            max_frames: max_frames.max(1),
            max_bytes,
        }
    }

    /// Queues `frame`, or says it does not fit (in count or in bytes) and leaves it out.
    pub fn try_push(&self, frame: Bytes) -> bool {
        let mut queue = self.queue.lock();
        if queue.frames.len() >= self.max_frames
            || queue.bytes.saturating_add(frame.len()) > self.max_bytes
        {
            return false;
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        drop(queue);
        self.queued.notify_one();
        true
    }

    /// Waits until a frame of `len` bytes would fit. Only one task may wait at a time (the
    /// reader); what it then pushes may still not fit if something else was queued first.
    pub async fn room_for(&self, len: usize) {
        loop {
            // Asked for before looking, so a reply taken in between still wakes it.
            let taken = self.taken.notified();
            if self.fits(len) {
                return;
            }
            taken.await;
        }
    }

    fn fits(&self, len: usize) -> bool {
        let queue = self.queue.lock();
        queue.frames.len() < self.max_frames && queue.bytes.saturating_add(len) <= self.max_bytes
    }

    /// The oldest reply, if any. The queue's memory goes back once it is empty.
    pub fn try_pop(&self) -> Option<Bytes> {
        let mut queue = self.queue.lock();
        let frame = queue.frames.pop_front()?;
        queue.bytes -= frame.len();
        if queue.frames.is_empty() {
            queue.frames = VecDeque::new();
        }
        drop(queue);
        self.taken.notify_one();
        Some(frame)
    }

    /// Waits for the oldest reply. Only one task may wait at a time (the writer).
    pub async fn pop(&self) -> Bytes {
        loop {
            let queued = self.queued.notified();
            if let Some(frame) = self.try_pop() {
                return frame;
            }
            queued.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![7; len])
    }

    #[test]
    fn replies_beyond_either_bound_are_refused_and_come_out_in_order() {
        let replies = Replies::new(3, 10);
        assert!(replies.try_push(frame(4)));
        assert!(replies.try_push(frame(6)));
        assert!(!replies.try_push(frame(1)), "ten bytes are waiting");
        assert_eq!(replies.try_pop().unwrap().len(), 4);
        assert!(replies.try_push(frame(1)));
        assert!(replies.try_push(frame(1)));
        assert!(!replies.try_push(Bytes::new()), "three frames are waiting");
        let lens: Vec<usize> = std::iter::from_fn(|| replies.try_pop())
            .map(|f| f.len())
            .collect();
        assert_eq!(lens, [6, 1, 1]);
        assert!(replies.try_push(frame(10)), "all room is back once drained");
    }

    #[test]
    fn an_emptied_queue_holds_no_memory() {
        let replies = Replies::new(8, 1 << 20);
        for _ in 0..8 {
            assert!(replies.try_push(frame(1)));
        }
        while replies.try_pop().is_some() {}
        assert_eq!(replies.queue.lock().frames.capacity(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_writer_wakes_for_a_reply_and_the_reader_for_room() {
        let replies = std::sync::Arc::new(Replies::new(1, 100));
        let writer = {
            let replies = replies.clone();
            tokio::spawn(async move { replies.pop().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!writer.is_finished());
        assert!(replies.try_push(frame(5)));
        assert_eq!(writer.await.unwrap().len(), 5);

        assert!(replies.try_push(frame(5)));
        let reader = {
            let replies = replies.clone();
            tokio::spawn(async move { replies.room_for(5).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!reader.is_finished(), "the one slot is taken");
        replies.try_pop().unwrap();
        reader.await.unwrap();
        assert!(replies.try_push(frame(5)));
    }
}
