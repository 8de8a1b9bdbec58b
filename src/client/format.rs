//! The toolbar's commands and Restore, from the page's components to the session.
//!
//! Formatting goes to the session, which applies it to the shared text as small edits (see
//! [`crate::formatting`]). Restore writes the version into the fields and dispatches `input`,
//! so it travels as one change the way typing does.

use crate::formatting::Command;

/// The toolbar's entry: formats the source at its selection and gives it the focus back.
pub fn format_source(source: &leptos::prelude::NodeRef<leptos::html::Textarea>, command: Command) {
    use leptos::prelude::GetUntracked;
    if let Some(area) = source.get_untracked() {
        let _ = area.focus();
    }
    super::session::run_command(command);
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
