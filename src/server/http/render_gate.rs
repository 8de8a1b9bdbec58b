//! A cap on document pages rendered at once.
//!
//! Rendering a document page loads the document and writes it out three times (source,
//! preview, hydration data), so a burst of page requests for large documents could take all
//! the memory and CPU. A semaphore admits `--max-concurrent-renders` at a time; the rest are
//! told at once to come back shortly (503 with Retry-After), which costs nothing to answer.
//! Server functions (`/api/…`, where a page that navigates in the browser loads a document)
//! do the same work and share the cap.

use crate::server::error::HttpError;
use crate::server::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware: holds a render permit for each `/d/{id}` and `/v/{id}` page, each link check and each server-function call
/// while it is produced.
pub async fn limit_renders(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if !(path.starts_with("/d/")
        || path.starts_with("/v/")
        || path.starts_with("/api/")
        || path.starts_with("/link/"))
    {
        return next.run(request).await;
    }
    let Ok(_permit) = state.renders.clone().try_acquire_owned() else {
        return HttpError::Busy.into_response();
    };
    next.run(request).await
}
