//! The headers that keep a page's content from turning against its reader.
//!
//! Every page gets a strict Content Security Policy: scripts only from this server, plus the
//! inline scripts Leptos writes for hydration, which carry a fresh random nonce per response
//! (the nonce in the header is the one handed to Leptos for that render, so nothing else
//! inline can run even if it got into the page). Styles come from the server's stylesheet;
//! style attributes are allowed because the page colours people's badges and carets with them
//! (from validated hex colours only). Images may come from anywhere unless
//! `--no-remote-images` is set: a remote image tells its host the reader's address, browser and
//! time of viewing, never the document's link, because no response lets a Referer leave.
//!
//! Every response is also marked `nosniff`, `no-referrer` (the link is the key to the
//! document) and never to be framed.

use crate::server::AppState;
use axum::extract::{Request, State};
use axum::http::header::{
    HeaderName, HeaderValue, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

static CROSS_ORIGIN_OPENER_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-opener-policy");
static CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");

/// The nonce of one response's inline scripts; placed in the request's extensions for the
/// renderer to pick up.
#[derive(Clone, Debug)]
pub struct CspNonce(pub Arc<str>);

impl CspNonce {
    /// 128 random bits, base64url: as CSP and Leptos expect.
    fn fresh() -> Self {
        use base64::Engine;
        let bytes: [u8; 16] = rand::random();
        CspNonce(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(bytes)
                .into(),
        )
    }
}

/// The policy of an HTML page whose inline scripts carry `nonce`.
pub fn page_policy(nonce: &str, remote_images: bool) -> String {
    let images = if remote_images {
        "'self' data: https: http:"
    } else {
        "'self' data:"
    };
    format!(
        "default-src 'self'; \
         script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src-elem 'self'; \
         style-src-attr 'unsafe-inline'; \
         img-src {images}; \
         connect-src 'self'; \
         font-src 'self'; \
         object-src 'none'; \
         base-uri 'none'; \
         form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The policy of everything that is not a page (scripts, styles, images, plain text): should
/// one be opened directly, it may do nothing.
const RESOURCE_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Middleware: hands the request a nonce, then sets the headers on whatever is answered.
pub async fn add_security_headers(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let nonce = CspNonce::fresh();
    request.extensions_mut().insert(nonce.clone());
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/html"));
    let policy = if is_html {
        page_policy(&nonce.0, !state.config.no_remote_images)
    } else {
        RESOURCE_POLICY.to_string()
    };
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(CONTENT_SECURITY_POLICY, policy);
    }
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        CROSS_ORIGIN_RESOURCE_POLICY.clone(),
        HeaderValue::from_static("same-origin"),
    );
    if is_html {
        headers.insert(
            CROSS_ORIGIN_OPENER_POLICY.clone(),
            HeaderValue::from_static("same-origin"),
        );
    }
    response
}

/// For the renderer's context: makes Leptos write this request's nonce on its inline scripts.
/// Outside a request (or without the middleware) Leptos keeps the nonce it made itself.
pub fn provide_request_nonce() {
    use leptos::prelude::{provide_context, use_context};
    let nonce = use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(nonce)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(nonce));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_fresh_and_fit_a_policy() {
        let a = CspNonce::fresh();
        let b = CspNonce::fresh();
        assert_ne!(a.0, b.0);
        assert_eq!(a.0.len(), 22);
        let policy = page_policy(&a.0, true);
        assert!(policy.contains(&format!("'nonce-{}'", a.0)));
        assert!(HeaderValue::from_str(&policy).is_ok());
        assert!(page_policy(&a.0, false).contains("img-src 'self' data:;"));
    }
}
