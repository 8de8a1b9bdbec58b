//! Errors at the server's edges: WebSocket close reasons and HTTP error responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the server closes a WebSocket: the close code and a short human-readable reason.
///
/// The codes are the standard ones (RFC 6455 §7.4.1), so any client library understands them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: String,
}

/// The close codes, shared with the page that explains them.
pub use crate::protocol::close as close_code;

impl CloseReason {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        // A close frame's reason must fit in 123 bytes; cut at a character boundary.
        if reason.len() > 123 {
            let mut end = 120;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
            reason.push_str("...");
        }
        CloseReason { code, reason }
    }
    pub fn invalid(reason: String) -> Self {
        Self::new(close_code::INVALID_PAYLOAD, reason)
    }
    pub fn unsupported(reason: String) -> Self {
        Self::new(close_code::UNSUPPORTED_DATA, reason)
    }
    pub fn too_big(reason: impl Into<String>) -> Self {
        Self::new(close_code::TOO_BIG, reason)
    }
    pub fn lagging(reason: impl Into<String>) -> Self {
        Self::new(close_code::TRY_AGAIN_LATER, reason)
    }
    pub fn going_away() -> Self {
        Self::new(close_code::GOING_AWAY, "server is shutting down")
    }
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(close_code::INTERNAL, reason)
    }
    pub fn protocol(reason: impl Into<String>) -> Self {
        Self::new(close_code::PROTOCOL_ERROR, reason)
    }
    pub fn policy(reason: impl Into<String>) -> Self {
        Self::new(close_code::POLICY, reason)
    }
    pub fn link_reset() -> Self {
        Self::new(
            close_code::LINK_RESET,
            "this link was reset and no longer opens the document",
        )
    }
    pub fn deleted() -> Self {
        Self::new(close_code::DELETED, "this document was deleted")
    }
    pub fn silent() -> Self {
        Self::new(close_code::NO_HEARTBEAT, "no answer to pings")
    }
}

/// An error answered over plain HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("malformed document id: {0}")]
    BadDocId(#[from] crate::doc_id::DocIdError),
    #[error("origin {0:?} may not open connections here")]
    ForbiddenOrigin(String),
    #[error("{0}")]
    Limited(#[from] super::limits::Refusal),
    #[error("the server is rendering as many pages as it may; try again in a moment")]
    Busy,
    #[error("too many new documents from this address; try again in a minute")]
    TooManyDocuments,
    #[error("the connection's peer address is unknown")]
    NoPeerAddress,
    /// The link opens nothing: never made, or reset since.
    #[error("no document at this link")]
    UnknownLink,
    /// The link was of a document since deleted.
    #[error("this document was deleted")]
    Gone,
    /// The store could not be asked what the link opens, or could not make a document.
    #[error("the document's links: {0}")]
    Links(#[from] super::links::LookupError),
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        use super::limits::Refusal;
        use super::metrics;
        let status = match self {
            HttpError::BadDocId(_) => StatusCode::BAD_REQUEST,
            HttpError::ForbiddenOrigin(_) => StatusCode::FORBIDDEN,
            HttpError::Limited(Refusal::ServerFull) | HttpError::Busy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::Limited(_) | HttpError::TooManyDocuments => StatusCode::TOO_MANY_REQUESTS,
            HttpError::UnknownLink => StatusCode::NOT_FOUND,
            HttpError::Gone => StatusCode::GONE,
            HttpError::NoPeerAddress | HttpError::Links(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // A server at capacity says when to come back: soon, and with jitter left to clients.
        let retry_after = match self {
            HttpError::Busy => Some("1"),
            HttpError::Limited(Refusal::ServerFull) => Some("5"),
            HttpError::TooManyDocuments => Some("60"),
            _ => None,
        };
        tracing::info!(%status, error = %self, "request refused");
        let refusal = match self {
            HttpError::BadDocId(_) => Some(metrics::Refusal::Malformed),
            HttpError::ForbiddenOrigin(_) => Some(metrics::Refusal::Origin),
            HttpError::Limited(Refusal::ServerFull) | HttpError::Busy => {
                Some(metrics::Refusal::Capacity)
            }
            HttpError::Limited(_) | HttpError::TooManyDocuments => {
                Some(metrics::Refusal::AddressLimit)
            }
            HttpError::NoPeerAddress
            | HttpError::UnknownLink
            | HttpError::Gone
            | HttpError::Links(_) => None,
        };
        if let Some(refusal) = refusal {
            metrics::refused(refusal);
        }
        let mut response = (status, self.to_string()).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(seconds),
            );
        }
        response
    }
}
