//! Many idle connections: how fast they open, and what each costs the server in memory.

use crate::client;
use crate::reader;
use crate::target::Target;
use futures_util::stream::FuturesUnordered;
use futures_util::SinkExt;
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub struct Idle {
    /// Connections opened and synchronised a second, `concurrency` joining at a time.
    pub per_second: f64,
    /// Resident memory above the server's before, per connection, once they are idle.
    pub kib_each: f64,
    /// The server's CPU time (user and system) per connection opened.
    pub cpu_each: Duration,
}

/// `count` connections, spread evenly over `docs` documents of about `doc_bytes` bytes each
/// (written by one more connection per document, open throughout, before measuring).
pub async fn idle(
    target: &Target,
    count: usize,
    docs: usize,
    doc_bytes: usize,
    concurrency: usize,
) -> Idle {
    let names: Vec<String> = (0..docs).map(|_| target.new_doc()).collect();
    // A server that keeps a document only while someone has it open keeps it for these.
    let mut writers = Vec::new();
    if doc_bytes > 0 {
        let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\n";
        let text = line.repeat(doc_bytes.div_ceil(line.len()));
        for name in &names {
            let (mut ws, replica) = client::join(&target.url(name, false)).await;
            ws.send(WsMessage::Binary(client::append(&replica, &text).into()))
                .await
                .unwrap();
            writers.push(ws);
        }
        // Each newcomer must receive the whole text, or the figure is not the one asked for.
        for name in &names {
            let started = Instant::now();
            loop {
                let (_, update) = client::join_raw(&target.url(name, false)).await;
                if update.len() >= doc_bytes {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "a document never filled"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // Each document opened once first: what is measured is connections, not documents.
    // Joined by lean readers (see `reader`): a WebSocket client library and a replica per
    // connection would spend the shared cores on the load generator, not the server.
    let mut open = Vec::with_capacity(count);
    for name in &names {
        open.push(reader::join(&target.addr, &target.path(name)).await);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = target.rss_kib();
    let cpu_before = target.cpu();
    let started = Instant::now();
    let mut joining = FuturesUnordered::new();
    for i in docs..count {
        if joining.len() >= concurrency {
            open.push(joining.next().await.unwrap());
        }
        let (addr, path) = (target.addr.clone(), target.path(&names[i % docs]));
        joining.push(async move { reader::join(&addr, &path).await });
    }
    while let Some(ws) = joining.next().await {
        open.push(ws);
    }
    let opened = count.saturating_sub(docs).max(1);
    // The lean readers never answer the server's pings: past its silence limit (60 s) it
    // would close the first of them before their memory is read.
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "opening took too long for the memory figure to hold"
    );
    let per_second = opened as f64 / started.elapsed().as_secs_f64();
    let cpu_each = (target.cpu() - cpu_before) / opened as u32;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = target.rss_kib();
    drop(open);
    drop(writers);
    Idle {
        per_second,
        kib_each: after.saturating_sub(before) as f64 / opened as f64,
        cpu_each,
    }
}
