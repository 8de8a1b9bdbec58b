//! `GET /link/{token}`: whether a link still opens its document, for a page whose WebSocket
//! cannot connect. A browser does not show a page the status a refused upgrade got, so a page
//! whose link was reset or whose document was deleted while it slept would otherwise retry
//! for ever; it asks here instead: 204 when the link opens a document, 404 when it opens
//! nothing (never made, or reset since), 410 when its document was deleted.
//!
//! The answer carries `Tandem-Link: live | none | deleted`: the page acts only on an answer
//! that says so, never on a 404 from a proxy, or from a server without this route. Each check
//! counts against the address's rate of new connections, as opening a WebSocket does.

use crate::doc_id::DocId;
use crate::server::error::HttpError;
use crate::server::http::client_address::ClientAddress;
use crate::server::links::Found;
use crate::server::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::protocol::LINK_STATUS_HEADER;

pub async fn link_status(
    Path(raw): Path<String>,
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
) -> Result<Response, HttpError> {
    let token = DocId::parse(&raw)?;
    state.limits.arrive(client)?;
    let (status, said) = match state.links.find_async(token).await? {
        Found::Live(_) => (StatusCode::NO_CONTENT, "live"),
        Found::Gone => (StatusCode::GONE, "deleted"),
        Found::Nothing => (StatusCode::NOT_FOUND, "none"),
    };
    Ok((status, [(LINK_STATUS_HEADER, said)]).into_response())
}
