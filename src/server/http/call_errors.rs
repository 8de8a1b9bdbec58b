//! Server functions answer a call whose arguments do not decode (a missing field, a malformed
//! form) with 500, as if the server had failed. It is the caller's mistake: this makes it 400,
//! with the same message, so clients and logs tell a bad call from a broken server.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// How server functions begin the message of an error in the call's arguments.
const ARGUMENT_ERRORS: [&[u8]; 3] = [b"Args|", b"MissingArg|", b"Deserialization|"];

/// The most of an error's body read to classify it; server functions' errors are short.
const MOST_BYTES: usize = 64 * 1024;

/// Middleware: a server function's 500 that reports bad arguments becomes 400.
pub async fn bad_arguments_are_400(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let response = next.run(request).await;
    if response.status() != StatusCode::INTERNAL_SERVER_ERROR {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MOST_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if ARGUMENT_ERRORS
        .iter()
        .any(|prefix| bytes.starts_with(prefix))
    {
        tracing::info!(error = %String::from_utf8_lossy(&bytes), "a server function call with bad arguments refused");
        parts.status = StatusCode::BAD_REQUEST;
    }
    Response::from_parts(parts, Body::from(bytes))
}
