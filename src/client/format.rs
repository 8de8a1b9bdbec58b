//! Applies a formatting command ([`crate::formatting`]) to the source field.
//!
//! The new value is written into the field and an `input` event dispatched, so it travels the
//! way typing does: the session reads the field, turns the difference into one splice, sends it
//! and records it for undo.

use crate::formatting::{self, Command};
use web_sys::HtmlTextAreaElement;

/// Applies `command` to the field's value and selection; returns whether anything changed.
pub fn apply(area: &HtmlTextAreaElement, command: Command) -> bool {
    let value = area.value();
    let start = area.selection_start().ok().flatten().unwrap_or(0);
    let end = area.selection_end().ok().flatten().unwrap_or(start);
    let edited = formatting::apply(command, &value, start, end);
    if edited.text == value {
        return false;
    }
    area.set_value(&edited.text);
    let _ = area.set_selection_range(edited.start, edited.end);
    if let Ok(event) = web_sys::Event::new("input") {
        let _ = area.dispatch_event(&event);
    }
    true
}

/// The toolbar's entry: formats the source and gives it the focus back.
pub fn format_source(source: &leptos::prelude::NodeRef<leptos::html::Textarea>, command: Command) {
    use leptos::prelude::GetUntracked;
    if let Some(area) = source.get_untracked() {
        let _ = area.focus();
        apply(&area, command);
    }
}

/// Turns the source and the title back into a version's, as edits made in this page: each
/// field's new value travels as one change, which this person's undo takes back.
pub fn restore_version(
    source: &leptos::prelude::NodeRef<leptos::html::Textarea>,
    title: &leptos::prelude::NodeRef<leptos::html::Input>,
    version: &crate::app::history::VersionText,
) {
    use leptos::prelude::GetUntracked;
    let input = || web_sys::Event::new("input").ok();
    if let Some(area) = source.get_untracked() {
        if area.value() != version.content {
            area.set_value(&version.content);
            if let Some(event) = input() {
                let _ = area.dispatch_event(&event);
            }
        }
    }
    if let Some(line) = title.get_untracked() {
        if line.value() != version.title {
            line.set_value(&version.title);
            if let Some(event) = input() {
                let _ = line.dispatch_event(&event);
            }
        }
    }
}
