//! The toolbar over the source: formatting buttons, word and character counts, view modes.
//!
//! It is one stop for Tab, as the ARIA toolbar pattern has it: the arrow keys, Home and End move
//! along its buttons, and Tab leaves it, coming back to the button last used. Without that, the
//! eleven buttons would stand between the title and the text for every keyboard user.

use super::live::{self, ViewMode};
use crate::formatting::Command;
use leptos::html::{Button, Textarea};
use leptos::prelude::*;

#[component]
pub fn Toolbar(
    source: NodeRef<Textarea>,
    content: RwSignal<String>,
    view_mode: RwSignal<ViewMode>,
) -> impl IntoView {
    // Every button, in order, with whether it is shown in a view mode: nothing to format while
    // the source is hidden.
    let formats: Vec<(String, NodeRef<Button>)> = Command::TOOLBAR
        .iter()
        .map(|(command, _, _)| (format!("format-{}", command.key()), NodeRef::new()))
        .collect();
    let views: Vec<(String, NodeRef<Button>)> = ViewMode::ALL
        .iter()
        .map(|mode| (format!("view-{}", mode.key()), NodeRef::new()))
        .collect();
    let buttons = StoredValue::new(
        formats
            .iter()
            .map(|(key, node)| (key.clone(), *node, true))
            .chain(views.iter().map(|(key, node)| (key.clone(), *node, false)))
            .collect::<Vec<_>>(),
    );
    let shown = move || -> Vec<(String, NodeRef<Button>)> {
        let preview = view_mode.get() == ViewMode::Preview;
        buttons.with_value(|all| {
            all.iter()
                .filter(|(_, _, formats)| !(preview && *formats))
                .map(|(key, node, _)| (key.clone(), *node))
                .collect()
        })
    };
    // The button Tab lands on: the last one used, while it is shown.
    let last_used = RwSignal::new(String::new());
    let stop = Memo::new(move |_| {
        let shown = shown();
        let last = last_used.get();
        if shown.iter().any(|(key, _)| *key == last) {
            last
        } else {
            shown
                .first()
                .map(|(key, _)| key.clone())
                .unwrap_or_default()
        }
    });
    let tabindex = move |key: &str| if stop.get() == key { "0" } else { "-1" };
    let on_keydown = move |event: leptos::ev::KeyboardEvent| {
        if event.ctrl_key() || event.alt_key() || event.meta_key() {
            return;
        }
        let shown = shown();
        let current = shown
            .iter()
            .position(|(key, _)| *key == stop.get_untracked());
        let Some(next) = roving_step(shown.len(), current.unwrap_or(0), &event.key()) else {
            return;
        };
        event.prevent_default();
        let (key, node) = &shown[next];
        last_used.set(key.clone());
        if let Some(button) = node.get_untracked() {
            let _ = button.focus();
        }
    };

    view! {
        <div
            class="toolbar"
            role="toolbar"
            aria-label="Formatting and view"
            data-view=move || view_mode.get().key()
            on:keydown=on_keydown
        >
            {Command::TOOLBAR
                .into_iter()
                .zip(formats)
                .map(|((command, label, shortcut), (key, node))| {
                    let focused = key.clone();
                    view! {
                        <button
                            type="button"
                            class="tool format"
                            node_ref=node
                            data-testid=key.clone()
                            tabindex=move || tabindex(&key)
                            title=format!("{label} ({shortcut})")
                            aria-label=label
                            on:focus=move |_| last_used.set(focused.clone())
                            on:click=move |_| live::format_source(&source, command)
                        >
                            {tool_glyph(command)}
                        </button>
                    }
                })
                .collect_view()}
            <span class="toolbar-gap"></span>
            <span class="counts" data-testid="counts" aria-live="off">
                {move || {
                    let (words, characters) = counts(&content.read());
                    format!("{words} words · {characters} characters")
                }}
            </span>
            <span class="view-modes" role="group" aria-label="View">
                {ViewMode::ALL
                    .into_iter()
                    .zip(views)
                    .map(|(mode, (key, node))| {
                        let focused = key.clone();
                        view! {
                            <button
                                type="button"
                                class="tool"
                                node_ref=node
                                data-testid=key.clone()
                                tabindex=move || tabindex(&key)
                                aria-pressed=move || (view_mode.get() == mode).to_string()
                                on:focus=move |_| last_used.set(focused.clone())
                                on:click=move |_| {
                                    view_mode.set(mode);
                                    live::remember_view_mode(mode);
                                }
                            >
                                {mode.label()}
                            </button>
                        }
                    })
                    .collect_view()}
            </span>
        </div>
    }
}

/// Where a key moves the focus in a row of `len` buttons from button `at`: the arrows step
/// (wrapping around), Home and End jump to the ends; other keys do not move it.
pub fn roving_step(len: usize, at: usize, key: &str) -> Option<usize> {
    if len == 0 {
        return None;
    }
    let at = at.min(len - 1);
    match key {
        "ArrowRight" | "ArrowDown" => Some((at + 1) % len),
        "ArrowLeft" | "ArrowUp" => Some((at + len - 1) % len),
        "Home" => Some(0),
        "End" => Some(len - 1),
        _ => None,
    }
}

/// What a toolbar button shows: short, with the full name in its label and tooltip.
fn tool_glyph(command: Command) -> &'static str {
    match command {
        Command::Bold => "B",
        Command::Italic => "I",
        Command::Heading => "H",
        Command::List => "• List",
        Command::Checklist => "☐ Tasks",
        Command::Link => "Link",
        Command::Code => "</>",
        Command::Quote => "❝",
        Command::Indent | Command::Outdent => "",
    }
}

/// Words and characters (Unicode scalar values) in `text`.
fn counts(text: &str) -> (usize, usize) {
    (text.split_whitespace().count(), text.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_step_and_wrap_home_and_end_jump_and_other_keys_stay() {
        assert_eq!(roving_step(11, 0, "ArrowRight"), Some(1));
        assert_eq!(roving_step(11, 10, "ArrowRight"), Some(0));
        assert_eq!(roving_step(11, 0, "ArrowLeft"), Some(10));
        assert_eq!(roving_step(11, 4, "ArrowUp"), Some(3));
        assert_eq!(roving_step(11, 4, "ArrowDown"), Some(5));
        assert_eq!(roving_step(11, 4, "Home"), Some(0));
        assert_eq!(roving_step(11, 4, "End"), Some(10));
        assert_eq!(roving_step(11, 4, "Enter"), None);
        assert_eq!(roving_step(11, 4, "a"), None);
        assert_eq!(roving_step(0, 0, "ArrowRight"), None);
        // A stale position (buttons hidden since) is held to the row.
        assert_eq!(roving_step(3, 9, "ArrowRight"), Some(0));
    }

    #[test]
    fn counts_words_and_characters() {
        assert_eq!(counts("two words"), (2, 9));
        assert_eq!(counts("  é\n\tü "), (2, 7));
        assert_eq!(counts(""), (0, 0));
    }
}
