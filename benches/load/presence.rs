//! Many people in one document moving their carets: what relaying presence costs the server.

use crate::client;
use crate::fanout::join_many;
use crate::target::Target;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tandem::protocol::presence::{sticky_at, RelativePosition};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::sync::awareness::AwarenessUpdateEntry;
use yrs::sync::{AwarenessUpdate, Message};
use yrs::updates::encoder::Encode;
use yrs::{Assoc, Transact};

pub struct PresenceLoad {
    /// Server CPU time over wall time, while everyone moves.
    pub cpu_share: f64,
    /// Presence frames the people received a second.
    pub received_per_second: f64,
}

/// `people` connections to one document, each moving its caret once a second (spread evenly
/// over the second), for `seconds`; measured after the first two.
pub async fn carets(target: &Target, people: usize, seconds: u64) -> PresenceLoad {
    let doc = target.new_doc();
    let text = {
        let (mut ws, replica) = client::join(&target.url(&doc, false)).await;
        let frame = client::append(&replica, &"Lorem ipsum dolor sit amet. ".repeat(40));
        ws.send(WsMessage::Binary(frame.into())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        replica
    };
    let positions: Vec<String> = {
        let content = text.get_or_insert_text(tandem::protocol::CONTENT);
        let txn = text.transact();
        (0..1000u32)
            .map(|at| {
                let sticky = sticky_at(&content, &txn, at, Assoc::After);
                serde_json::to_string(&RelativePosition::from_sticky(&sticky)).unwrap()
            })
            .collect()
    };
    let positions = Arc::new(positions);
    let received = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::with_capacity(people);
    for (i, ws) in join_many(target, &doc, people)
        .await
        .into_iter()
        .enumerate()
    {
        let (positions, received, stop) = (positions.clone(), received.clone(), stop.clone());
        let phase = Duration::from_micros(1_000_000 * i as u64 / people as u64);
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let reading = tokio::spawn(async move {
                while let Some(Ok(frame)) = stream.next().await {
                    if matches!(&frame, WsMessage::Binary(f) if f.first() == Some(&1)) {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            let client = yrs::ClientID::new(1_000_000 + i as u64);
            let mut ticks = tokio::time::interval_at(
                tokio::time::Instant::now() + phase,
                Duration::from_secs(1),
            );
            let mut clock = 0u32;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                clock += 1;
                let at = &positions[(i * 7 + clock as usize) % positions.len()];
                let json = format!(
                    r##"{{"user":{{"name":"Person {i}","color":"#3366aa"}},"cursor":{{"anchor":{at},"head":{at}}}}}"##
                );
                let update = AwarenessUpdate {
                    clients: [(client, AwarenessUpdateEntry { clock, json: json.into() })].into(),
                };
                let frame = Message::Awareness(update).encode_v1();
                if sink.send(WsMessage::Binary(frame.into())).await.is_err() {
                    break;
                }
            }
            reading.abort();
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu_before, received_before) = (target.cpu(), received.load(Ordering::Relaxed));
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds.saturating_sub(2).max(1))).await;
    let wall = started.elapsed().as_secs_f64();
    let cpu = (target.cpu() - cpu_before).as_secs_f64();
    let frames = received.load(Ordering::Relaxed) - received_before;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    PresenceLoad {
        cpu_share: cpu / wall,
        received_per_second: frames as f64 / wall,
    }
}
