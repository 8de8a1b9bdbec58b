//! The accept loop: each connection served by hyper with a timer, so that a client sending its
//! request head slowly (or not at all, between keep-alive requests) is cut off after
//! [`HEADER_READ_TIMEOUT`] instead of holding a connection for ever. `axum::serve` sets no timer,
//! which leaves hyper's header timeout off. Shutdown stops accepting, lets requests in flight
//! finish for at most [`SHUTDOWN_GRACE`], and drops the rest; WebSocket sessions, upgraded away
//! from their HTTP connection, are closed by the caller.

use axum::extract::connect_info::IntoMakeServiceWithConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// Longest a client may take to send a request head, also the next one on a kept-alive
/// connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest requests in flight are waited for at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A connection whose small writes can be sent at once.
pub trait NoDelay {
    /// Turns Nagle's algorithm off. A keystroke is a frame of a few dozen bytes: with Nagle,
    /// one sent while the previous is unacknowledged waits for that acknowledgement, which the
    /// other side may delay by 40 ms.
    fn no_delay(&self);
}

impl NoDelay for tokio::net::TcpStream {
    fn no_delay(&self) {
        if let Err(error) = self.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY could not be set");
        }
    }
}

impl NoDelay for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn no_delay(&self) {
        self.get_ref().0.no_delay();
    }
}

/// Accepts on `listener` and serves `app` until `shutdown` fires. Handlers see the peer's
/// address as `ConnectInfo<SocketAddr>`.
pub async fn serve_connections<L>(mut listener: L, app: Router, shutdown: CancellationToken)
where
    L: Listener<Addr = SocketAddr>,
    L::Io: NoDelay,
{
    let mut make_service: IntoMakeServiceWithConnectInfo<Router, SocketAddr> =
        app.into_make_service_with_connect_info::<SocketAddr>();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (io, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        io.no_delay();
        let Ok(service) = make_service.call(peer).await;
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests did not finish in time");
    }
}
