//! The toolbar's commands and Restore, from the page's components to the session.
//!
//! Formatting goes to the session, which applies it to the shared text as small edits (see
//! [`crate::formatting`]). Restore puts the version into the fields as one undoable step.

use crate::formatting::Command;

/// The toolbar's entry: formats the source at its selection and gives it the focus back.
pub fn format_source(source: &leptos::prelude::NodeRef<leptos::html::Textarea>, command: Command) {
    use leptos::prelude::GetUntracked;
    if let Some(area) = source.get_untracked() {
        let _ = area.focus();
    }
    super::session::run_command(command);
}

/// Turns the document back into a version's title and text, as one change this person can
/// undo (see the session's `restore`).
pub fn restore_version(version: &crate::app::history::VersionText) {
    super::session::run_restore(&version.title, &version.content);
}
