//! Test helpers: a real Tandem server on an ephemeral loopback port, and protocol peers that
//! speak the Yjs wire protocol over real WebSockets (tokio-tungstenite + yrs).
#![allow(dead_code)]

pub mod channel;
pub mod postgres;
pub mod raw;
pub mod redis;
pub mod trace;
pub mod updates;

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::Duration;
use tandem::doc_id::DocId;
use tandem::protocol;
use tandem::server::{config::Config, AppState};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::encoding::read::Cursor;
use yrs::sync::{Awareness, Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{ClientID, Doc, GetString, OffsetKind, Options, ReadTxn, Text, Transact, Update};

/// The link key test servers sharing a PostgreSQL database are given (32 bytes, base64).
pub const TEST_LINK_KEY: &str = "dGFuZGVtIHRlc3QgbGluayBrZXksIDMyIGJ5dGVzISE=";

/// Upper bound for any single wait in a test; tests poll, they never sleep for fixed times.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: tempfile::TempDir,
}

impl TestServer {
    /// A server in this process with a fresh SQLite store in a temporary directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(data_dir.path());
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::open(config).expect("store opens");
        tokio::spawn(tandem::server::serve(listener, state.clone()));
        TestServer {
            addr,
            state,
            data_dir,
        }
    }

    pub fn ws_url(&self, id: &str) -> String {
        format!("ws://{}/ws/{id}", self.addr)
    }

    /// A fresh document's edit link: only a link the server made opens anything.
    pub async fn new_doc(&self) -> DocId {
        self.new_doc_links().await.0
    }

    /// A fresh document's edit link and view link.
    pub async fn new_doc_links(&self) -> (DocId, DocId) {
        let links = self.state.links.clone();
        tokio::task::spawn_blocking(move || {
            let (doc, edit) = links.create().expect("a document is made");
            let view = links.of(&doc).expect("its links are read").view;
            (edit, view.expect("a new document has a view link"))
        })
        .await
        .unwrap()
    }

    /// The internal id of the document `token` opens, as the store keeps it.
    pub async fn internal_id(&self, token: &DocId) -> DocId {
        let links = self.state.links.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || links.open(&token))
            .await
            .unwrap()
            .expect("the link is looked up")
            .expect("the link opens a document")
            .doc
    }

    /// Sends `request` through the whole router in this process, as from 127.0.0.1: its status,
    /// headers and body as sent (at most 64 MiB).
    pub async fn answer(
        &self,
        mut request: axum::http::Request<axum::body::Body>,
    ) -> (axum::http::StatusCode, axum::http::HeaderMap, Vec<u8>) {
        use tower::ServiceExt;
        let here = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(here));
        let response = tandem::server::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap();
        (status, headers, body.to_vec())
    }

    /// Waits until `check` holds, or fails the test after [`PATIENCE`].
    pub async fn eventually(&self, what: &str, check: impl Fn(&AppState) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(&self.state) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

pub fn random_id() -> DocId {
    DocId::from_random_bytes(rand::random())
}

fn doc_with_client(client: Option<u64>) -> Doc {
    let mut options = Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    };
    if let Some(client) = client {
        options.client_id = ClientID::new(client);
    }
    let doc = Doc::with_options(options);
    doc.get_or_insert_text(protocol::CONTENT);
    doc.get_or_insert_text(protocol::TITLE);
    doc
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub fn decode(frame: &[u8]) -> Vec<Message> {
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    MessageReader::new(&mut decoder)
        .map(|m| m.expect("server frames decode"))
        .collect()
}

/// A protocol client with its own replica, like a browser tab or a stock Yjs client.
pub struct Peer {
    pub ws: Socket,
    pub awareness: Awareness,
    /// Awareness states seen from others: client id -> latest JSON ("null" once removed).
    pub seen_presence: std::collections::HashMap<u64, String>,
    /// Every document update received from the server, in order.
    pub received: Vec<Vec<u8>>,
    /// Durability acknowledgements received (Tandem clients only).
    pub acks: usize,
}

impl Peer {
    /// Connects and completes the handshake (both sync steps).
    pub async fn join(server: &TestServer, id: &DocId) -> Peer {
        Self::join_as(server, id, None).await
    }

    pub async fn join_as(server: &TestServer, id: &DocId, client: Option<u64>) -> Peer {
        Self::join_url(&server.ws_url(id.as_str()), client).await
    }

    /// Connects to a WebSocket URL and completes the handshake.
    pub async fn join_url(url: &str, client: Option<u64>) -> Peer {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("WebSocket connects");
        let mut peer = Peer {
            ws,
            awareness: Awareness::new(doc_with_client(client)),
            seen_presence: Default::default(),
            received: Vec::new(),
            acks: 0,
        };
        peer.handshake().await;
        peer
    }

    /// Connects again with the same replica, as a client does after losing its connection:
    /// the handshake sends whatever the server lacks.
    pub async fn reconnect(&mut self, url: &str) {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("WebSocket connects");
        self.ws = ws;
        self.handshake().await;
    }

    /// [`Peer::reconnect`], returning the close code when the server refuses the connection
    /// (before its sync step 2) instead of failing.
    pub async fn try_reconnect(&mut self, url: &str) -> Result<(), u16> {
        let (ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
            .await
            .expect("WebSocket connects");
        self.ws = ws;
        let sv = self.doc().transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        self.pump_or_close(PATIENCE, "sync step 2", |_, m| {
            matches!(m, Some(Message::Sync(SyncMessage::SyncStep2(_))))
        })
        .await
    }

    async fn handshake(&mut self) {
        let sv = self.doc().transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        self.pump_until("sync step 2", |_, m| {
            matches!(m, Some(Message::Sync(SyncMessage::SyncStep2(_))))
        })
        .await;
    }

    pub fn doc(&self) -> &Doc {
        self.awareness.doc()
    }

    pub fn text(&self) -> String {
        let txn = self.doc().transact();
        txn.get_text(protocol::CONTENT).unwrap().get_string(&txn)
    }

    pub async fn send(&mut self, message: Message) {
        self.ws
            .send(WsMessage::Binary(message.encode_v1().into()))
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, frame: WsMessage) {
        let _ = self.ws.send(frame).await;
    }

    /// Inserts text locally and sends the update, as an editor would.
    pub async fn insert(&mut self, index: u32, chunk: &str) {
        let update = self.edit(index, 0, chunk);
        self.send(Message::Sync(SyncMessage::Update(update))).await;
    }

    /// Changes the local replica and returns the update, without sending it.
    pub fn edit(&self, index: u32, delete: u32, insert: &str) -> Vec<u8> {
        let text = self.doc().get_or_insert_text(protocol::CONTENT);
        let mut txn = self.doc().transact_mut();
        if delete > 0 {
            text.remove_range(&mut txn, index, delete);
        }
        if !insert.is_empty() {
            text.insert(&mut txn, index, insert);
        }
        txn.encode_update_v1()
    }

    pub async fn set_presence(&mut self, json: &str) {
        self.awareness.set_local_state_raw(json);
        let update = self.awareness.update().unwrap();
        self.send(Message::Awareness(update)).await;
    }

    /// Reads and applies incoming messages until `done` holds (checked once before reading
    /// and after each message), answering the server's sync step 1 like a real client.
    pub async fn pump_until(&mut self, what: &str, done: impl Fn(&Peer, Option<&Message>) -> bool) {
        self.pump_within(PATIENCE, what, done).await
    }

    /// [`Peer::pump_until`], waiting at most `patience`.
    pub async fn pump_within(
        &mut self,
        patience: Duration,
        what: &str,
        done: impl Fn(&Peer, Option<&Message>) -> bool,
    ) {
        if let Err(code) = self.pump_or_close(patience, what, done).await {
            panic!("connection ended while waiting for {what}: closed with {code}");
        }
    }

    /// [`Peer::pump_within`], returning the close code instead of failing when the server
    /// closes the connection with a close frame.
    pub async fn pump_or_close(
        &mut self,
        patience: Duration,
        what: &str,
        done: impl Fn(&Peer, Option<&Message>) -> bool,
    ) -> Result<(), u16> {
        if done(self, None) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    let text: String = self.text().chars().take(200).collect();
                    let what: String = what.chars().take(200).collect();
                    panic!("timed out waiting for {what}; text begins {text:?}")
                });
            let frame = match frame {
                Some(Ok(WsMessage::Binary(frame))) => frame,
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(Some(frame)))) => {
                    eprintln!("closed while waiting for {what}: {}", frame.reason);
                    return Err(u16::from(frame.code));
                }
                other => panic!("connection ended while waiting for {what}: {other:?}"),
            };
            for message in decode(&frame) {
                self.apply(&message).await;
                if done(self, Some(&message)) {
                    return Ok(());
                }
            }
        }
    }

    /// Applies one frame from the server.
    pub async fn handle_frame(&mut self, frame: &[u8]) {
        for message in decode(frame) {
            self.apply(&message).await;
        }
    }

    async fn apply(&mut self, message: &Message) {
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let update = self.doc().transact().encode_state_as_update_v1(sv);
                self.send(Message::Sync(SyncMessage::SyncStep2(update)))
                    .await;
            }
            Message::Sync(SyncMessage::SyncStep2(update))
            | Message::Sync(SyncMessage::Update(update)) => {
                self.received.push(update.clone());
                let update = Update::decode_v1(update).unwrap();
                self.doc().transact_mut().apply_update(update).unwrap();
            }
            Message::Awareness(update) => {
                for (client, entry) in &update.clients {
                    self.seen_presence
                        .insert(client.get(), entry.json.to_string());
                }
                self.awareness.apply_update(update.clone()).unwrap();
            }
            Message::Custom(protocol::MSG_SAVED, _) => self.acks += 1,
            _ => {}
        }
    }

    pub async fn wait_for_text(&mut self, expected: &str) {
        let expected = expected.to_string();
        self.pump_until(&format!("text {expected:?}"), move |p, _| {
            p.text() == expected
        })
        .await;
    }

    /// Reads until the server closes the connection; returns the close code.
    pub async fn expect_close(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("server did not close the connection"),
                Ok(Some(Ok(WsMessage::Close(Some(frame))))) => return u16::from(frame.code),
                Ok(Some(Ok(WsMessage::Close(None)))) => return u16::from(CloseCode::Status),
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(e))) => panic!("connection failed without a close frame: {e}"),
                Ok(None) => panic!("connection ended without a close frame"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        // Drain until the server acknowledges, so the server has seen the close.
        let _ = tokio::time::timeout(PATIENCE, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// The real `tandem` executable, started as a child process on an ephemeral loopback port.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub fn start(data_dir: &std::path::Path) -> ServerProcess {
        Self::start_with_args(data_dir, &[])
    }

    pub fn start_with_args(data_dir: &std::path::Path, args: &[&str]) -> ServerProcess {
        use std::io::{BufRead, BufReader};
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("TANDEM_LINK_KEY", TEST_LINK_KEY)
            // Tests make their documents through GET /new, many a minute; tests/http.rs
            // checks the limit at its default.
            .env("TANDEM_MAX_NEW_DOCUMENTS_PER_MINUTE", "100000")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("tandem starts");
        let stdout = child.stdout.take().unwrap();
        let (found, wait) = std::sync::mpsc::channel();
        // Read the announced address, then keep draining so the server never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let addr = line[at + "listening on http://".len()..]
                        .split(|c: char| c.is_whitespace() || c == '\u{1b}')
                        .next()
                        .unwrap()
                        .to_string();
                    if let Some(found) = found.take() {
                        let _ = found.send(addr);
                    }
                }
            }
        });
        let addr = wait
            .recv_timeout(PATIENCE)
            .expect("the server announces its address")
            .parse()
            .unwrap();
        ServerProcess { child, addr }
    }

    pub fn ws_url(&self, id: &DocId) -> String {
        format!("ws://{}/ws/{id}", self.addr)
    }

    /// A fresh document's edit link, made as a browser makes one: `GET /new`, and the link
    /// from where it redirects.
    pub fn new_doc(&self) -> DocId {
        new_doc_at(self.addr)
    }

    /// Sends SIGTERM and waits for the process to exit; returns how long that took and
    /// whether it exited successfully.
    pub fn terminate(mut self) -> (Duration, bool) {
        let started = std::time::Instant::now();
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        (started.elapsed(), status.success())
    }

    /// SIGKILL: the process gets no chance to clean up.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /new` on the server at `addr` (plain HTTP): the edit link it redirects to.
pub fn new_doc_at(addr: SocketAddr) -> DocId {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the server accepts");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET /new HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let location = answer
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location").then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("/new redirects: {answer}"));
    let token = location.strip_prefix("/d/").expect("to an edit link");
    DocId::parse(token).expect("a link")
}

/// Writes `title` and `content` into the document `edit` opens, through a real WebSocket peer,
/// and waits until another peer reads both back, so the server has them.
pub async fn write_title_and_text(server: &TestServer, edit: &DocId, title: &str, content: &str) {
    let mut author = Peer::join(server, edit).await;
    let update = {
        let doc = author.doc();
        let title_text = doc.get_or_insert_text(protocol::TITLE);
        let content_text = doc.get_or_insert_text(protocol::CONTENT);
        let mut txn = doc.transact_mut();
        title_text.insert(&mut txn, 0, title);
        content_text.insert(&mut txn, 0, content);
        txn.encode_update_v1()
    };
    author
        .send(Message::Sync(SyncMessage::Update(update)))
        .await;
    let mut reader = Peer::join(server, edit).await;
    let (title, content) = (title.to_string(), content.to_string());
    reader
        .pump_until("the document", move |peer, _| {
            let txn = peer.doc().transact();
            let seen = txn.get_text(protocol::TITLE).map(|t| t.get_string(&txn));
            peer.text() == content && seen.as_deref() == Some(title.as_str())
        })
        .await;
}

/// A figure from /proc/{pid}/status in KiB, like `VmRSS` (resident now) or `VmHWM` (peak).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Tests of a file that render pages took turns through this, when a page rendered while
/// another test server built its router could wait forever (about one run in six hung). The
/// causes were found since (see `tests/page_renders.rs`): the route list is now generated once
/// per process, and no page's `<title>` reads a signal on the server. Kept until the files
/// that use it have been run many times without it.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
