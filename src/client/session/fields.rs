//! The fields' and the caret's events: typing, composition, undo and formatting keys, and
//! everything that moves this person's caret (which the others see).

use super::*;

/// Wires everything that moves this person's caret, the renewal timer and `pagehide`.
pub(super) fn listen_presence(session: &Shared) {
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
    // Keep the caret layer scrolled with the text it draws on, and the preview at the same
    // place in the document (in proportion: a rendered line is not a source line's height).
    let preview = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid=preview]").ok().flatten());
    if let Some(layer) = layer {
        let s = session.clone();
        let closure = Closure::<dyn FnMut()>::new(move || {
            let s = s.borrow();
            let source = s.content.element().element();
            let top = source.scroll_top();
            layer.set_scroll_top(top);
            if let Some(preview) = &preview {
                let range = (source.scroll_height() - source.client_height()).max(1);
                let share = f64::from(top) / f64::from(range);
                let preview_range = (preview.scroll_height() - preview.client_height()).max(0);
                preview.set_scroll_top((share * f64::from(preview_range)).round() as i32);
            }
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
pub(super) fn presence_changed(session: &Shared) {
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
pub(super) fn listen(session: &Shared, field: Field) {
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
    // Undo and redo are this person's own (see `crate::undo`), never the field's: the field's
    // history is wiped by every remote change.
    let s = session.clone();
    on(
        "keydown",
        Box::new(move |event| {
            let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
                return;
            };
            // Formatting shortcuts, in the source only. AltGr (reported as Ctrl+Alt on Windows)
            // types characters, never commands; a composition is left alone; on a Mac only
            // Cmd is a command key (Ctrl+B, Ctrl+E and Ctrl+K move the caret there). Tab
            // indents only inside a list item, and only when it changes something, and
            // otherwise moves the focus on, as keyboard users expect.
            let typing = key.is_composing() || key.get_modifier_state("AltGraph");
            if let (Field::Content, false) = (field, typing) {
                let ctrl = if is_mac() {
                    key.meta_key()
                } else {
                    key.ctrl_key()
                };
                let command = Command::for_key(
                    &key.key(),
                    &key.code(),
                    ctrl,
                    key.shift_key(),
                    key.alt_key(),
                );
                if let Some(command) = command {
                    let mut session = s.borrow_mut();
                    let (start, end) = session.content.selection().unwrap_or((0, 0));
                    let text = session.content.text();
                    let applies = match command {
                        Command::Indent | Command::Outdent => {
                            formatting::in_list_item(text, start)
                                && !formatting::apply(command, text, start, end).ops.is_empty()
                        }
                        _ => true,
                    };
                    if applies {
                        event.prevent_default();
                        session.command(command);
                        return;
                    }
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

/// Ticking a task's box in the preview edits the source: the box says where its `[ ]` is.
pub(super) fn listen_tasks(session: &Shared) {
    let Some(preview) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid=preview]").ok().flatten())
    else {
        return;
    };
    let s = session.clone();
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
        let Some(tick) = event
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(at) = tick
            .get_attribute("data-task-at")
            .and_then(|at| at.parse::<u32>().ok())
        else {
            return;
        };
        // The box shows what the source says, once the change comes back through it.
        event.prevent_default();
        let mut session = s.borrow_mut();
        if let Some(edited) = formatting::toggle_task(session.content.text(), at) {
            session.apply_edited(edited);
        }
    });
    let _ = preview.add_event_listener_with_callback("click", closure.as_ref().unchecked_ref());
    // The preview lives as long as the page.
    closure.forget();
}

/// Whether the page runs on a Mac, where Cmd (not Ctrl) is the command key.
fn is_mac() -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().platform().ok())
        .is_some_and(|platform| platform.starts_with("Mac"))
}
