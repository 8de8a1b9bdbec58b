//! The browser side: the page's replica of the document, its WebSocket and the editor binding.
//!
//! # Layout
//! - [`binding`]: a text field bound to a yrs text; local edits become splices, remote
//!   changes keep the caret where it was relative to the text.
//! - [`blocks`]: an element shown as HTML blocks, patched where they changed (the preview
//!   and the caret layer).
//! - [`format`]: the formatting commands applied to the source field.
//! - [`session`]: one open document: replica, fields, socket, reconnection.
//! - [`recent`]: the documents this browser has opened, kept in local storage.
//! - [`identity`]: this person's name and colour, kept in local storage.
//! - [`offline`]: each open document's state, kept in IndexedDB for offline edits.

mod binding;
mod blocks;
mod format;
mod identity;
mod offline;
mod recent;
mod session;

use crate::app::live::SessionParts;
pub use format::{format_source, restore_version};
pub use recent::recent_documents;

/// Entry point called by the page's bootstrap script.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        say_the_page_stopped();
    }));
    // The document pages are split points (see `app::App`): hydration waits for their code.
    leptos::mount::hydrate_lazy(crate::app::App);
}

/// After a panic the page's code stops for good (the wasm aborts): a chunk of the editor that
/// failed to load, or a bug. The page would otherwise go on showing the server's text and
/// "Connecting…" forever, its fields read-only with no word why. Its status says so instead.
fn say_the_page_stopped() {
    let status = web_sys::window()
        .and_then(|window| window.document())
        .and_then(|document| {
            document
                .query_selector("[data-testid=status]")
                .ok()
                .flatten()
        });
    if let Some(status) = status {
        let _ = status.set_attribute("data-status", "stopped");
        status.set_text_content(Some("Stopped — reload the page"));
    }
}

/// Starts the page's live session: editing on the editor page, following on the view page.
pub fn attach_session(parts: SessionParts) {
    session::start(parts);
}

/// Whether the browser lets the page use local storage. gloo-storage's calls throw when it does
/// not (storage turned off, a sandboxed frame), so every use asks first.
fn local_storage_usable() -> bool {
    web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .is_some()
}

/// The text kept in local storage under `key`, if any. Read through the raw handle: gloo's own
/// `get` throws when the browser fails the read (Firefox does, on a damaged profile).
fn load_local_text(key: &str) -> Option<String> {
    use gloo_storage::Storage;
    if !local_storage_usable() {
        return None;
    }
    gloo_storage::LocalStorage::raw()
        .get_item(key)
        .ok()
        .flatten()
}

/// The value kept in local storage under `key`, if any and readable as a `T`.
fn load_local<T: serde::de::DeserializeOwned>(key: &str) -> Option<T> {
    serde_json::from_str(&load_local_text(key)?).ok()
}

/// Keeps `value` in local storage under `key`, if the browser allows (a full quota loses it).
fn save_local<T: serde::Serialize>(key: &str, value: &T) {
    use gloo_storage::Storage;
    if local_storage_usable() {
        let _ = gloo_storage::LocalStorage::set(key, value);
    }
}

/// Writes `text` to the clipboard, then tells `then` whether the browser took it (it may
/// refuse: no permission, or the page is not focused).
pub fn copy_text(text: String, then: impl FnOnce(bool) + 'static) {
    let Some(window) = web_sys::window() else {
        then(false);
        return;
    };
    let written = window.navigator().clipboard().write_text(&text);
    wasm_bindgen_futures::spawn_local(async move {
        then(wasm_bindgen_futures::JsFuture::from(written).await.is_ok());
    });
}

/// The page's origin (`https://host:port`), which makes a link's path a full address.
pub fn page_origin() -> String {
    web_sys::window()
        .and_then(|window| window.location().origin().ok())
        .unwrap_or_default()
}

/// Goes to `path` in place of this page, which leaves no history entry behind: the page's
/// own address opens nothing any more (its link was reset).
pub fn replace_page(path: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.location().replace(path);
    }
}

/// Where the editor's view mode is kept in local storage.
const VIEW_MODE_KEY: &str = "tandem.view";

/// Remembers the editor's view mode for every document in this browser.
pub fn remember_view_mode(mode: crate::app::live::ViewMode) {
    save_local(VIEW_MODE_KEY, &mode.key());
}

/// The view mode this browser last chose, if any (anything unknown is ignored).
pub fn remembered_view_mode() -> Option<crate::app::live::ViewMode> {
    // Kept as JSON; earlier versions kept the bare key.
    let stored = load_local_text(VIEW_MODE_KEY)?;
    let key = serde_json::from_str::<String>(&stored).unwrap_or(stored);
    crate::app::live::ViewMode::from_key(&key)
}
