//! One open document in the browser: the replica, its two fields and its WebSocket.
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
use crate::app::carets::{overlay_html, RemoteCaret};
use crate::app::live::{EditorParts, PeerBadge, SaveState, Status};
use crate::formatting::{self, Command};
use crate::protocol::presence::{sticky_at, Cursor, PresenceState, RelativePosition, User};
use crate::protocol::{self, CONTENT, TITLE};
use crate::undo::{self, Direction, History};
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

/// First reconnection delay ceiling, in milliseconds.
const BACKOFF_BASE_MS: f64 = 250.0;
/// Largest reconnection delay ceiling, in milliseconds.
const BACKOFF_CAP_MS: f64 = 10_000.0;
/// At most one presence message per this many milliseconds.
const PRESENCE_THROTTLE_MS: f64 = 50.0;
/// Presence is renewed this often so the server does not expire it (it does after 30 s).
const PRESENCE_RENEW_MS: i32 = 15_000;
/// How often the page asks the server whether the line is alive.
const HEARTBEAT_MS: f64 = 15_000.0;
/// A connection the server has not spoken on for this long is given up as dead.
const DEAD_AFTER_MS: f64 = 45_000.0;
/// An attempt still connecting after this long is abandoned and retried: a server that accepts
/// the TCP connection but never answers must not leave the page waiting forever.
const CONNECT_TIMEOUT_MS: f64 = 10_000.0;
/// How often the watchdog, the countdown and the offline copy are looked after.
const TICK_MS: i32 = 500;
/// The offline copy is written at most this long after a change.
const SAVE_LOCALLY_AFTER_MS: f64 = 1_000.0;

type Shared = Rc<RefCell<Session>>;

#[derive(Clone, Copy)]
enum Field {
    Content,
    Title,
}

struct Session {
    parts: EditorParts,
    doc: Doc,
    content: TextField,
    title: TextField,
    socket: Option<Connection>,
    /// Whether the current connection has completed its handshake.
    synced: bool,
    /// Connection attempts since the last successful handshake.
    failures: u32,
    /// Frames with changes sent on this connection and not yet confirmed durable.
    unconfirmed: u32,
    /// An IME composition is in progress: rewriting the field now would cancel it, so remote
    /// updates wait in `held` until it ends.
    composing: bool,
    held: Vec<Vec<u8>>,
    /// Everyone's presence, this page's own included; shares the replica with `doc`.
    awareness: Awareness,
    /// A presence message is scheduled (see [`PRESENCE_THROTTLE_MS`]).
    presence_pending: bool,
    /// When presence was last sent, in milliseconds since the epoch.
    presence_sent_at: f64,
    /// The client id this page's presence has on the current connection. The server lets
    /// only the connection that introduced an id touch it, and an old connection may linger
    /// on the server for a while after a network drop, so each connection gets a fresh one.
    presence_id: ClientID,
    /// Presence ids of this page's earlier connections: if the server still shows one, it is
    /// this page's own ghost, not somebody else.
    past_presence_ids: Vec<ClientID>,
    /// The scheduled reconnection: its timer and when it fires.
    retry: Option<(i32, f64)>,
    /// When the current connection attempt started.
    connecting_since: f64,
    /// When the server last said anything on this connection, and when we last pinged.
    heard_at: f64,
    pinged_at: f64,
    /// The offline copy is older than the replica since this moment.
    unsaved_since: Option<f64>,
    /// This person's own undo and redo steps.
    history: History,
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

pub fn start(parts: EditorParts) {
    let (Some(source), Some(title)) = (parts.source.get_untracked(), parts.title.get_untracked())
    else {
        return;
    };
    let doc = protocol::new_doc();
    if let Ok(update) = Update::decode_v1(&parts.snapshot.update_bytes()) {
        let _ = doc.transact_mut().apply_update(update);
    }
    // Edits made here while offline, perhaps in a tab since closed: merged, never swapped in.
    if let Some(kept) = offline::load(parts.id.as_str()) {
        if let Ok(update) = Update::decode_v1(&kept) {
            let _ = doc.transact_mut().apply_update(update);
        }
    }
    let content = TextField::new(FieldElement::Area(source), &doc, CONTENT);
    let title = TextField::new(FieldElement::Line(title), &doc, TITLE);
    recent::remember(parts.id.as_str(), title.text());
    let awareness = Awareness::with_clock(doc.clone(), || js_sys::Date::now() as u64);
    // Made after the snapshot and the offline copy are in: neither is this person's to undo.
    let history = History::new(
        &doc,
        &[content.shared_text(), title.shared_text()],
        std::sync::Arc::new(|| js_sys::Date::now() as u64),
    );
    let me = parts.me;

    let session = Rc::new(RefCell::new(Session {
        parts,
        doc,
        content,
        title,
        socket: None,
        synced: false,
        failures: 0,
        unconfirmed: 0,
        composing: false,
        held: Vec::new(),
        awareness,
        presence_pending: false,
        presence_sent_at: 0.0,
        presence_id: fresh_presence_id(),
        past_presence_ids: Vec::new(),
        retry: None,
        connecting_since: 0.0,
        heard_at: 0.0,
        pinged_at: 0.0,
        unsaved_since: Some(0.0),
        history,
    }));
    keep_watch(&session);
    listen(&session, Field::Content);
    listen(&session, Field::Title);
    listen_presence(&session);
    // The header edits `me`; every change is remembered and published at once.
    me.set(identity::load());
    let s = session.clone();
    Effect::new(move |_| {
        let user = me.get();
        identity::save(&user);
        s.borrow_mut().publish_presence();
    });
    connect(&session);
}

/// Wires everything that moves this person's caret, the renewal timer and `pagehide`.
fn listen_presence(session: &Shared) {
    let (source, layer) = {
        let s = session.borrow();
        let source = s.content.element().event_target().clone();
        (source, s.parts.carets.get_untracked())
    };
    for event in [
        "keyup",
        "mouseup",
        "select",
        "focus",
        "input",
        "selectionchange",
    ] {
        let s = session.clone();
        let closure = Closure::<dyn FnMut()>::new(move || presence_changed(&s));
        let _ = source.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        closure.forget();
    }
    // Keep the caret layer scrolled with the text it draws on.
    if let Some(layer) = layer {
        let s = session.clone();
        let closure = Closure::<dyn FnMut()>::new(move || {
            let top = s.borrow().content.element().element().scroll_top();
            layer.set_scroll_top(top);
        });
        let _ = source.add_event_listener_with_callback("scroll", closure.as_ref().unchecked_ref());
        closure.forget();
    }
    let Some(window) = web_sys::window() else {
        return;
    };
    let s = session.clone();
    let renew = Closure::<dyn FnMut()>::new(move || s.borrow_mut().publish_presence());
    let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
        renew.as_ref().unchecked_ref(),
        PRESENCE_RENEW_MS,
    );
    renew.forget();
    // Leaving: say so at once rather than let the others wait for the socket to close.
    let s = session.clone();
    let leave = Closure::<dyn FnMut()>::new(move || s.borrow_mut().leave());
    let _ = window.add_event_listener_with_callback("pagehide", leave.as_ref().unchecked_ref());
    leave.forget();
    // Re-measure the caret layer when the page changes size.
    let s = session.clone();
    let resize = Closure::<dyn FnMut()>::new(move || s.borrow().render_carets());
    let _ = window.add_event_listener_with_callback("resize", resize.as_ref().unchecked_ref());
    resize.forget();
}

/// Sends this person's presence soon, at most once per [`PRESENCE_THROTTLE_MS`].
fn presence_changed(session: &Shared) {
    let delay = {
        let mut s = session.borrow_mut();
        if s.presence_pending {
            return;
        }
        s.presence_pending = true;
        (s.presence_sent_at + PRESENCE_THROTTLE_MS - js_sys::Date::now()).max(0.0)
    };
    let s = session.clone();
    let send = Closure::once_into_js(move || {
        let mut s = s.borrow_mut();
        s.presence_pending = false;
        s.publish_presence();
    });
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            send.unchecked_ref(),
            delay as i32,
        );
    }
}

/// Wires a field's input and composition events to the session.
fn listen(session: &Shared, field: Field) {
    let target = {
        let s = session.borrow();
        s.field(field).element().event_target().clone()
    };
    let on = |event: &str, handler: Box<dyn FnMut(web_sys::Event)>| {
        let closure = Closure::wrap(handler);
        let _ = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref());
        // The fields live as long as the page.
        closure.forget();
    };
    let s = session.clone();
    on(
        "input",
        Box::new(move |event| {
            let mut s = s.borrow_mut();
            // An input event the page dispatched itself is a formatting command: a step of
            // its own for undo, not part of the typing around it.
            let command = !event.is_trusted();
            if command {
                s.history.break_group();
            }
            s.local_edit(field);
            if command {
                s.history.break_group();
            }
        }),
    );
    // Undo and redo are this person's own (see `crate::undo`), never the field's: the field's
    // history is wiped by every remote change.
    let s = session.clone();
    on(
        "keydown",
        Box::new(move |event| {
            let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
                return;
            };
            // Formatting shortcuts, in the source only; Tab indents only inside a list item
            // and otherwise moves the focus on, as keyboard users expect.
            let area = s.borrow().content.element().area().cloned();
            if let (Field::Content, Some(area)) = (field, area) {
                let ctrl = key.ctrl_key() || key.meta_key();
                let command = Command::for_key(
                    &key.key(),
                    &key.code(),
                    ctrl,
                    key.shift_key(),
                    key.alt_key(),
                );
                let caret = area.selection_start().ok().flatten().unwrap_or(0);
                let applies = match command {
                    Some(Command::Indent | Command::Outdent) => {
                        formatting::in_list_item(&area.value(), caret)
                    }
                    Some(_) => true,
                    None => false,
                };
                if let (true, Some(command)) = (applies, command) {
                    event.prevent_default();
                    // No borrow is held: the field's input event reaches the session.
                    super::format::apply(&area, command);
                    return;
                }
            }
            let held = undo::Modifiers {
                ctrl: key.ctrl_key(),
                meta: key.meta_key(),
                shift: key.shift_key(),
                alt: key.alt_key(),
            };
            if let Some(direction) = undo::shortcut(&key.key(), held) {
                event.prevent_default();
                s.borrow_mut().step(direction);
            } else if undo::moves_caret(&key.key()) {
                s.borrow_mut().history.break_group();
            }
        }),
    );
    let s = session.clone();
    on(
        "beforeinput",
        Box::new(move |event| {
            let Some(input) = event.dyn_ref::<web_sys::InputEvent>() else {
                return;
            };
            if let Some(direction) = undo::input_type(&input.input_type()) {
                event.prevent_default();
                s.borrow_mut().step(direction);
            }
        }),
    );
    let s = session.clone();
    on(
        "pointerdown",
        Box::new(move |_| s.borrow_mut().history.break_group()),
    );
    let s = session.clone();
    on(
        "compositionstart",
        Box::new(move |_| s.borrow_mut().composing = true),
    );
    let s = session.clone();
    on(
        "compositionend",
        Box::new(move |_| {
            let mut s = s.borrow_mut();
            s.composing = false;
            // The composition's final text may come with this event rather than an input event.
            s.local_edit(field);
            for update in std::mem::take(&mut s.held) {
                s.apply_remote(&update);
            }
        }),
    );
}

fn connect(session: &Shared) {
    let url = match socket_url(session.borrow().parts.id.as_str()) {
        Some(url) => url,
        None => return,
    };
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(_) => {
            session.borrow_mut().socket = None;
            schedule_reconnect(session);
            return;
        }
    };
    ws.set_binary_type(BinaryType::Arraybuffer);
    session.borrow_mut().connecting_since = js_sys::Date::now();

    let s = session.clone();
    let on_open = Closure::<dyn FnMut()>::new(move || s.borrow_mut().on_open());
    let s = session.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        if let Ok(buffer) = event.data().dyn_into::<js_sys::ArrayBuffer>() {
            let frame = js_sys::Uint8Array::new(&buffer).to_vec();
            s.borrow_mut().on_frame(&frame);
        }
    });
    let s = session.clone();
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        leptos::logging::log!(
            "Tandem: connection closed ({} {})",
            event.code(),
            event.reason()
        );
        if let Some(problem) = refusal(event.code(), &event.reason()) {
            s.borrow().parts.error.set(Some(problem));
        }
        // The handlers are dropped with the connection when the next one replaces it, not
        // here: a closure must not be freed while it runs.
        connection_lost(&s, false);
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    session.borrow_mut().socket = Some(Connection {
        ws,
        _on_open: on_open,
        _on_message: on_message,
        _on_close: on_close,
    });
}

/// The connection is gone (closed, or found dead): show it, forget stale presence and
/// schedule the next attempt. `drop_socket` is false inside the socket's own handlers, which
/// must not be freed while they run.
fn connection_lost(session: &Shared, drop_socket: bool) {
    {
        let mut s = session.borrow_mut();
        if drop_socket {
            s.socket = None;
        }
        s.synced = false;
        // Unconfirmed changes are still in the replica: the next handshake resends them.
        s.unconfirmed = 0;
        s.parts.status.set(Status::Offline);
        s.forget_others();
    }
    schedule_reconnect(session);
}

/// Schedules the next connection attempt after a fully jittered exponential delay: a
/// random time up to a ceiling that doubles with each failure (from a quarter of a second to
/// ten seconds), so the clients of a restarted server come back spread out, not at once.
fn schedule_reconnect(session: &Shared) {
    let delay = {
        let mut s = session.borrow_mut();
        if s.retry.is_some() {
            return;
        }
        s.failures = s.failures.saturating_add(1);
        let ceiling =
            (BACKOFF_BASE_MS * 2f64.powi(s.failures.min(16) as i32 - 1)).min(BACKOFF_CAP_MS);
        js_sys::Math::random() * ceiling
    };
    let s = session.clone();
    let retry = Closure::once_into_js(move || {
        s.borrow_mut().retry = None;
        connect(&s);
    });
    if let Some(window) = web_sys::window() {
        if let Ok(timer) = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            retry.unchecked_ref(),
            delay as i32,
        ) {
            session.borrow_mut().retry = Some((timer, js_sys::Date::now() + delay));
        }
    }
}

/// Connects at once if the page is not connected: the browser says it is online again, or
/// the tab became visible. A scheduled attempt is cancelled in favour of this one.
fn reconnect_now(session: &Shared) {
    {
        let mut s = session.borrow_mut();
        let busy = s
            .socket
            .as_ref()
            .is_some_and(|c| matches!(c.ws.ready_state(), WebSocket::OPEN | WebSocket::CONNECTING));
        if busy {
            return;
        }
        if let (Some((timer, _)), Some(window)) = (s.retry.take(), web_sys::window()) {
            window.clear_timeout_with_handle(timer);
        }
    }
    connect(session);
}

/// The page's clock: every [`TICK_MS`] it pings the server when due, gives up a connection
/// the server has gone silent on, updates the reconnection countdown and writes the offline
/// copy when it is behind. Also wires `online` and `visibilitychange`.
fn keep_watch(session: &Shared) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let s = session.clone();
    let tick = Closure::<dyn FnMut()>::new(move || {
        let now = js_sys::Date::now();
        let dead = {
            let mut session = s.borrow_mut();
            let open = session
                .socket
                .as_ref()
                .is_some_and(|c| c.ws.ready_state() == WebSocket::OPEN);
            if open && now - session.pinged_at >= HEARTBEAT_MS {
                session.pinged_at = now;
                session.send(Message::Custom(protocol::MSG_PING, Vec::new()));
            }
            let countdown = session
                .retry
                .map(|(_, at)| ((at - now).max(0.0) / 1000.0).ceil() as u32);
            if session.parts.retry_in.get_untracked() != countdown {
                session.parts.retry_in.set(countdown);
            }
            if session
                .unsaved_since
                .is_some_and(|since| now - since >= SAVE_LOCALLY_AFTER_MS)
            {
                session.save_locally();
            }
            let stuck = session.socket.as_ref().is_some_and(|c| {
                c.ws.ready_state() == WebSocket::CONNECTING
                    && now - session.connecting_since >= CONNECT_TIMEOUT_MS
            });
            stuck || (open && now - session.heard_at >= DEAD_AFTER_MS)
        };
        if dead {
            leptos::logging::warn!("Tandem: the server is not answering; reconnecting");
            connection_lost(&s, true);
        }
    });
    let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
        tick.as_ref().unchecked_ref(),
        TICK_MS,
    );
    tick.forget();

    let s = session.clone();
    let online = Closure::<dyn FnMut()>::new(move || reconnect_now(&s));
    let _ = window.add_event_listener_with_callback("online", online.as_ref().unchecked_ref());
    online.forget();
    if let Some(document) = window.document() {
        let s = session.clone();
        let visible = Closure::<dyn FnMut()>::new(move || {
            let shown = web_sys::window()
                .and_then(|w| w.document())
                .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
            if shown {
                reconnect_now(&s);
            }
        });
        let _ = document
            .add_event_listener_with_callback("visibilitychange", visible.as_ref().unchecked_ref());
        visible.forget();
    }
}

fn socket_url(id: &str) -> Option<String> {
    let location = web_sys::window()?.location();
    let scheme = if location.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!(
        "{scheme}://{}/ws/{id}?{}={}",
        location.host().ok()?,
        protocol::CLIENT_PARAM,
        protocol::CLIENT_TANDEM
    ))
}

/// A random awareness client id: 32 bits, like the ids Yjs itself picks.
fn fresh_presence_id() -> ClientID {
    ClientID::new((js_sys::Math::random() * 4_294_967_295.0) as u64)
}

/// What to tell the user when the server closed the connection on purpose.
fn refusal(code: u16, reason: &str) -> Option<String> {
    use protocol::close;
    let what = match code {
        close::INTERNAL => "The server could not store or load this document",
        close::UNSUPPORTED_DATA | close::INVALID_PAYLOAD | close::POLICY | close::TOO_BIG => {
            "The server refused a change from this page"
        }
        _ => return None,
    };
    Some(if reason.is_empty() {
        format!("{what}. Retrying…")
    } else {
        format!("{what} ({reason}). Retrying…")
    })
}

impl Session {
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
        let sv = self.doc.transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv)));
    }

    fn on_frame(&mut self, frame: &[u8]) {
        self.heard_at = js_sys::Date::now();
        {
            let message = protocol::wire::decode(frame);
            match message {
                Ok(Message::Sync(SyncMessage::SyncStep1(sv))) => {
                    let update = self.doc.transact().encode_state_as_update_v1(&sv);
                    self.send_change(Message::Sync(SyncMessage::SyncStep2(update)));
                }
                Ok(Message::Sync(SyncMessage::SyncStep2(update))) => {
                    self.apply_remote(&update);
                    if !self.synced {
                        self.synced = true;
                        self.failures = 0;
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
                    self.unconfirmed = self.unconfirmed.saturating_sub(1);
                    if self.unconfirmed == 0 {
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

    fn local_edit(&mut self, field: Field) {
        let update = match field {
            Field::Content => self.content.local_change(&self.doc),
            Field::Title => self.title.local_change(&self.doc),
        };
        let Some(update) = update else { return };
        self.history.after_change();
        self.unsaved_since.get_or_insert(js_sys::Date::now());
        match field {
            Field::Content => {
                self.parts.content.set(self.content.text().to_string());
                self.render_carets();
            }
            Field::Title => {
                self.parts.title_text.set(self.title.text().to_string());
                recent::remember(self.parts.id.as_str(), self.title.text());
            }
        }
        self.parts.save.set(SaveState::Saving);
        self.send_change(Message::Sync(SyncMessage::Update(update)));
    }

    /// Takes back (or redoes) this person's last step, shows it with the caret where it
    /// happened, and sends it like any edit.
    fn step(&mut self, direction: Direction) {
        if self.composing {
            return;
        }
        let Some(update) = self.history.step(direction) else {
            return;
        };
        self.unsaved_since.get_or_insert(js_sys::Date::now());
        if self.content.show_own_change(&self.doc) {
            self.parts.content.set(self.content.text().to_string());
            self.render_carets();
        }
        if self.title.show_own_change(&self.doc) {
            self.parts.title_text.set(self.title.text().to_string());
            recent::remember(self.parts.id.as_str(), self.title.text());
        }
        self.send_change(Message::Sync(SyncMessage::Update(update)));
    }

    fn apply_remote(&mut self, update: &[u8]) {
        if self.composing {
            self.held.push(update.to_vec());
            return;
        }
        let Ok(decoded) = Update::decode_v1(update) else {
            leptos::logging::warn!("Tandem: undecodable update from server");
            return;
        };
        let content_selection = self.content.remember_selection(&self.doc);
        let title_selection = self.title.remember_selection(&self.doc);
        if let Err(error) = self.doc.transact_mut().apply_update(decoded) {
            leptos::logging::warn!("Tandem: update did not apply: {error}");
        }
        self.unsaved_since.get_or_insert(js_sys::Date::now());
        if self.content.refresh(&self.doc, content_selection) {
            self.parts.content.set(self.content.text().to_string());
            self.render_carets();
        }
        if self.title.refresh(&self.doc, title_selection) {
            self.parts.title_text.set(self.title.text().to_string());
            recent::remember(self.parts.id.as_str(), self.title.text());
        }
    }

    /// This person's presence: who they are and where their caret is in the source.
    fn local_presence(&self) -> PresenceState {
        let cursor = self.content.anchor_and_head().map(|(anchor, head)| {
            let txn = self.doc.transact();
            let text = self.content.shared_text();
            Cursor {
                anchor: RelativePosition::from_sticky(&sticky_at(text, &txn, anchor, Assoc::After)),
                head: RelativePosition::from_sticky(&sticky_at(text, &txn, head, Assoc::After)),
            }
        });
        PresenceState {
            user: Some(self.parts.me.get_untracked()),
            cursor,
        }
    }

    /// Publishes this person's presence now (also renewing it for the server's expiry).
    fn publish_presence(&mut self) {
        let Ok(json) = serde_json::to_string(&self.local_presence()) else {
            return;
        };
        self.awareness.set_local_state_raw(json);
        self.presence_sent_at = js_sys::Date::now();
        self.send_own_presence();
        self.refresh_presence();
    }

    /// Writes the replica to the browser's storage for offline use.
    fn save_locally(&mut self) {
        let state = self
            .doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        offline::save(self.parts.id.as_str(), &state);
        self.unsaved_since = None;
    }

    /// Sends this page's own awareness state (or its removal) to the server.
    fn send_own_presence(&self) {
        let me = self.awareness.client_id();
        let Ok(mut update) = self.awareness.update_with_clients([me]) else {
            return;
        };
        if let Some(entry) = update.clients.remove(&me) {
            update.clients.insert(self.presence_id, entry);
            self.send(Message::Awareness(update));
        }
    }

    /// Whether an awareness client id is this page itself (now or on an earlier connection).
    fn is_own(&self, id: ClientID) -> bool {
        id == self.awareness.client_id()
            || id == self.presence_id
            || self.past_presence_ids.contains(&id)
    }

    /// The page is going away: keep its state, withdraw this person's presence and close
    /// the socket.
    fn leave(&mut self) {
        self.save_locally();
        self.awareness.clean_local_state();
        self.send_own_presence();
        self.socket = None;
    }

    /// Without a connection, others' presence is stale: drop it until they are heard again.
    fn forget_others(&mut self) {
        let me = self.awareness.client_id();
        let others: Vec<_> = self
            .awareness
            .iter()
            .filter(|(id, state)| *id != me && state.data.is_some())
            .map(|(id, _)| id)
            .collect();
        for id in others {
            self.awareness.remove_state(id);
        }
        self.refresh_presence();
    }

    /// Updates the header's people and the caret layer from the awareness states.
    fn refresh_presence(&self) {
        let me = self.awareness.client_id();
        let mut peers: Vec<PeerBadge> = self
            .awareness
            .iter()
            .filter_map(|(id, state)| {
                let presence: PresenceState = serde_json::from_str(state.data.as_deref()?).ok()?;
                let user = presence.user.unwrap_or_default();
                Some(PeerBadge {
                    client: id.get(),
                    name: if user.name.trim().is_empty() {
                        "Anonymous".into()
                    } else {
                        user.name
                    },
                    color: user.color,
                    me: id == me,
                })
            })
            .collect();
        peers.sort_by(|a, b| {
            b.me.cmp(&a.me)
                .then_with(|| a.name.cmp(&b.name))
                .then(a.client.cmp(&b.client))
        });
        if self.parts.peers.with_untracked(|current| current != &peers) {
            self.parts.peers.set(peers);
        }
        self.render_carets();
    }

    /// Redraws the others' carets and selections over the source.
    fn render_carets(&self) {
        let Some(layer) = self.parts.carets.get_untracked() else {
            return;
        };
        let me = self.awareness.client_id();
        let txn = self.doc.transact();
        let carets: Vec<RemoteCaret> = self
            .awareness
            .iter()
            .filter(|(id, _)| *id != me)
            .filter_map(|(id, state)| {
                let presence: PresenceState = serde_json::from_str(state.data.as_deref()?).ok()?;
                let cursor = presence.cursor?;
                let resolve = |position: &RelativePosition| {
                    position
                        .to_sticky()?
                        .get_offset(&txn)
                        .map(|offset| offset.index)
                };
                let user: User = presence.user.unwrap_or_default();
                Some(RemoteCaret {
                    client: id.get(),
                    name: user.name,
                    color: user.color,
                    anchor: resolve(&cursor.anchor)?,
                    head: resolve(&cursor.head)?,
                })
            })
            .collect();
        if carets.is_empty() {
            layer.set_inner_html("");
            return;
        }
        let source = self.content.element().element();
        let _ = layer.set_attribute(
            "style",
            &format!(
                "width:{}px;height:{}px",
                source.client_width(),
                source.client_height()
            ),
        );
        layer.set_inner_html(&overlay_html(self.content.text(), &carets));
        layer.set_scroll_top(source.scroll_top());
    }

    /// Sends a message carrying document changes; the server confirms each such frame once
    /// it is durable.
    fn send_change(&mut self, message: Message) {
        if self.send(message) {
            self.unconfirmed += 1;
            self.parts.save.set(SaveState::Saving);
        }
    }

    fn send(&self, message: Message) -> bool {
        match &self.socket {
            Some(connection) if connection.ws.ready_state() == WebSocket::OPEN => connection
                .ws
                .send_with_u8_array(&message.encode_v1())
                .is_ok(),
            _ => false,
        }
    }
}
