//! One open document in the browser: the replica, its two fields and its WebSocket.
//!
//! The view page runs the same session with [`Access::View`]: its fields are unbound (see
//! [`TextField::unbound`]), no field or preview event is listened to, the server's greeting is
//! not answered with changes, and no offline copy is read or written. What is left is the
//! replica following the server, the preview and the header following the replica, presence,
//! and the connection's life.
//!
//! # Layout
//! - [`connection`]: the socket's life, reconnecting, the heartbeat, and stopping for good.
//! - [`editing`]: this person's own changes: typing, formatting, undo and redo, restore.
//! - [`fields`]: the fields' and the caret's events.
//! - [`presence`]: this person's presence, and the others' as the page shows them.
//! - [`display`]: the preview, the counts and the caret layer following the source.
//! - [`offline_copy`]: the document's copy in the browser, for offline edits.
//!
//! Everything runs on the page's single thread, so the session is an `Rc<RefCell<_>>` shared by
//! the event handlers. Setting a field's value from code fires no `input` event and Leptos
//! runs effects later, so no handler re-enters the session while it is borrowed.
//!
//! The socket speaks the standard Yjs protocol: on open it sends its state vector (sync step
//! 1); it answers the server's sync step 1 with what the server lacks (which is how edits made
//! while offline reach the server); it applies sync step 2 and updates; and it sends each local
//! edit as an update. When the socket closes it reconnects after an exponential, fully
//! jittered delay, so a thousand pages do not return in the same instant.

use super::binding::{FieldElement, TextField};
use super::{identity, offline, recent};
use crate::acks::Acks;
use crate::app::carets::RemoteCaret;
use crate::app::live::{Access, PeerBadge, SaveState, SessionParts, Status};
use crate::formatting::{self, Command};
use crate::markdown;
use crate::protocol::presence::{sticky_at, Cursor, PresenceState, RelativePosition, User};
use crate::protocol::{self, CONTENT, TITLE};
use crate::reconnect::{Ending, Heartbeat};
use crate::undo::{self, Direction, History};
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use yrs::sync::{Awareness, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Assoc, ClientID, Doc, ReadTxn, Transact, Update};

mod connection;
mod display;
mod editing;
mod fields;
mod offline_copy;
mod presence;

use connection::{fresh_presence_id, keep_watch, start_connecting};
use fields::{listen, listen_presence, listen_tasks};
use offline_copy::offline_then_connect;

/// At most one presence message per this many milliseconds.
const PRESENCE_THROTTLE_MS: f64 = 50.0;
/// Presence is renewed this often so the server does not expire it (it does after 30 s).
const PRESENCE_RENEW_MS: u32 = 15_000;
/// An attempt still connecting after this long is abandoned and retried: a server that accepts
/// the TCP connection but never answers must not leave the page waiting forever.
const CONNECT_TIMEOUT_MS: f64 = 10_000.0;
/// Most bytes of remote changes held back while a composition is in progress.
const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;
/// How often the watchdog, the countdown and the offline copy are looked after.
const TICK_MS: i32 = 500;
/// How long the first connection waits for the offline copy to be read.
const OFFLINE_LOAD_WAIT_MS: u32 = 3_000;

type Shared = Rc<RefCell<Session>>;

thread_local! {
    /// The page's session, for the toolbar (a page edits one document).
    static CURRENT: RefCell<std::rc::Weak<RefCell<Session>>> = const { RefCell::new(std::rc::Weak::new()) };
}

/// Turns the page's document back into a version's title and text, if one is open.
pub fn run_restore(title: &str, content: &str) {
    if let Some(session) = CURRENT.with(|current| current.borrow().upgrade()) {
        session.borrow_mut().restore(title, content);
    }
}

/// Applies a toolbar command to the page's document, if one is open.
pub fn run_command(command: Command) {
    if let Some(session) = CURRENT.with(|current| current.borrow().upgrade()) {
        session.borrow_mut().command(command);
    }
}

#[derive(Clone, Copy)]
enum Field {
    Content,
    Title,
}

struct Session {
    parts: SessionParts,
    doc: Doc,
    content: TextField,
    title: TextField,
    socket: Option<Connection>,
    /// When the page last asked whether its link still opens the document (see
    /// `connection::check_link`), in milliseconds since the epoch.
    link_checked_at: f64,
    /// Whether the current connection has completed its handshake.
    synced: bool,
    /// Connection attempts since a connection last stayed live (see
    /// [`crate::reconnect::failures_after_loss`]).
    failures: u32,
    /// When this connection completed its handshake.
    live_since: Option<f64>,
    /// Frames with changes sent on this connection and not yet confirmed durable.
    acks: Acks,
    /// A field's `input` is waiting to be taken in (see [`fields::edit_soon`]).
    content_edit_pending: bool,
    title_edit_pending: bool,
    /// An IME composition is in progress: rewriting the field now would cancel it, so remote
    /// updates wait in `held` until it ends.
    composing: bool,
    held: Vec<Vec<u8>>,
    held_bytes: usize,
    /// Everyone's presence, this page's own included; shares the replica with `doc`.
    awareness: Awareness,
    /// A presence message is scheduled (see [`PRESENCE_THROTTLE_MS`]).
    presence_pending: bool,
    /// Its timer (dropping it cancels it).
    presence_timer: Option<Timeout>,
    /// When presence was last sent, in milliseconds since the epoch.
    presence_sent_at: f64,
    /// The client id this page's presence has on the current connection. The server lets
    /// only the connection that introduced an id touch it, and an old connection may linger
    /// on the server for a while after a network drop, so each connection gets a fresh one.
    presence_id: ClientID,
    /// Presence ids of this page's earlier connections: if the server still shows one, it is
    /// this page's own ghost, not somebody else.
    past_presence_ids: Vec<ClientID>,
    /// The scheduled reconnection: its timer (dropping it cancels it) and when it fires.
    retry: Option<(gloo_timers::callback::Timeout, f64)>,
    /// When the current connection attempt started.
    connecting_since: f64,
    /// When the server last said anything on this connection, and when we last pinged.
    heard_at: f64,
    pinged_at: f64,
    /// A ping went out and nothing has been heard since.
    awaiting_answer: bool,
    /// The ping sent to check the connection after the page woke (see [`connection::woke`]):
    /// the timer that replaces the connection if the server has not answered, and when it was
    /// sent.
    probe: Option<(gloo_timers::callback::Timeout, f64)>,
    /// The page's clock and its listeners.
    watch: Option<connection::Watch>,
    /// The offline copy: the store, when it is written, what it lacks.
    keeping: offline_copy::Keeping,
    /// The first connection attempt has been made (see [`offline_then_connect`]).
    connect_started: bool,
    /// This person's own undo and redo steps.
    history: History,
    /// The heartbeat the server asked for.
    heartbeat: Heartbeat,
    /// The preview and the caret layer.
    display: display::Display,
}

/// A socket and the handlers it calls, dropped together.
struct Connection {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

pub fn start(parts: SessionParts) {
    let doc = protocol::new_doc();
    if let Ok(update) = Update::decode_v1(&parts.snapshot.update_bytes()) {
        let _ = doc.transact_mut().apply_update(update);
    }
    let editing = parts.access == Access::Edit;
    let (content, title) = if editing {
        let (Some(source), Some(title)) =
            (parts.source.get_untracked(), parts.title.get_untracked())
        else {
            return;
        };
        let content = TextField::new(FieldElement::Area(source), &doc, CONTENT);
        let title = TextField::new(FieldElement::Line(title), &doc, TITLE);
        // Only edit links are remembered: the home page opens what it lists for editing.
        recent::remember(parts.id.as_str(), title.text());
        (content, title)
    } else {
        (
            TextField::unbound(&doc, CONTENT),
            TextField::unbound(&doc, TITLE),
        )
    };
    let awareness = Awareness::with_clock(doc.clone(), || js_sys::Date::now() as u64);
    // Made after the snapshot is in: it is not this person's to undo (nor is the offline copy,
    // merged later like any remote change).
    let history = History::new(
        &doc,
        &[content.shared_text(), title.shared_text()],
        std::sync::Arc::new(|| js_sys::Date::now() as u64),
    );
    let me = parts.me;
    let heartbeat = Heartbeat::every(parts.snapshot.heartbeat_ms);
    let display = display::Display::new(&parts);

    let session = Rc::new(RefCell::new(Session {
        parts,
        doc,
        content,
        title,
        socket: None,
        synced: false,
        failures: 0,
        link_checked_at: 0.0,
        live_since: None,
        acks: Acks::default(),
        content_edit_pending: false,
        title_edit_pending: false,
        composing: false,
        held: Vec::new(),
        held_bytes: 0,
        awareness,
        presence_pending: false,
        presence_timer: None,
        presence_sent_at: 0.0,
        presence_id: fresh_presence_id(),
        past_presence_ids: Vec::new(),
        retry: None,
        connecting_since: 0.0,
        heard_at: 0.0,
        pinged_at: 0.0,
        awaiting_answer: false,
        probe: None,
        watch: None,
        keeping: offline_copy::Keeping::new(),
        connect_started: false,
        history,
        heartbeat,
        display,
    }));
    CURRENT.with(|current| *current.borrow_mut() = Rc::downgrade(&session));
    let mut listeners = Vec::new();
    if editing {
        listeners.extend(listen(&session, Field::Content));
        listeners.extend(listen(&session, Field::Title));
    }
    listeners.extend(listen_presence(&session));
    if editing {
        listeners.extend(listen_tasks(&session));
    }
    keep_watch(&session, listeners);
    session.borrow_mut().adopt_preview_soon();
    // The header edits `me`; every change is remembered and published at once.
    me.set(identity::load());
    let s = session.clone();
    Effect::new(move |_| {
        let user = me.get();
        identity::save(&user);
        s.borrow_mut().publish_presence();
    });
    if editing {
        offline_then_connect(&session);
    } else {
        start_connecting(&session);
    }
}

impl Session {
    /// Whether this page edits the document (see [`Access`]).
    fn editing(&self) -> bool {
        self.parts.access == Access::Edit
    }

    fn field(&self, field: Field) -> &TextField {
        match field {
            Field::Content => &self.content,
            Field::Title => &self.title,
        }
    }

    fn on_open(&mut self) {
        // A fresh presence id per connection (see `presence_id`); the last few are remembered.
        let previous = std::mem::replace(&mut self.presence_id, fresh_presence_id());
        self.past_presence_ids.push(previous);
        if self.past_presence_ids.len() > 16 {
            self.past_presence_ids.remove(0);
        }
        let now = js_sys::Date::now();
        self.heard_at = now;
        self.pinged_at = now;
        self.awaiting_answer = false;
        let sv = self.doc.transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv)));
    }

    fn on_frame(&mut self, frame: &[u8]) {
        self.heard_at = js_sys::Date::now();
        self.awaiting_answer = false;
        {
            let message = protocol::wire::decode(frame);
            match message {
                // A viewer has nothing of its own to give: whatever its replica holds came from
                // the server.
                Ok(Message::Sync(SyncMessage::SyncStep1(sv))) if self.editing() => {
                    let update = self.doc.transact().encode_state_as_update_v1(&sv);
                    self.send_change(Message::Sync(SyncMessage::SyncStep2(update)));
                }
                Ok(Message::Sync(SyncMessage::SyncStep2(update))) => {
                    self.apply_remote(&update);
                    if !self.synced {
                        self.synced = true;
                        self.live_since = Some(js_sys::Date::now());
                        self.parts.error.set(None);
                        self.parts.status.set(Status::Live);
                        self.publish_presence();
                    }
                }
                Ok(Message::Awareness(mut update)) => {
                    update.clients.retain(|id, _| !self.is_own(*id));
                    if self.awareness.apply_update(update).is_ok() {
                        self.refresh_presence();
                    }
                }
                Ok(Message::Custom(protocol::MSG_SAVED, _)) => {
                    if self.acks.confirmed() {
                        self.parts.save.set(SaveState::Saved);
                    }
                }
                Ok(Message::Sync(SyncMessage::Update(update))) => self.apply_remote(&update),
                Ok(_) => {}
                Err(error) => {
                    leptos::logging::warn!("Tandem: undecodable message from server: {error}");
                }
            }
        }
    }

    /// Applies a change from the server and shows it, or holds it while a composition is in
    /// progress, up to [`MAX_HELD_BYTES`]: past that everything held is shown at once, even
    /// mid-composition, rather than held without bound.
    fn apply_remote(&mut self, update: &[u8]) {
        self.flush_edits();
        if self.composing && self.held_bytes + update.len() <= MAX_HELD_BYTES {
            self.held_bytes += update.len();
            self.held.push(update.to_vec());
            return;
        }
        self.release_held();
        self.integrate(update);
    }

    /// Applies the changes held during a composition, in order.
    fn release_held(&mut self) {
        self.held_bytes = 0;
        for update in std::mem::take(&mut self.held) {
            self.integrate(&update);
        }
    }

    fn integrate(&mut self, update: &[u8]) {
        let Ok(decoded) = Update::decode_v1(update) else {
            leptos::logging::warn!("Tandem: undecodable update from server");
            return;
        };
        let content_selection = self.content.remember_selection(&self.doc);
        let title_selection = self.title.remember_selection(&self.doc);
        if let Err(error) = self.doc.transact_mut().apply_update(decoded) {
            leptos::logging::warn!("Tandem: update did not apply: {error}");
        }
        self.changed_elsewhere();
        if self.content.refresh(&self.doc, content_selection) {
            self.show_field(Field::Content);
        }
        if self.title.refresh(&self.doc, title_selection) {
            self.show_field(Field::Title);
        }
    }

    /// Passes a field's new text on to the page: the preview and carets for the source, the
    /// tab's title and the recent-documents list for the title.
    fn show_field(&mut self, field: Field) {
        match field {
            Field::Content => {
                self.source_changed();
            }
            Field::Title => {
                self.parts.title_text.set(self.title.text().to_string());
                if self.editing() {
                    recent::remember(self.parts.id.as_str(), self.title.text());
                }
            }
        }
    }

    /// The page is going away: keep its state, withdraw this person's presence and close
    /// the socket.
    fn leave(&mut self) {
        self.flush_edits();
        self.keep_before_hiding();
        self.awareness.clean_local_state();
        self.send_own_presence();
        self.socket = None;
    }

    /// Sends a message carrying document changes; the server confirms each such frame once
    /// it is durable.
    fn send_change(&mut self, message: Message) {
        if self.send(message) {
            self.acks.sent();
            self.parts.save.set(SaveState::Saving);
        }
    }

    /// The socket's `readyState`, if there is a socket.
    fn socket_state(&self) -> Option<u16> {
        self.socket.as_ref().map(|c| c.ws.ready_state())
    }

    fn send(&self, message: Message) -> bool {
        match &self.socket {
            Some(connection) if self.socket_state() == Some(WebSocket::OPEN) => connection
                .ws
                .send_with_u8_array(&message.encode_v1())
                .is_ok(),
            _ => false,
        }
    }
}
