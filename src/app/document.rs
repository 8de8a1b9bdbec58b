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

/// The internal id of the document `token` is the edit link of. Anything else (a token that
/// does not parse, opens nothing, or is a view link) is not found, and the page answers 404:
/// a `/d/` address never makes a document, nor shows one to a link that may not edit it. A
/// link of a deleted document answers 410 Gone.
#[cfg(feature = "ssr")]
pub(crate) async fn edit_link(token: &str) -> Result<crate::doc_id::DocId, ServerFnError> {
    link_to(token, crate::server::capability::Role::Edit).await
}

/// The internal id of the document `token` is the view link of (an edit link is not taken
/// here: `/v/` shows what the view link shows).
#[cfg(feature = "ssr")]
pub(crate) async fn view_link(token: &str) -> Result<crate::doc_id::DocId, ServerFnError> {
    link_to(token, crate::server::capability::Role::View).await
}

/// The message of the error a link to a deleted document gets, which the pages recognise.
pub const GONE: &str = "this document was deleted";

#[cfg(feature = "ssr")]
async fn link_to(
    token: &str,
    role: crate::server::capability::Role,
) -> Result<crate::doc_id::DocId, ServerFnError> {
    use crate::server::links::{Found, Links};
    use axum::http::StatusCode;

    let refuse = |status: StatusCode, message: String| {
        if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
        ServerFnError::new(message)
    };
    let token = crate::doc_id::DocId::parse(token)
        .map_err(|e| refuse(StatusCode::BAD_REQUEST, e.to_string()))?;
    let links = use_context::<Links>().ok_or_else(|| ServerFnError::new("no document links"))?;
    match links.find_async(token).await {
        Ok(Found::Live(capability)) if capability.role == role => Ok(capability.doc),
        Ok(Found::Gone) => Err(refuse(StatusCode::GONE, GONE.into())),
        Ok(_) => Err(refuse(
            StatusCode::NOT_FOUND,
            "there is no document at this link".into(),
        )),
        Err(error) => {
            tracing::error!(%error, "a link could not be looked up for the page");
            Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the link could not be looked up: {error}"),
            ))
        }
    }
}

/// The page's starting state of the document `id`.
#[cfg(feature = "ssr")]
async fn snapshot_of(id: crate::doc_id::DocId) -> Result<DocSnapshot, ServerFnError> {
    use crate::server::hub::Hub;
    use crate::server::redact::doc_tag;
    use base64::Engine;

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

/// The editor page's document, opened by its edit link.
#[server]
pub async fn load_document(id: String) -> Result<DocSnapshot, ServerFnError> {
    snapshot_of(edit_link(&id).await?).await
}

/// The view page's document, opened by its view link.
#[server]
pub async fn load_view_document(id: String) -> Result<DocSnapshot, ServerFnError> {
    snapshot_of(view_link(&id).await?).await
}
