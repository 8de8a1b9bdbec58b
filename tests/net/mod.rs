//! Real HTTP and WebSocket clients that connect from a chosen loopback address (any address in
//! 127.0.0.0/8 is this machine), so tests can be several clients, or a proxy, at once.
#![allow(dead_code)]

use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// A TCP connection to `to` from `from` (port chosen by the system).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    assert!(from.is_loopback() && to.ip().is_loopback(), "loopback only");
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.expect("the server accepts")
}

pub struct HttpResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

/// `GET path` over HTTP/1.1 from `from`, with extra `headers`; reads the whole body.
pub async fn get_from(
    from: IpAddr,
    server: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> HttpResponse {
    let stream = connect_from(from, server).await;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut request = axum::http::Request::get(path).header("host", server.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(crate::common::PATIENCE, sender.send_request(request))
        .await
        .expect("the server answers")
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `GET path` from 127.0.0.1.
pub async fn get(server: SocketAddr, path: &str) -> HttpResponse {
    get_from(IpAddr::from([127, 0, 0, 1]), server, path, &[]).await
}

pub type Socket = WebSocketStream<TcpStream>;

/// Opens a WebSocket to `path` from `from` with extra `headers`: the socket, or the HTTP
/// status and headers of the refusal.
pub async fn ws_from(
    from: IpAddr,
    server: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, (StatusCode, HeaderMap)> {
    let stream = connect_from(from, server).await;
    let mut request = format!("ws://{server}{path}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().append(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    match tokio::time::timeout(
        crate::common::PATIENCE,
        tokio_tungstenite::client_async(request, stream),
    )
    .await
    .expect("the server answers the upgrade")
    {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err((response.status(), response.headers().clone()))
        }
        Err(other) => panic!("the upgrade failed without an answer: {other}"),
    }
}
