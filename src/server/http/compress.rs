//! Compression of the pages the server renders: the HTML of a document page, and a document's
//! Markdown and HTML downloads.
//!
//! The site's files are compressed once, when the executable is built (`site.rs`), so only
//! what is rendered per request is compressed here, and only with gzip at its fastest level:
//! every browser takes it, and its state is about 300 KiB per response in flight where
//! brotli's window alone is 4 MiB. At the fastest level it costs less CPU than rendering the
//! page did (about 4 ms per MiB: a 1 MB document's 4.4 MB page is rendered in 20 ms and gzipped
//! to 1.0 MB in 15 ms more); the default level took 130 ms for 0.64 MB. WebSocket upgrades,
//! assets, errors and anything under 1 KiB pass through as they are.

use axum::http::{header, HeaderMap, StatusCode};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

/// Responses no smaller than this are compressed.
pub const MIN_BYTES: u16 = 1024;

/// The layer: gzip at the fastest level for rendered text a client says it accepts.
pub fn layer() -> CompressionLayer<impl Predicate> {
    let rendered_text = |status: StatusCode, _, headers: &HeaderMap, _: &_| {
        let kind = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        status == StatusCode::OK
            && (kind.starts_with("text/html") || kind.starts_with("text/markdown"))
    };
    CompressionLayer::new()
        .no_br()
        .no_deflate()
        .no_zstd()
        .gzip(true)
        .quality(CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(MIN_BYTES).and(rendered_text))
}
