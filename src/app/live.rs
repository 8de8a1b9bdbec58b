//! The seam between the components and the browser-only client.
//!
//! Components compile on both sides, but talking to a WebSocket, the clipboard or local storage
//! only makes sense in the browser. The components call these functions from event handlers and
//! effects, which never run on the server; the server build gets inert stand-ins, so the cfg
//! gate lives here once instead of inside every component.

use super::document::DocSnapshot;
use crate::doc_id::DocId;
use crate::protocol::presence::User;
use crate::reconnect::Ending;
use leptos::html::{Div, Input, Textarea};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The connection state shown in the page's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Connecting,
    Live,
    Offline,
    /// The server closed the session for good (see [`crate::reconnect::Ending`]).
    Ended,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Connecting => "Connecting…",
            Status::Live => "Live",
            Status::Offline => "Offline — your changes are kept on this device",
            Status::Ended => "Disconnected",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Live => "live",
            Status::Offline => "offline",
            Status::Ended => "ended",
        }
    }
}

/// Which panes the editor shows; remembered per browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViewMode {
    Edit,
    Split,
    Preview,
}

impl ViewMode {
    pub const ALL: [ViewMode; 3] = [ViewMode::Edit, ViewMode::Split, ViewMode::Preview];

    pub fn key(self) -> &'static str {
        match self {
            ViewMode::Edit => "edit",
            ViewMode::Split => "split",
            ViewMode::Preview => "preview",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ViewMode::Edit => "Edit",
            ViewMode::Split => "Split",
            ViewMode::Preview => "Preview",
        }
    }

    pub fn from_key(key: &str) -> Option<ViewMode> {
        ViewMode::ALL.into_iter().find(|mode| mode.key() == key)
    }
}

/// Whether the server has confirmed that this page's latest change is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveState {
    Saved,
    Saving,
}

impl SaveState {
    pub fn label(self) -> &'static str {
        match self {
            SaveState::Saved => "Saved",
            SaveState::Saving => "Saving…",
        }
    }
    pub fn key(self) -> &'static str {
        match self {
            SaveState::Saved => "saved",
            SaveState::Saving => "saving",
        }
    }
}

/// Someone in the document, as the header shows them.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerBadge {
    /// Their awareness client id.
    pub client: u64,
    pub name: String,
    pub color: String,
    /// This page itself.
    pub me: bool,
    /// They came by a view link (the server marks them so).
    pub viewer: bool,
}

/// A document this browser has opened, remembered in local storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecentDoc {
    pub id: String,
    pub title: String,
    /// Milliseconds since the epoch.
    pub opened_at: f64,
}

/// What the page's link lets it do with the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// An edit link: the source and title fields are bound to the replica, changes are sent,
    /// and an offline copy is kept.
    Edit,
    /// A view link: the replica only follows the server. The page sends its presence and never
    /// a change (the server would refuse it anyway), and keeps no offline copy, since it has
    /// nothing of its own to keep.
    View,
}

/// What a page hands the client: its elements, its signals and its starting state.
#[derive(Clone)]
pub struct SessionParts {
    /// The link the page was opened with (its token), which the socket opens too.
    pub id: DocId,
    pub access: Access,
    pub snapshot: DocSnapshot,
    /// The source and title fields; unset on the view page, which has none.
    pub source: NodeRef<Textarea>,
    pub title: NodeRef<Input>,
    /// The Markdown source as of the latest change, local or remote; drives the preview.
    pub content: RwSignal<String>,
    pub title_text: RwSignal<String>,
    pub status: RwSignal<Status>,
    pub save: RwSignal<SaveState>,
    /// Why the server refused or dropped the document, while that is the latest news.
    pub error: RwSignal<Option<String>>,
    /// Seconds until the next connection attempt, while one is scheduled.
    pub retry_in: RwSignal<Option<u32>>,
    /// Everyone in the document now, this page included.
    pub peers: RwSignal<Vec<PeerBadge>>,
    /// This person's name and colour; the header edits it, the client publishes it.
    pub me: RwSignal<User>,
    /// The layer over the source that shows the others' carets and selections.
    pub carets: NodeRef<Div>,
    /// Set when the server ended the session for good: the page stops reconnecting and
    /// says why.
    pub ended: RwSignal<Option<Ending>>,
}

#[cfg(feature = "hydrate")]
pub use crate::client::{
    attach_session, copy_text, format_source, page_origin, recent_documents, remember_view_mode,
    remembered_view_mode, replace_page, restore_version,
};

#[cfg(not(feature = "hydrate"))]
mod inert {
    use super::{RecentDoc, SessionParts, ViewMode};
    pub fn attach_session(_parts: SessionParts) {}
    pub fn copy_text(_text: String, _then: impl FnOnce(bool) + 'static) {}
    pub fn page_origin() -> String {
        String::new()
    }
    pub fn replace_page(_path: &str) {}
    pub fn format_source(
        _source: &leptos::prelude::NodeRef<leptos::html::Textarea>,
        _command: crate::formatting::Command,
    ) {
    }
    pub fn recent_documents() -> Vec<RecentDoc> {
        Vec::new()
    }
    pub fn remember_view_mode(_mode: ViewMode) {}
    pub fn restore_version(_version: &crate::app::history::VersionText) {}
    pub fn remembered_view_mode() -> Option<ViewMode> {
        None
    }
}
#[cfg(not(feature = "hydrate"))]
pub use inert::*;
