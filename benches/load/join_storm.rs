//! Many people opening one large document at once: how long until each holds it, and the
//! server's peak memory meanwhile.

use crate::client;
use crate::reader;
use crate::target::Target;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::{GetString, Transact};

pub struct JoinStorm {
    pub document_bytes: usize,
    pub p50: Duration,
    pub max: Duration,
    /// Peak resident memory above the server's before.
    pub peak_extra_kib: u64,
    pub cpu: Duration,
}

/// A document of about `megabytes` MB written in 256 KB pieces, then `joiners` joining at once.
pub async fn join_storm(target: &Target, megabytes: usize, joiners: usize) -> JoinStorm {
    let doc = target.new_doc();
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n";
    let chunk: String = line.repeat(256 * 1024 / line.len());
    let pieces = megabytes * 4;
    let document_bytes = {
        let (mut ws, replica) = client::join(&target.url(&doc, false)).await;
        for _ in 0..pieces {
            ws.send(WsMessage::Binary(client::append(&replica, &chunk).into()))
                .await
                .unwrap();
        }
        let len = replica
            .get_or_insert_text(tandem::protocol::CONTENT)
            .get_string(&replica.transact())
            .len();
        // Held by the server once a newcomer receives all of it (on Tandem, also stored).
        let started = Instant::now();
        loop {
            let (_, probe) = client::join(&target.url(&doc, false)).await;
            let held = probe
                .get_or_insert_text(tandem::protocol::CONTENT)
                .get_string(&probe.transact())
                .len();
            if held >= len {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the document never arrived"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let _ = ws.close(None).await;
        while ws.next().await.is_some() {}
        len
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, cpu_before) = (target.rss_kib(), target.cpu());
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (pid, peak) = (target.pid(), peak.clone());
        tokio::spawn(async move {
            for _ in 0..12_000 {
                peak.fetch_max(crate::target::rss_kib(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Joined by lean readers (see `reader`), each reading the answer straight into one buffer
    // of its size: a WebSocket client library copies 5 MB several times per joiner, and on
    // the two shared cores that copying, not the server, set the times.
    let (addr, path) = (target.addr.clone(), target.path(&doc));
    let started = Instant::now();
    let joins: Vec<_> = (0..joiners)
        .map(|_| {
            let (addr, path) = (addr.clone(), path.clone());
            tokio::spawn(async move {
                let (stream, frame) = reader::join_keeping(&addr, &path).await;
                (started.elapsed(), stream, frame)
            })
        })
        .collect();
    let mut received = Vec::with_capacity(joiners);
    for join in joins {
        received.push(join.await.unwrap());
    }
    let cpu = target.cpu() - cpu_before;
    sampler.abort();
    let mut times = Vec::with_capacity(joiners);
    let mut held = Vec::with_capacity(joiners);
    // Checked once all are in: decoding here is the load generator's work, not the server's.
    for (took, ws, frame) in received {
        let replica = tandem::protocol::new_doc();
        let mut decoder = DecoderV1::new(Cursor::new(&frame));
        for message in MessageReader::new(&mut decoder) {
            if let Ok(Message::Sync(SyncMessage::SyncStep2(update))) = message {
                replica
                    .transact_mut()
                    .apply_update(yrs::Update::decode_v1(&update).unwrap())
                    .unwrap();
            }
        }
        let len = replica
            .get_or_insert_text(tandem::protocol::CONTENT)
            .get_string(&replica.transact())
            .len();
        assert_eq!(len, document_bytes, "a joiner holds the whole document");
        times.push(took.as_micros() as u64);
        held.push(ws);
    }
    drop(held);
    times.sort_unstable();
    JoinStorm {
        document_bytes,
        p50: Duration::from_micros(client::percentile(&times, 50.0)),
        max: Duration::from_micros(client::percentile(&times, 100.0)),
        peak_extra_kib: peak.load(Ordering::Relaxed).saturating_sub(before),
        cpu,
    }
}
