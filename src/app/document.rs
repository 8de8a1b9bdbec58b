//! The state a page starts from.
//!
//! The editor page is rendered with the document's current title and text, so the HTML alone
//! shows the document, and it carries the whole document as one yrs update. The browser starts
//! its replica from exactly that update: the text field then always mirrors the replica, even
//! for edits made before the WebSocket is up.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DocSnapshot {
    pub title: String,
    pub content: String,
    /// The document as one yrs v1 update, base64-encoded.
    pub update: String,
}

impl DocSnapshot {
    pub fn update_bytes(&self) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(&self.update)
            .unwrap_or_default()
    }
}

#[server]
pub async fn load_document(id: String) -> Result<DocSnapshot, ServerFnError> {
    use crate::doc_id::DocId;
    use crate::server::hub::Hub;
    use base64::Engine;

    let id = DocId::parse(&id).map_err(|e| ServerFnError::new(e.to_string()))?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    let snapshot = match hub.get(&id) {
        Some(room) => {
            let (title, content) = room.texts();
            let update = base64::engine::general_purpose::STANDARD.encode(room.full_update());
            DocSnapshot { title, content, update }
        }
        None => DocSnapshot::default(),
    };
    Ok(snapshot)
}
