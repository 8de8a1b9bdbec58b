//! `GET /metrics`: on the main listener for this machine only, or on a listener of its own.

use crate::server::{metrics, AppState};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

/// `/metrics` on the main listener: for clients on this machine only, and not at all when
/// `--metrics-addr` gives it a listener of its own. A reverse proxy on this machine connects
/// from loopback on behalf of anyone, so a request from a trusted proxy, or carrying any
/// forwarding header, is not local.
pub async fn loopback_metrics(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let ip = peer.ip().to_canonical();
    let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip", "via"]
        .iter()
        .any(|name| headers.contains_key(*name));
    let proxy = state
        .config
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&ip));
    if state.config.metrics_addr.is_some() || !ip.is_loopback() || forwarded || proxy {
        return StatusCode::NOT_FOUND.into_response();
    }
    metrics_text(&state).await.into_response()
}

/// How long a scrape waits for the store's size before leaving it out: a store in trouble
/// must not take the rest of the metrics with it.
const SIZE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The metrics in the Prometheus text format. The store's size is asked of the store on a
/// blocking thread: for PostgreSQL it is a query.
async fn metrics_text(state: &AppState) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let store = state.store.clone();
    let size = tokio::task::spawn_blocking(move || store.stored_bytes().ok());
    let storage_bytes = tokio::time::timeout(SIZE_WAIT, size)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let text = metrics::render(metrics::Now {
        connections: state.sessions.len(),
        documents: state.hub.room_count(),
        presence: state.hub.presence_count(),
        storage_bytes,
    });
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// The router of the separate metrics listener (`--metrics-addr`): `/metrics` for anyone who
/// can reach that address.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(state): State<AppState>| async move { metrics_text(&state).await }),
        )
        .with_state(state)
}
