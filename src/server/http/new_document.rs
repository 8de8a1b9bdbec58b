//! `GET /new`: makes a document with its links and sends the browser to its edit link.
//!
//! Every call writes rows, so each client address (counted as [`address_key`] counts it: an
//! IPv4 address, or an IPv6 /64; see [`PerAddressPerMinute`]) may make `--max-new-documents-per-minute` documents a minute,
//! all at once if it likes; beyond that it is answered 429 with Retry-After. A person never
//! meets the limit; a loop cannot fill the store with empty documents.

use crate::server::error::HttpError;
use crate::server::http::client_address::ClientAddress;
#[cfg(doc)]
use crate::server::limits::PerAddressPerMinute;
use crate::server::AppState;
use axum::extract::State;
use axum::response::Redirect;

/// Makes a document with its links and sends the browser to its edit link.
pub async fn new_document(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
) -> Result<Redirect, HttpError> {
    if !state.creations.allows(client) {
        tracing::info!(address = %client, "too many new documents from one address");
        return Err(HttpError::TooManyDocuments);
    }
    let (_doc, edit) = state.links.create_async().await?;
    Ok(Redirect::to(&format!("/d/{edit}")))
}
