//! The state a page starts from.
//!
//! The editor page is rendered with the document's current title and text, so the HTML alone
//! shows the document, and it carries the whole document as one yrs update. The browser starts
//! its replica from exactly that update: the text field then always mirrors the replica, even
//! for edits made before the WebSocket is up.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocSnapshot {
    pub title: String,
    pub content: String,
    /// The document as one yrs v1 update, base64-encoded.
    pub update: String,
    /// How often the page should send its heartbeat, in milliseconds (`--heartbeat-ms`).
    /// Defaulted, so a page rendered by an older server still opens.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u32,
}

fn default_heartbeat_ms() -> u32 {
    crate::reconnect::Heartbeat::DEFAULT_MS
}

/// What the server tells every editor page besides the document (set from its configuration).
#[derive(Clone, Copy, Debug)]
pub struct PageSettings {
    pub heartbeat_ms: u32,
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
    use crate::server::redact::doc_tag;
    use base64::Engine;

    let id = DocId::parse(&id).map_err(|e| ServerFnError::new(e.to_string()))?;
    let hub = use_context::<Hub>().ok_or_else(|| ServerFnError::new("no document hub"))?;
    let snapshot = hub.snapshot(&id).await.map_err(|error| {
        tracing::error!(doc = %doc_tag(&id), %error, "document could not be read for the page");
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        }
        ServerFnError::new(format!("the document could not be read: {error}"))
    })?;
    Ok(DocSnapshot {
        title: snapshot.title,
        content: snapshot.content,
        update: base64::engine::general_purpose::STANDARD.encode(snapshot.update),
        heartbeat_ms: use_context::<PageSettings>()
            .map_or(crate::reconnect::Heartbeat::DEFAULT_MS, |settings| {
                settings.heartbeat_ms
            }),
    })
}
