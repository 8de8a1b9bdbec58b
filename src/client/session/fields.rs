//! The fields' and the caret's events: typing, composition, undo and formatting keys, and
//! everything that moves this person's caret (which the others see).

use super::*;
use gloo_events::{EventListener, EventListenerOptions};

/// Wires everything that moves this person's caret (on the editor page: the view page has no
/// caret), `pagehide` and `resize`; the handles go into the session's
/// [`Watch`](super::connection::Watch).
pub(super) fn listen_presence(session: &Shared) -> Vec<EventListener> {
    let mut listeners = listen_caret(session);
    let Some(window) = web_sys::window() else {
        return listeners;
    };
    // Leaving: say so at once rather than let the others wait for the socket to close.
    let s = session.clone();
    listeners.push(EventListener::new(&window, "pagehide", move |_| {
        s.borrow_mut().leave()
    }));
    // Re-measure the caret layer when the page changes size.
    let s = session.clone();
    listeners.push(EventListener::new(&window, "resize", move |_| {
        s.borrow_mut().render_carets()
    }));
    listeners
}

/// Wires what moves this person's caret in the source, and keeps the caret layer and the
/// preview scrolled with it. Nothing, on a page without a source.
fn listen_caret(session: &Shared) -> Vec<EventListener> {
    let mut listeners = Vec::new();
    let (source, layer) = {
        let s = session.borrow();
        let Some(source) = s.content.element().map(|e| e.event_target().clone()) else {
            return listeners;
        };
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
        listeners.push(EventListener::new(&source, event, move |_| {
            presence_changed(&s)
        }));
    }
    // Keep the caret layer scrolled with the text it draws on, and the preview at the same
    // place in the document (in proportion: a rendered line is not a source line's height).
    let preview = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid=preview]").ok().flatten());
    if let Some(layer) = layer {
        let s = session.clone();
        listeners.push(EventListener::new(&source, "scroll", move |_| {
            let s = s.borrow();
            let Some(source) = s.content.element().map(|e| e.element()) else {
                return;
            };
            let top = source.scroll_top();
            layer.set_scroll_top(top);
            if let Some(preview) = &preview {
                let range = (source.scroll_height() - source.client_height()).max(1);
                let share = f64::from(top) / f64::from(range);
                let preview_range = (preview.scroll_height() - preview.client_height()).max(0);
                preview.set_scroll_top((share * f64::from(preview_range)).round() as i32);
            }
        }));
    }
    listeners
}

/// Sends this person's presence soon, at most once per [`PRESENCE_THROTTLE_MS`].
pub(super) fn presence_changed(session: &Shared) {
    let delay = {
        // Borrowed already: the session is writing someone's change into the field itself
        // (see `TextField::refresh`), and publishes presence after that anyway.
        let Ok(mut s) = session.try_borrow_mut() else {
            return;
        };
        if s.presence_pending {
            return;
        }
        s.presence_pending = true;
        (s.presence_sent_at + PRESENCE_THROTTLE_MS - js_sys::Date::now()).max(0.0)
    };
    let s = session.clone();
    let send = Timeout::new(delay as u32, move || {
        let mut s = s.borrow_mut();
        s.presence_pending = false;
        s.publish_presence();
    });
    // The timer before it has fired (`presence_pending` was clear): replacing it is harmless.
    session.borrow_mut().presence_timer = Some(send);
}

/// Wires a field's input and composition events to the session; returns the handles.
pub(super) fn listen(session: &Shared, field: Field) -> Vec<EventListener> {
    let mut listeners = Vec::new();
    let target = {
        let s = session.borrow();
        let Some(element) = s.field(field).element() else {
            return listeners;
        };
        element.event_target().clone()
    };
    // Handlers that may cancel the browser's own action must not be passive.
    let mut on = |event: &'static str, handler: Box<dyn FnMut(&web_sys::Event)>| {
        let options = EventListenerOptions::enable_prevent_default();
        listeners.push(EventListener::new_with_options(
            &target, event, options, handler,
        ));
    };
    let s = session.clone();
    on("input", Box::new(move |_| edit_soon(&s, field)));
    // Undo and redo are this person's own (see `crate::undo`), never the field's: the field's
    // history is wiped by every remote change.
    let s = session.clone();
    on(
        "keydown",
        Box::new(move |event| {
            let Some(key) = event.dyn_ref::<web_sys::KeyboardEvent>() else {
                return;
            };
            s.borrow_mut().flush_edits();
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
            // The session's own writing into the field (see `TextField::refresh`): not this
            // person's input.
            let Ok(mut session) = s.try_borrow_mut() else {
                return;
            };
            session.flush_edits();
            drop(session);
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
            s.flush_edits();
            s.composing = false;
            // The composition's final text may come with this event rather than an input event.
            s.local_edit(field);
            s.release_held();
        }),
    );
    listeners
}

/// Takes the field's change into the replica once the events in flight are handled: a burst of
/// `input` events fired in one go (Chromium fires two per line for `insertText` of many lines,
/// and extensions do similar) costs one read of the field, not one per event, each of which
/// copies the whole value. Typing sees no delay: the microtask runs as soon as the event's
/// handlers return; and anything that reads or rewrites the field first takes in an edit still
/// waiting ([`Session::flush_edits`]), so nothing works on stale text.
fn edit_soon(session: &Shared, field: Field) {
    {
        // Borrowed already: this is the session writing someone else's change into the field
        // (see `TextField::refresh`), which it takes in itself.
        let Ok(mut s) = session.try_borrow_mut() else {
            return;
        };
        let pending = match field {
            Field::Content => &mut s.content_edit_pending,
            Field::Title => &mut s.title_edit_pending,
        };
        if std::mem::replace(pending, true) {
            return;
        }
    }
    let s = session.clone();
    wasm_bindgen_futures::spawn_local(async move { s.borrow_mut().flush_edits() });
}

/// Ticking a task's box in the preview edits the source: the n-th box of the preview is the
/// n-th task of the source (see [`markdown::task_markers`]). A click on a preview still waiting
/// to catch up with the source only brings it up to date.
pub(super) fn listen_tasks(session: &Shared) -> Option<EventListener> {
    let preview = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid=preview]").ok().flatten())?;
    let s = session.clone();
    let options = EventListenerOptions::enable_prevent_default();
    let element = preview.clone();
    Some(EventListener::new_with_options(
        &preview,
        "click",
        options,
        move |event| {
            let Some(tick) = event
                .target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
                .filter(|t| t.class_list().contains("task"))
            else {
                return;
            };
            // The box shows what the source says, once the change comes back through it.
            event.prevent_default();
            let mut session = s.borrow_mut();
            session.flush_edits();
            // A preview behind the source may show a box whose place has changed (identical
            // lists side by side, one of them deleted): it is brought up to date and the click
            // does nothing; the reader clicks what is shown now.
            if session.display.preview_is_stale() {
                session.show_source();
                return;
            }
            if !tick.is_connected() {
                return;
            }
            let Some(nth) = nth_task(&element, &tick) else {
                return;
            };
            let Some(&at) = markdown::task_markers(session.content.text()).get(nth) else {
                return;
            };
            if let Some(edited) = formatting::toggle_task(session.content.text(), at) {
                session.apply_edited(edited);
            }
        },
    ))
}

/// Which of `preview`'s task boxes `tick` is, counting from 0.
fn nth_task(preview: &web_sys::Element, tick: &web_sys::HtmlInputElement) -> Option<usize> {
    let boxes = preview.query_selector_all("input.task").ok()?;
    (0..boxes.length()).find_map(|i| {
        let node = boxes.item(i)?;
        node.is_same_node(Some(tick)).then_some(i as usize)
    })
}

/// Whether the page runs on a Mac, where Cmd (not Ctrl) is the command key.
fn is_mac() -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().platform().ok())
        .is_some_and(|platform| platform.starts_with("Mac"))
}
