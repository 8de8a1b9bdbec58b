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
use super::recent;
use crate::app::live::{EditorParts, SaveState, Status};
use crate::protocol::{self, CONTENT, TITLE};
use leptos::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

/// First reconnection delay ceiling, in milliseconds.
const BACKOFF_BASE_MS: f64 = 250.0;
/// Largest reconnection delay ceiling, in milliseconds.
const BACKOFF_CAP_MS: f64 = 10_000.0;

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
    let content = TextField::new(FieldElement::Area(source), &doc, CONTENT);
    let title = TextField::new(FieldElement::Line(title), &doc, TITLE);
    recent::remember(parts.id.as_str(), title.text());

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
    }));
    listen(&session, Field::Content);
    listen(&session, Field::Title);
    connect(&session);
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
    on("input", Box::new(move |_| s.borrow_mut().local_edit(field)));
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
        {
            let mut session = s.borrow_mut();
            session.synced = false;
            // Unconfirmed changes are still in the replica: the next handshake resends them.
            session.unconfirmed = 0;
            session.parts.status.set(Status::Offline);
            if let Some(problem) = refusal(event.code(), &event.reason()) {
                session.parts.error.set(Some(problem));
            }
        }
        // The handlers are dropped with the connection when the next one replaces it, not
        // here: a closure must not be freed while it runs.
        schedule_reconnect(&s);
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

fn schedule_reconnect(session: &Shared) {
    let delay = {
        let mut s = session.borrow_mut();
        s.failures = s.failures.saturating_add(1);
        let ceiling =
            (BACKOFF_BASE_MS * 2f64.powi(s.failures.min(16) as i32 - 1)).min(BACKOFF_CAP_MS);
        js_sys::Math::random() * ceiling
    };
    let s = session.clone();
    let retry = Closure::once_into_js(move || connect(&s));
    if let Some(window) = web_sys::window() {
        let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
            retry.unchecked_ref(),
            delay as i32,
        );
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

/// What to tell the user when the server closed the connection on purpose.
fn refusal(code: u16, reason: &str) -> Option<String> {
    let what = match code {
        1011 => "The server could not store or load this document",
        1003 | 1007 | 1008 | 1009 => "The server refused a change from this page",
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
        let sv = self.doc.transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv)));
    }

    fn on_frame(&mut self, frame: &[u8]) {
        let mut decoder = DecoderV1::new(Cursor::new(frame));
        let messages: Vec<_> = MessageReader::new(&mut decoder).collect();
        for message in messages {
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
                    break;
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
        match field {
            Field::Content => self.parts.content.set(self.content.text().to_string()),
            Field::Title => {
                self.parts.title_text.set(self.title.text().to_string());
                recent::remember(self.parts.id.as_str(), self.title.text());
            }
        }
        self.parts.save.set(SaveState::Saving);
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
        if self.content.refresh(&self.doc, content_selection) {
            self.parts.content.set(self.content.text().to_string());
        }
        if self.title.refresh(&self.doc, title_selection) {
            self.parts.title_text.set(self.title.text().to_string());
            recent::remember(self.parts.id.as_str(), self.title.text());
        }
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
