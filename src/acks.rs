//! Which of this page's changes the server has confirmed durable: the page says "Saving…"
//! until every frame it sent with changes has been confirmed (one message of type 100 per
//! frame, in order), and "Saved" then. Plain counting, so native tests reach it; the session
//! carries it out.

/// The frames with changes sent on the current connection and not yet confirmed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Acks {
    waiting: u32,
}

impl Acks {
    /// A frame with changes went out.
    pub fn sent(&mut self) {
        self.waiting = self.waiting.saturating_add(1);
    }

    /// The server confirmed one frame. True when that was the last one waiting, so everything
    /// sent is now durable. A confirmation nothing waits for (a server out of step, or a
    /// hostile one) changes nothing and says nothing.
    pub fn confirmed(&mut self) -> bool {
        match self.waiting {
            0 => false,
            n => {
                self.waiting = n - 1;
                self.waiting == 0
            }
        }
    }

    /// The connection is gone: what it did not confirm is still in the replica and the next
    /// handshake sends it again, to be confirmed there.
    pub fn lost(&mut self) {
        self.waiting = 0;
    }

    /// Frames still waiting.
    pub fn waiting(&self) -> u32 {
        self.waiting
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_only_once_every_frame_is_confirmed() {
        let mut acks = Acks::default();
        acks.sent();
        acks.sent();
        acks.sent();
        assert!(!acks.confirmed());
        assert!(!acks.confirmed());
        assert!(acks.confirmed());
        assert_eq!(acks.waiting(), 0);
    }

    #[test]
    fn a_confirmation_nothing_waits_for_says_nothing() {
        let mut acks = Acks::default();
        assert!(!acks.confirmed());
        acks.sent();
        assert!(acks.confirmed());
        // A duplicate after the last one.
        assert!(!acks.confirmed());
        assert_eq!(acks.waiting(), 0);
        // And it does not count against the next frame.
        acks.sent();
        assert_eq!(acks.waiting(), 1);
    }

    #[test]
    fn a_lost_connection_starts_the_count_again() {
        let mut acks = Acks::default();
        acks.sent();
        acks.sent();
        acks.lost();
        assert_eq!(acks.waiting(), 0);
        // A late confirmation from the old connection cannot claim the new one's frame.
        acks.sent();
        assert!(acks.confirmed());
    }

    #[test]
    fn the_count_does_not_overflow() {
        let mut acks = Acks {
            waiting: u32::MAX - 1,
        };
        acks.sent();
        acks.sent();
        assert_eq!(acks.waiting(), u32::MAX);
    }
}
