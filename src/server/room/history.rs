//! When a room keeps a version of its document for the History.
//!
//! A version is cut after [`VERSION_EVERY`] of activity (at the first change that long after
//! the previous version) and when the last editor leaves, if anything changed since the last
//! one. It carries the names of the people who wrote since. Keeping it is handed to the
//! journal's background thread; the room only copies the two texts.

use super::{ConnId, Room, State};
use crate::protocol;
use crate::server::storage::versions::tidy_authors;
use crate::server::storage::NewVersion;
use std::time::Duration;

/// A version is kept at most this often while people write.
pub const VERSION_EVERY: Duration = Duration::from_secs(5 * 60);

/// What the room knows about its next version.
pub(super) struct VersionClock {
    /// When the last version was cut (or the room opened).
    since: tokio::time::Instant,
    /// Something changed since then.
    changed: bool,
    /// Who wrote since then.
    writers: Vec<String>,
    /// The connections whose names are in `writers` already (at most [`MAX_WRITING_CONNECTIONS`]),
    /// so that a name is read off presence once per connection, not once per keystroke.
    counted: Vec<ConnId>,
}

/// Most connections remembered per version as having written.
const MAX_WRITING_CONNECTIONS: usize = 64;

impl Default for VersionClock {
    fn default() -> Self {
        VersionClock {
            since: tokio::time::Instant::now(),
            changed: false,
            writers: Vec::new(),
            counted: Vec::new(),
        }
    }
}

impl Room {
    /// Notes that `from` changed the document; cuts a version when one is due.
    pub(super) fn note_change(&self, state: &mut State, from: ConnId) {
        state.versions.changed = true;
        if !state.versions.counted.contains(&from)
            && state.versions.counted.len() < MAX_WRITING_CONNECTIONS
        {
            let names = state.presence.names_of(from);
            let clock = &mut state.versions;
            // One that shows no name yet is asked again next time (that costs nothing).
            if !names.is_empty() {
                clock.counted.push(from);
            }
            clock.writers =
                tidy_authors(std::mem::take(&mut clock.writers).into_iter().chain(names));
        }
        let clock = &mut state.versions;
        if clock.since.elapsed() >= VERSION_EVERY {
            self.cut_version(state);
        }
    }

    /// Keeps a version of the document as it is now, if it changed since the last one.
    pub(super) fn cut_version(&self, state: &mut State) {
        if !state.versions.changed || state.failure.is_some() {
            return;
        }
        let (title, content) = protocol::texts_of(&state.doc);
        let version = NewVersion {
            doc: self.id.clone(),
            title,
            content,
            authors: std::mem::take(&mut state.versions.writers),
        };
        state.versions = VersionClock::default();
        if !self.journal.try_keep_version(version) {
            tracing::warn!(doc = %self.tag, "the version queue is full; this version is skipped");
        }
    }
}
