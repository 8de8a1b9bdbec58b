//! The WebSocket's life: connecting, noticing it is gone, reconnecting with backoff, the
//! heartbeat and watchdog, and what to tell the user when the server refuses.

use super::*;

pub(super) fn connect(session: &Shared) {
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
pub(super) fn connection_lost(session: &Shared, drop_socket: bool) {
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
pub(super) fn schedule_reconnect(session: &Shared) {
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
pub(super) fn reconnect_now(session: &Shared) {
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
pub(super) fn keep_watch(session: &Shared) {
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

/// What to tell the user when the server closed the connection on purpose.
pub(super) fn refusal(code: u16, reason: &str) -> Option<String> {
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
