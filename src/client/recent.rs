//! The documents this browser has opened, newest first, in local storage.
//!
//! The server never lists documents (a document's id is its key), so the home page's list
//! lives only here. It is capped so it cannot grow without bound.

use crate::app::live::RecentDoc;

const KEY: &str = "tandem.recent";
const LIMIT: usize = 50;

pub fn recent_documents() -> Vec<RecentDoc> {
    super::load_local(KEY).unwrap_or_default()
}

/// Records that `id` was opened (or renamed) now.
pub fn remember(id: &str, title: &str) {
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
    super::save_local(KEY, &docs);
}
