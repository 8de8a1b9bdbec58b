//! Request tracing that names the route, never the document.
//!
//! A document's id is the key to it, and the id is in the path of its page and its socket.
//! The request span records the route's shape (`/d/{id}`, `/ws/{id}`) instead of the path; any
//! other path segment long enough to be an id is blanked too, so a mistyped link does not
//! leak either. A well-formed id is recorded as its tag ([`doc_tag`]), the name the rest of
//! the logs give the document.

use crate::doc_id::{DocId, DOC_ID_LEN};
use crate::server::redact::doc_tag;
use axum::http::Request;
use tower_http::trace::MakeSpan;
use tracing::Span;

/// Makes each request's span with its method and route shape.
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteSpan;

impl<B> MakeSpan<B> for RouteSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let path = request.uri().path();
        let span = tracing::debug_span!(
            "request",
            method = %request.method(),
            route = %route_shape(path),
            doc = tracing::field::Empty,
        );
        let id = ["/d/", "/ws/"]
            .iter()
            .find_map(|prefix| path.strip_prefix(prefix))
            .and_then(|raw| DocId::parse(raw.trim_end_matches('/')).ok());
        if let Some(id) = id {
            span.record("doc", tracing::field::display(doc_tag(&id)));
        }
        span
    }
}

/// The path with everything that could be a document id replaced.
pub fn route_shape(path: &str) -> String {
    for prefix in ["/d/", "/ws/"] {
        if path.starts_with(prefix) {
            return format!("{prefix}{{id}}");
        }
    }
    path.split('/')
        .map(|segment| {
            if may_hold_id(segment) {
                "{redacted}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a segment holds a run of id characters as long as an id (also when percent-encoded
/// or surrounded by other characters).
fn may_hold_id(segment: &str) -> bool {
    let mut run = 0;
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            run += 1;
            if run >= DOC_ID_LEN {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::route_shape;

    #[test]
    fn ids_never_appear_in_a_route_shape() {
        let id = "AbCdEfGhIjKlMnOpQr-_09";
        assert_eq!(route_shape(&format!("/d/{id}")), "/d/{id}");
        assert_eq!(route_shape(&format!("/d/{id}x/more")), "/d/{id}");
        assert_eq!(route_shape(&format!("/ws/{id}")), "/ws/{id}");
        assert_eq!(route_shape(&format!("/D/{id}")), "/D/{redacted}");
        assert_eq!(route_shape(&format!("/x/%20{id}.txt")), "/x/{redacted}");
        assert_eq!(route_shape("/pkg/tandem.js"), "/pkg/tandem.js");
        assert_eq!(route_shape("/"), "/");
        assert_eq!(route_shape("/healthz"), "/healthz");
    }
}
