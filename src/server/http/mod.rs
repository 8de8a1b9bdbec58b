//! The HTTP edge: what every request passes through before a handler sees it, and what every
//! response carries when it leaves.
//!
//! # Layout
//! - [`client_address`]: who a request comes from, believing proxies only when configured to.
//! - [`origin`]: which pages may open a WebSocket here.
//! - [`security_headers`]: the Content Security Policy and the other protective headers.
//! - [`render_gate`]: a cap on document pages rendered at once.
//! - [`new_document`]: `/new`, within a number of documents per address and minute.
//! - [`raw`]: a document's Markdown as a file.
//! - [`link_status`]: `/link/{token}`, whether a link still opens its document.
//! - [`call_errors`]: a server function called with bad arguments answers 400, not 500.
//! - [`compress`]: gzip for rendered pages and downloads.
//! - [`metrics_endpoint`]: `/metrics`, for this machine or on a listener of its own.
//! - [`request_span`]: request tracing that names the route, never the document.

pub mod call_errors;
pub mod client_address;
pub mod compress;
pub mod link_status;
pub mod metrics_endpoint;
pub mod new_document;
pub mod origin;
pub mod raw;
pub mod render_gate;
pub mod request_span;
pub mod security_headers;
