//! The WebSocket's life: connecting, noticing it is gone, reconnecting with backoff, the
//! heartbeat and watchdog, what to tell the user when the server refuses, and stopping for
//! good when the server says the link opens nothing any more.

use super::*;
use crate::reconnect::{backoff_ceiling_ms, on_wake, refusal, Wake, WAKE_PROBE_MS};
use gloo_events::EventListener;
use gloo_timers::callback::{Interval, Timeout};

/// Makes the first connection attempt, once.
pub(super) fn start_connecting(session: &Shared) {
    if std::mem::replace(&mut session.borrow_mut().connect_started, true) {
        return;
    }
    connect(session);
}

pub(super) fn connect(session: &Shared) {
    // Whatever asks (a retry timer set before, the page waking, the offline copy read late),
    // an ended session stays ended.
    if session.borrow().parts.ended.get_untracked().is_some() {
        return;
    }
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
        // A session that has ended hears nothing more.
        if s.borrow().parts.ended.get_untracked().is_some() {
            return;
        }
        if let Some(ending) = Ending::of_close(event.code()) {
            s.borrow_mut().end(ending);
            return;
        }
        if let Some(problem) = refusal(event.code(), &event.reason()) {
            s.borrow().parts.error.set(Some(problem));
        }
        // Lost before it was live (most often refused before it opened, which the browser
        // reports as 1006 without the status): the link may have been reset, or the document
        // deleted, while the page was away. The page asks.
        if s.borrow().live_since.is_none() {
            check_link(&s);
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

/// Asks the server whether the page's link still opens its document (`GET /link/{token}`):
/// one that opens nothing any more ends the session as a reset link does, one of a deleted
/// document as a deletion does. Any other answer, or none, leaves the retries to go on.
fn check_link(session: &Shared) {
    use wasm_bindgen_futures::JsFuture;
    let Some(window) = web_sys::window() else {
        return;
    };
    {
        let mut s = session.borrow_mut();
        let now = js_sys::Date::now();
        if now - s.link_checked_at < LINK_CHECK_EVERY_MS {
            return;
        }
        s.link_checked_at = now;
    }
    let path = format!("/link/{}", session.borrow().parts.id.as_str());
    let s = session.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(answer) = JsFuture::from(window.fetch_with_str(&path)).await else {
            return; // the server is unreachable: the retries find out when it is back
        };
        let Ok(response) = answer.dyn_into::<web_sys::Response>() else {
            return;
        };
        // Only Tandem's own answer counts: a proxy's 404 while the server restarts, or one
        // from a server without this route, says nothing about the link.
        let said = response
            .headers()
            .get(protocol::LINK_STATUS_HEADER)
            .ok()
            .flatten();
        let ending = match (response.status(), said.as_deref()) {
            (404, Some("none")) => Ending::LinkReset,
            (410, Some("deleted")) => Ending::Deleted,
            _ => return,
        };
        let mut session = s.borrow_mut();
        if session.parts.ended.get_untracked().is_some() {
            return;
        }
        // An attempt made meanwhile goes too: the session is over.
        if let Some(connection) = session.socket.take() {
            connection.detach();
        }
        session.end(ending);
    });
}

/// At most one link check per this long: pages that all lose their connection at once (an
/// instance going away) each ask a couple of times a minute, not at every attempt.
const LINK_CHECK_EVERY_MS: f64 = 30_000.0;

impl Connection {
    /// Stops listening to the socket and closes it. Called outside its handlers only: a
    /// handler must not be freed while it runs.
    fn detach(self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

/// The connection is gone (closed, or found dead): show it, forget stale presence and
/// schedule the next attempt. `drop_socket` is false inside the socket's own handlers, which
/// must not be freed while they run.
pub(super) fn connection_lost(session: &Shared, drop_socket: bool) {
    {
        let mut s = session.borrow_mut();
        if drop_socket {
            s.socket = None;
        }
        s.synced = false;
        let live_ms = s.live_since.take().map(|since| js_sys::Date::now() - since);
        s.failures = crate::reconnect::failures_after_loss(s.failures, live_ms);
        // A probe of this connection has nothing left to decide.
        s.probe = None;
        // Unconfirmed changes are still in the replica: the next handshake resends them.
        s.acks.lost();
        s.parts.status.set(Status::Offline);
        s.forget_others();
    }
    schedule_reconnect(session);
}

impl Session {
    /// The server ended the session for good: the link was reset or the document deleted.
    /// Nothing is retried (the link opens nothing any more); the page shows why, and nobody
    /// as present, since it hears of nobody from now on.
    fn end(&mut self, ending: Ending) {
        self.synced = false;
        self.live_since = None;
        self.retry = None;
        self.probe = None;
        self.forget_others();
        self.parts.error.set(None);
        self.parts.retry_in.set(None);
        self.parts.status.set(Status::Ended);
        self.parts.ended.set(Some(ending));
        if ending == Ending::Deleted {
            self.drop_copy();
        }
    }
}

/// Schedules the next connection attempt after a fully jittered exponential delay: a
/// random time up to a ceiling that doubles with each failure (from a quarter of a second to
/// ten seconds), so the clients of a restarted server come back spread out, not at once.
pub(super) fn schedule_reconnect(session: &Shared) {
    let delay = {
        let mut s = session.borrow_mut();
        if s.retry.is_some() || s.parts.ended.get_untracked().is_some() {
            return;
        }
        s.failures = s.failures.saturating_add(1);
        js_sys::Math::random() * backoff_ceiling_ms(s.failures)
    };
    let s = session.clone();
    let timer = Timeout::new(delay as u32, move || {
        // Taken out before connecting: a timer must not be dropped while it runs.
        let fired = s.borrow_mut().retry.take();
        connect(&s);
        drop(fired);
    });
    session.borrow_mut().retry = Some((timer, js_sys::Date::now() + delay));
}

/// Connects at once if the page is not connected: the browser says it is online again, or
/// the page woke up. A scheduled attempt is cancelled in favour of this one.
pub(super) fn reconnect_now(session: &Shared) {
    let cancelled = {
        let mut s = session.borrow_mut();
        if matches!(
            s.socket_state(),
            Some(WebSocket::OPEN | WebSocket::CONNECTING)
        ) {
            return;
        }
        s.retry.take()
    };
    drop(cancelled);
    connect(session);
}

/// The page may have slept: a phone whose screen went off, a closed laptop, a background tab
/// the browser froze. A connection that looks open may have died meanwhile without a word (the
/// network moved on, a NAT forgot it), and the heartbeat would take up to a period and its answer time to
/// notice. So on
/// waking: no connection, connect now; one the server has been silent on for longer than a
/// heartbeat period, replace now; one heard from a little while ago, ping it and replace it if
/// it does not answer within [`WAKE_PROBE_MS`]. A page just heard from is left alone.
pub(super) fn woke(session: &Shared) {
    let now = js_sys::Date::now();
    let wake = {
        let mut s = session.borrow_mut();
        let open = s.socket_state() == Some(WebSocket::OPEN);
        let unanswered = s.awaiting_answer;
        let wake = on_wake(
            s.heartbeat,
            open,
            now - s.heard_at,
            unanswered,
            s.probe.is_some(),
        );
        if wake == Wake::Probe {
            // An earlier ping still unanswered keeps its own time.
            if !s.awaiting_answer {
                s.pinged_at = now;
                s.awaiting_answer = true;
            }
            s.send(Message::Custom(protocol::MSG_PING, Vec::new()));
        }
        wake
    };
    match wake {
        Wake::Connect => reconnect_now(session),
        Wake::Replace => replace(session),
        Wake::Probe => {
            let s = session.clone();
            let timer = Timeout::new(WAKE_PROBE_MS as u32, move || {
                let unanswered = {
                    let mut session = s.borrow_mut();
                    let probe = session.probe.take();
                    probe.is_some_and(|(_, since)| session.heard_at < since)
                };
                if unanswered {
                    replace(&s);
                }
            });
            session.borrow_mut().probe = Some((timer, now));
        }
        Wake::Wait => {}
    }
}

/// Gives up the current connection and connects again at once.
pub(super) fn replace(session: &Shared) {
    leptos::logging::warn!("Tandem: the connection did not survive; reconnecting");
    connection_lost(session, true);
    reconnect_now(session);
}

/// Timers and listeners the page keeps while it shows the document: held here, for as long as
/// the session lives, rather than leaked one by one.
pub(super) struct Watch {
    _tick: Interval,
    _renew: Interval,
    _listeners: Vec<EventListener>,
}

/// The page's clock: every [`TICK_MS`] (or heartbeat period, if shorter) it pings the server when due, gives up a connection
/// the server has gone silent on, updates the reconnection countdown and writes the offline
/// copy when it is behind. Every [`PRESENCE_RENEW_MS`] it renews this person's presence. Also
/// wires what tells the page it may have slept or come back online: `online`, `pageshow`,
/// `visibilitychange` and `resume`; and keeps the fields' `listeners`.
pub(super) fn keep_watch(session: &Shared, mut listeners: Vec<EventListener>) {
    let Some(window) = web_sys::window() else {
        return;
    };
    // A heartbeat shorter than the tick is kept by ticking as often.
    let every = session.borrow().heartbeat.tick_ms(f64::from(TICK_MS));
    let s = session.clone();
    let tick = Interval::new(every as u32, move || self::tick(&s));
    let s = session.clone();
    let renew = Interval::new(PRESENCE_RENEW_MS, move || s.borrow_mut().publish_presence());
    for event in ["online", "pageshow"] {
        let s = session.clone();
        listeners.push(EventListener::new(&window, event, move |_| woke(&s)));
    }
    if let Some(document) = window.document() {
        let s = session.clone();
        listeners.push(EventListener::new(
            &document,
            "visibilitychange",
            move |_| {
                let shown = web_sys::window()
                    .and_then(|w| w.document())
                    .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
                if shown {
                    woke(&s);
                } else {
                    // Hidden, a phone may never run this page again: keep what it holds now.
                    s.borrow_mut().keep_before_hiding();
                }
            },
        ));
        // Fired when the browser unfreezes a page it had frozen.
        let s = session.clone();
        listeners.push(EventListener::new(&document, "resume", move |_| woke(&s)));
    }
    session.borrow_mut().watch = Some(Watch {
        _tick: tick,
        _renew: renew,
        _listeners: listeners,
    });
}

fn tick(session: &Shared) {
    let now = js_sys::Date::now();
    let dead = {
        let mut s = session.borrow_mut();
        let open = s.socket_state() == Some(WebSocket::OPEN);
        let tick = s.heartbeat.tick_ms(f64::from(TICK_MS));
        if open
            && s.heartbeat
                .ping_due(now - s.pinged_at, tick, s.awaiting_answer)
        {
            s.pinged_at = now;
            s.awaiting_answer = true;
            s.send(Message::Custom(protocol::MSG_PING, Vec::new()));
        }
        let countdown = s
            .retry
            .as_ref()
            .map(|(_, at)| ((at - now).max(0.0) / 1000.0).ceil() as u32);
        if s.parts.retry_in.get_untracked() != countdown {
            s.parts.retry_in.set(countdown);
        }
        s.save_if_due(false);
        let stuck = s.socket_state() == Some(WebSocket::CONNECTING)
            && now - s.connecting_since >= CONNECT_TIMEOUT_MS;
        stuck || (open && s.heartbeat.line_dead(s.awaiting_answer, s.pinged_at, now))
    };
    if dead {
        leptos::logging::warn!("Tandem: the server is not answering; reconnecting");
        connection_lost(session, true);
    }
}

pub(super) fn socket_url(id: &str) -> Option<String> {
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
pub(super) fn fresh_presence_id() -> ClientID {
    ClientID::new((js_sys::Math::random() * 4_294_967_295.0) as u64)
}
