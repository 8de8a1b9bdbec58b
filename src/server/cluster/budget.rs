//! Bytes waiting in the cluster's queues, counted against one budget per direction: the
//! queues are bounded in messages, and a message may be megabytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes that may wait in one direction (to be published, or for the followers), all
/// documents together.
pub const QUEUED_BYTES: usize = 64 * 1024 * 1024;

/// What waits, counted.
#[derive(Debug, Default, Clone)]
pub struct Budget {
    held: Arc<AtomicUsize>,
}

/// A message's bytes, counted while it waits and given back when it is dropped.
#[derive(Debug)]
pub struct Charge {
    bytes: usize,
    held: Arc<AtomicUsize>,
}

impl Budget {
    /// Counts `bytes` if they fit within [`QUEUED_BYTES`].
    pub fn charge(&self, bytes: usize) -> Option<Charge> {
        let before = self.held.fetch_add(bytes, Ordering::Relaxed);
        if before + bytes > QUEUED_BYTES {
            self.held.fetch_sub(bytes, Ordering::Relaxed);
            return None;
        }
        Some(Charge {
            bytes,
            held: self.held.clone(),
        })
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fit_the_budget_and_are_given_back() {
        let budget = Budget::default();
        let big = budget.charge(QUEUED_BYTES - 10).unwrap();
        assert!(budget.charge(11).is_none());
        let small = budget.charge(10).unwrap();
        assert_eq!(budget.held(), QUEUED_BYTES);
        drop(big);
        drop(small);
        assert_eq!(budget.held(), 0);
        assert!(budget.charge(QUEUED_BYTES + 1).is_none());
        assert_eq!(budget.held(), 0);
    }
}
