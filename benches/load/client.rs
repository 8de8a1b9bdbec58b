//! The load generator's side of the Yjs protocol: joining a document, telling the frames a
//! server sends apart, and making one-character updates.

use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tandem::protocol;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Text, Transact, Update};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `url` and completes the handshake: sync step 1 out, the server's sync step 2 applied.
pub async fn join(url: &str) -> (Socket, yrs::Doc) {
    let (ws, update) = join_raw(url).await;
    let replica = protocol::new_doc();
    replica
        .transact_mut()
        .apply_update(Update::decode_v1(&update).unwrap())
        .unwrap();
    (ws, replica)
}

/// Opens `url`, sends an empty sync step 1 and returns the server's sync step 2 as received:
/// the whole document, not yet decoded.
pub async fn join_raw(url: &str) -> (Socket, Vec<u8>) {
    let mut ws = connect(url).await;
    let step1 = Message::Sync(SyncMessage::SyncStep1(Default::default())).encode_v1();
    ws.send(WsMessage::Binary(step1.into())).await.unwrap();
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(120), ws.next()).await {
            Ok(Some(Ok(WsMessage::Binary(frame)))) => frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("handshake failed: {other:?}"),
        };
        let mut decoder = DecoderV1::new(Cursor::new(&frame));
        for message in MessageReader::new(&mut decoder) {
            if let Ok(Message::Sync(SyncMessage::SyncStep2(update))) = message {
                return (ws, update);
            }
        }
    }
}

/// Opens `url` without a handshake, retrying while the server is momentarily out of backlog.
pub async fn connect(url: &str) -> Socket {
    let mut tries = 0;
    loop {
        match tokio_tungstenite::connect_async_with_config(url, None, true).await {
            Ok((ws, _)) => return ws,
            Err(error) if tries < 20 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let _ = error;
            }
            Err(error) => panic!("connecting to {url}: {error}"),
        }
    }
}

/// Tandem's confirmation that a change is durable.
pub fn is_saved(frame: &[u8]) -> bool {
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    MessageReader::new(&mut decoder)
        .any(|m| matches!(m, Ok(Message::Custom(protocol::MSG_SAVED, _))))
}

/// One character typed at the end of `replica`'s text, as a frame.
pub fn keystroke(replica: &yrs::Doc) -> Vec<u8> {
    let text = replica.get_or_insert_text(protocol::CONTENT);
    let update = {
        let mut txn = replica.transact_mut();
        let at = text.len(&txn);
        text.insert(&mut txn, at, "x");
        txn.encode_update_v1()
    };
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// `text` appended to `replica`'s text, as a frame.
pub fn append(replica: &yrs::Doc, chunk: &str) -> Vec<u8> {
    let text = replica.get_or_insert_text(protocol::CONTENT);
    let update = {
        let mut txn = replica.transact_mut();
        let at = text.len(&txn);
        text.insert(&mut txn, at, chunk);
        txn.encode_update_v1()
    };
    Message::Sync(SyncMessage::Update(update)).encode_v1()
}

/// Percentile `p` (0–100) of sorted `values`.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}
