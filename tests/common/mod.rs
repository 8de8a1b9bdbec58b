//! Test helpers: a real Tandem server on an ephemeral loopback port, and protocol peers that
//! speak the Yjs wire protocol over real WebSockets (tokio-tungstenite + yrs).
#![allow(dead_code)]

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
        TestServer { addr, state, data_dir }
    }

    pub fn ws_url(&self, id: &str) -> String {
        format!("ws://{}/ws/{id}", self.addr)
    }

    /// Waits until `check` holds, or fails the test after [`PATIENCE`].
    pub async fn eventually(&self, what: &str, check: impl Fn(&AppState) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !check(&self.state) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
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

/// A protocol client with its own replica, like a browser tab or a stock Yjs client.
pub struct Peer {
    pub ws: Socket,
    pub awareness: Awareness,
    /// Awareness states seen from others: client id -> latest JSON ("null" once removed).
    pub seen_presence: std::collections::HashMap<u64, String>,
}

impl Peer {
    /// Connects and completes the handshake (both sync steps).
    pub async fn join(server: &TestServer, id: &DocId) -> Peer {
        Self::join_as(server, id, None).await
    }

    pub async fn join_as(server: &TestServer, id: &DocId, client: Option<u64>) -> Peer {
        let (ws, _) = tokio_tungstenite::connect_async(server.ws_url(id.as_str()))
            .await
            .expect("WebSocket connects");
        let mut peer = Peer {
            ws,
            awareness: Awareness::new(doc_with_client(client)),
            seen_presence: Default::default(),
        };
        let sv = peer.doc().transact().state_vector();
        peer.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        peer.pump_until("sync step 2", |_, m| matches!(m, Some(Message::Sync(SyncMessage::SyncStep2(_)))))
            .await;
        peer
    }

    pub fn doc(&self) -> &Doc {
        self.awareness.doc()
    }

    pub fn text(&self) -> String {
        let txn = self.doc().transact();
        txn.get_text(protocol::CONTENT).unwrap().get_string(&txn)
    }

    pub async fn send(&mut self, message: Message) {
        self.ws.send(WsMessage::Binary(message.encode_v1().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, frame: WsMessage) {
        let _ = self.ws.send(frame).await;
    }

    /// Inserts text locally and sends the update, as an editor would.
    pub async fn insert(&mut self, index: u32, chunk: &str) {
        let update = {
            let text = self.doc().get_or_insert_text(protocol::CONTENT);
            let mut txn = self.doc().transact_mut();
            text.insert(&mut txn, index, chunk);
            txn.encode_update_v1()
        };
        self.send(Message::Sync(SyncMessage::Update(update))).await;
    }

    pub async fn set_presence(&mut self, json: &str) {
        self.awareness.set_local_state_raw(json);
        let update = self.awareness.update().unwrap();
        self.send(Message::Awareness(update)).await;
    }

    /// Reads and applies incoming messages until `done` holds (checked after each message and
    /// once before reading), answering the server's sync step 1 like a real client.
    pub async fn pump_until(&mut self, what: &str, done: impl Fn(&Peer, Option<&Message>) -> bool) {
        if done(self, None) {
            return;
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; text is {:?}", self.text()));
            let frame = match frame {
                Some(Ok(WsMessage::Binary(frame))) => frame,
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                other => panic!("connection ended while waiting for {what}: {other:?}"),
            };
            let mut decoder = DecoderV1::new(Cursor::new(&frame));
            let messages: Vec<Message> = MessageReader::new(&mut decoder).map(|m| m.unwrap()).collect();
            for message in messages {
                self.apply(&message).await;
                if done(self, Some(&message)) {
                    return;
                }
            }
        }
    }

    async fn apply(&mut self, message: &Message) {
        match message {
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let update = self.doc().transact().encode_state_as_update_v1(sv);
                self.send(Message::Sync(SyncMessage::SyncStep2(update))).await;
            }
            Message::Sync(SyncMessage::SyncStep2(update)) | Message::Sync(SyncMessage::Update(update)) => {
                let update = Update::decode_v1(update).unwrap();
                self.doc().transact_mut().apply_update(update).unwrap();
            }
            Message::Awareness(update) => {
                for (client, entry) in &update.clients {
                    self.seen_presence.insert(client.get(), entry.json.to_string());
                }
                self.awareness.apply_update(update.clone()).unwrap();
            }
            _ => {}
        }
    }

    pub async fn wait_for_text(&mut self, expected: &str) {
        let expected = expected.to_string();
        self.pump_until(&format!("text {expected:?}"), move |p, _| p.text() == expected).await;
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
        let _ = tokio::time::timeout(PATIENCE, async { while let Some(Ok(_)) = self.ws.next().await {} }).await;
    }
}
