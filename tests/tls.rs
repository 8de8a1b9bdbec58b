//! HTTPS and `wss://` on the main port: a self-signed certificate made here (rcgen), the
//! server started with it, and clients that trust it sync a document over TLS.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tandem::server::config::Config;
use tandem::server::{serve, tls, AppState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::{GetString, ReadTxn, Text, Transact, Update};

const PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

struct Tls {
    addr: SocketAddr,
    connector: TlsConnector,
    state: AppState,
    _dir: tempfile::TempDir,
}

async fn start() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();

    let state = AppState::open(Config::for_tests(&dir.path().join("data"))).unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let config = tls::load_config(&cert, &key).expect("the certificate loads");
    let listener = tls::TlsListener::new(tcp, config, state.shutdown.clone()).unwrap();
    tokio::spawn(serve(listener, state.clone()));

    let mut roots = RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Tls {
        addr,
        connector: TlsConnector::from(Arc::new(client)),
        state,
        _dir: dir,
    }
}

impl Tls {
    /// A fresh document's edit link: only a link the server made opens anything.
    async fn new_doc(&self) -> String {
        let links = self.state.links.clone();
        let made = tokio::task::spawn_blocking(move || links.create())
            .await
            .unwrap();
        made.expect("a document is made").1.to_string()
    }

    async fn connect(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        self.connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake")
    }

    async fn websocket(
        &self,
        id: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
        let url = format!("wss://localhost:{}/ws/{id}", self.addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, self.connect().await)
            .await
            .expect("WebSocket over TLS");
        ws
    }

    /// A WebSocket over TLS from another loopback address (any of 127.0.0.0/8 is this machine).
    async fn websocket_from(
        &self,
        from: [u8; 4],
        id: &str,
    ) -> tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>> {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        let tcp = socket.connect(self.addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let url = format!("wss://localhost:{}/ws/{id}", self.addr.port());
        let (ws, _) = tokio_tungstenite::client_async(url, tls)
            .await
            .expect("WebSocket over TLS");
        ws
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_syncs_over_wss_with_the_certificate_trusted() {
    let server = start().await;
    let id = server.new_doc().await;
    let mut writer = server.websocket(&id).await;
    let mut reader = server.websocket(&id).await;

    let doc = tandem::protocol::new_doc();
    let update = {
        let text = doc.get_or_insert_text(tandem::protocol::CONTENT);
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "sent over TLS");
        txn.encode_update_v1()
    };
    let frame = tandem::protocol::wire::encode(&Message::Sync(SyncMessage::Update(update)));
    writer.send(WsMessage::Binary(frame.into())).await.unwrap();

    let replica = tandem::protocol::new_doc();
    let text = replica.get_or_insert_text(tandem::protocol::CONTENT);
    tokio::time::timeout(PATIENCE, async {
        while text.get_string(&replica.transact()) != "sent over TLS" {
            let Some(Ok(WsMessage::Binary(frame))) = reader.next().await else {
                continue;
            };
            if let Ok(Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update))) =
                tandem::protocol::wire::decode(&frame)
            {
                let update = Update::decode_v1(&update).unwrap();
                replica.transact_mut().apply_update(update).unwrap();
            }
        }
    })
    .await
    .expect("the reader gets the text over wss://");
    assert_eq!(
        replica.transact().state_vector(),
        doc.transact().state_vector()
    );

    // Pages over HTTPS too.
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(server.connect().await))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = axum::http::Request::get("/healthz")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn plain_http_and_untrusted_clients_get_nothing_and_the_server_goes_on() {
    let server = start().await;
    // Plain HTTP on the TLS port: no HTTP answer.
    let mut plain = TcpStream::connect(server.addr).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );

    // A client that does not trust the certificate fails its handshake.
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let untrusting = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let refused = TlsConnector::from(Arc::new(untrusting))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err());

    // Connections that never start their handshake, more than the whole server allows at
    // once, from one address: they hold up only that address.
    let _idle: Vec<TcpStream> = futures_util::future::join_all(
        (0..tls::MAX_HANDSHAKES + 20).map(|_| TcpStream::connect(server.addr)),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    // Served before any of the stalled handshakes could have timed out and made room.
    let id = server.new_doc().await;
    let _ws = tokio::time::timeout(
        tls::HANDSHAKE_TIMEOUT / 2,
        server.websocket_from([127, 0, 0, 9], &id),
    )
    .await
    .expect("another address is served while one stalls its handshakes");
}

#[test]
fn bad_certificate_files_are_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing.pem");

    let error = |cert: &std::path::Path, key: &std::path::Path| {
        tls::load_config(cert, key)
            .expect_err("refused")
            .to_string()
    };
    assert!(error(&missing, &key).contains("cannot read the certificate chain"));
    assert!(error(&empty, &key).contains("holds no certificate"));
    assert!(error(&cert, &missing).contains("cannot read the private key"));
    // A certificate where the key should be.
    assert!(error(&cert, &cert).contains("cannot read the private key"));
    // A key that is not the certificate's.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_key = dir.path().join("other.pem");
    std::fs::write(&other_key, other.signing_key.serialize_pem()).unwrap();
    assert!(tls::load_config(&cert, &other_key).is_err());
    assert!(tls::load_config(&cert, &key).is_ok());
}
