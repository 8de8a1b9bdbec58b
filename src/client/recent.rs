//! The documents this browser has opened, newest first, in local storage.
//!
//! The server never lists documents (a document's id is its key), so the home page's list
//! lives only here. It is capped so it cannot grow without bound.

use crate::app::live::RecentDoc;

const KEY: &str = "tandem.recent";
const LIMIT: usize = 50;

pub fn recent_documents() -> Vec<RecentDoc> {
    super::local_storage()
        .and_then(|s| s.get_item(KEY).ok().flatten())
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default()
}

/// Records that `id` was opened (or renamed) now.
pub fn remember(id: &str, title: &str) {
    let Some(storage) = super::local_storage() else {
        return;
    };
    let mut docs = recent_documents();
    docs.retain(|doc| doc.id != id);
    docs.insert(
        0,
        RecentDoc {
            id: id.to_string(),
            title: title.to_string(),
            opened_at: js_sys::Date::now(),
        },
    );
    docs.truncate(LIMIT);
    if let Ok(json) = serde_json::to_string(&docs) {
        let _ = storage.set_item(KEY, &json);
    }
}
