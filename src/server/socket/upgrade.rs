//! The HTTP/1.1 upgrade to a WebSocket (RFC 6455 §4.2), as an axum extractor.
//!
//! This replaces axum's `WebSocketUpgrade`, whose socket hides the connection underneath;
//! the session needs that connection to read past a refused message (see
//! [`super::Connection::linger`]).

use super::{Socket, Watched};
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use futures_util::future::{Either, FutureExt};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

/// A request that asks for a WebSocket and a connection that can become one.
pub struct Upgrade {
    accept: HeaderValue,
    on_upgrade: hyper::upgrade::OnUpgrade,
}

/// Why a request to the WebSocket endpoint cannot be upgraded.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("not a WebSocket upgrade request: {0}")]
    NotWebSocket(&'static str),
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        let status = match self {
            UpgradeError::NotWebSocket(_) => StatusCode::BAD_REQUEST,
            UpgradeError::NotUpgradable => StatusCode::UPGRADE_REQUIRED,
        };
        tracing::info!(%status, error = %self, "WebSocket upgrade refused");
        (status, self.to_string()).into_response()
    }
}

fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or_default()
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = UpgradeError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, UpgradeError> {
        use UpgradeError::NotWebSocket;
        if parts.version != Version::HTTP_11 {
            return Err(NotWebSocket("HTTP/1.1 is required"));
        }
        if parts.method != Method::GET {
            return Err(NotWebSocket("the method must be GET"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(NotWebSocket("Connection does not include upgrade"));
        }
        if !has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(NotWebSocket("Upgrade is not websocket"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13"))
        {
            return Err(NotWebSocket("Sec-WebSocket-Version must be 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or(NotWebSocket("Sec-WebSocket-Key is missing"))?;
        let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .expect("base64 is a valid header value");
        let on_upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Upgrade { accept, on_upgrade })
    }
}

impl Upgrade {
    /// Answers "101 Switching Protocols" and, once the connection has switched, runs
    /// `session` on it in a task of its own.
    pub fn on_upgrade<F, Fut>(self, config: WebSocketConfig, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let switched = async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let io = Watched::new(TokioIo::new(upgraded));
                    Some(WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await)
                }
                Err(error) => {
                    tracing::info!(%error, "WebSocket upgrade failed");
                    None
                }
            }
        };
        // Two stages, so that the session's future takes the switch's place in the task
        // rather than sitting beside what the switch used up (the settings, the session's
        // arguments): the task is a connection's memory for as long as it is open.
        tokio::spawn(switched.then(|socket| match socket {
            Some(socket) => Either::Left(session(socket)),
            None => Either::Right(std::future::ready(())),
        }));
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, HeaderValue::from_static("upgrade"))
            .header(header::UPGRADE, HeaderValue::from_static("websocket"))
            .header(header::SEC_WEBSOCKET_ACCEPT, self.accept)
            .body(Body::empty())
            .expect("a valid response")
    }
}
