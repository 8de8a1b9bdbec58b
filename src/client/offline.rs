//! Each open document's local state, kept in the browser so that edits made offline survive
//! a closed tab or a reload and reach the server the next time the page connects.
//!
//! The copy is the whole replica as one yrs update, merged (never swapped) into the page's
//! replica on load: whatever the server holds meanwhile is kept, and the handshake sends the
//! server only what it lacks. Storage is bounded: at most [`MAX_DOCS`] documents, each at
//! most [`MAX_BYTES`]; when the browser's quota is reached the oldest copies go first.

use base64::Engine;

const PREFIX: &str = "tandem.doc.";
const INDEX: &str = "tandem.docs";
pub const MAX_DOCS: usize = 20;
pub const MAX_BYTES: usize = 1024 * 1024;

fn index(storage: &web_sys::Storage) -> Vec<String> {
    storage
        .get_item(INDEX)
        .ok()
        .flatten()
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

/// The stored state of document `id`, if any.
pub fn load(id: &str) -> Option<Vec<u8>> {
    let encoded = super::local_storage()?
        .get_item(&format!("{PREFIX}{id}"))
        .ok()??;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// Stores the state of document `id`, newest first, within the bounds.
pub fn save(id: &str, state: &[u8]) {
    let Some(storage) = super::local_storage() else {
        return;
    };
    let key = format!("{PREFIX}{id}");
    if state.len() > MAX_BYTES {
        // Too large to keep here; an old, smaller copy would only mislead.
        let _ = storage.remove_item(&key);
        return;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(state);
    let mut ids = index(&storage);
    ids.retain(|other| other != id);
    ids.insert(0, id.to_string());
    while ids.len() > MAX_DOCS {
        if let Some(old) = ids.pop() {
            let _ = storage.remove_item(&format!("{PREFIX}{old}"));
        }
    }
    // On a full quota, drop the oldest copies until this one fits.
    while storage.set_item(&key, &encoded).is_err() {
        match ids.pop() {
            Some(old) if old != id => {
                let _ = storage.remove_item(&format!("{PREFIX}{old}"));
            }
            _ => return,
        }
    }
    if let Ok(json) = serde_json::to_string(&ids) {
        let _ = storage.set_item(INDEX, &json);
    }
}
