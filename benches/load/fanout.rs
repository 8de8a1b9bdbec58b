//! One writer, many readers of one document: how many deliveries a second the server makes,
//! what each costs it, and how long an update takes to reach everyone.
//!
//! "As fast as acknowledged": the writer keeps at most `window` updates unacknowledged, an
//! update being acknowledged when the first reader has it. Every server is measured the
//! same way, and on Tandem that reader receiving it means it is durable.

use crate::client::{self, Socket};
use crate::reader;
use crate::target::Target;
use futures_util::stream::{FuturesUnordered, SplitSink};
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// Opens `count` connections to `doc`, at most 64 joining at a time.
pub async fn join_many(target: &Target, doc: &str, count: usize) -> Vec<Socket> {
    let url = target.url(doc, false);
    let mut joining = FuturesUnordered::new();
    let mut joined = Vec::with_capacity(count);
    for _ in 0..count {
        if joining.len() >= 64 {
            joined.push(joining.next().await.unwrap());
        }
        let url = url.clone();
        joining.push(async move { client::join(&url).await.0 });
    }
    while let Some(ws) = joining.next().await {
        joined.push(ws);
    }
    joined
}

/// Opens `count` lean readers of `doc`, at most 64 joining at a time.
pub async fn readers(target: &Target, doc: &str, count: usize) -> Vec<reader::Reader> {
    let path = target.path(doc);
    let mut joining = FuturesUnordered::new();
    let mut joined = Vec::with_capacity(count);
    for _ in 0..count {
        if joining.len() >= 64 {
            joined.push(joining.next().await.unwrap());
        }
        let (addr, path) = (target.addr.clone(), path.clone());
        joining.push(async move { reader::join(&addr, &path).await });
    }
    while let Some(joined_one) = joining.next().await {
        joined.push(joined_one);
    }
    joined
}

/// Reads `reader` until `stop` or the end of the stream, calling `seen` with how many updates
/// each read completed.
async fn count_updates(
    mut reader: reader::Reader,
    stop: CancellationToken,
    mut seen: impl FnMut(u64),
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => break,
            n = reader.stream.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
        };
        let mut read = reader::Seen::default();
        reader.scanner.feed(&buf[..n], &mut read);
        if read.updates > 0 {
            seen(read.updates);
        }
    }
}

/// What [`throughput`] measured.
pub struct Throughput {
    pub updates_per_second: f64,
    pub deliveries_per_second: f64,
    pub cpu_per_delivery: Duration,
}

/// The writer as fast as acknowledged, with `readers` readers, for `seconds`.
pub async fn throughput(target: &Target, count: usize, window: u64, seconds: u64) -> Throughput {
    let doc = target.new_doc();
    let delivered = Arc::new(AtomicU64::new(0));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(Notify::new());
    let stop = CancellationToken::new();
    let readers = count;
    let mut tasks = Vec::with_capacity(readers);
    for (i, reader) in self::readers(target, &doc, readers)
        .await
        .into_iter()
        .enumerate()
    {
        let (delivered, acknowledged, heard) =
            (delivered.clone(), acknowledged.clone(), heard.clone());
        tasks.push(tokio::spawn(count_updates(
            reader,
            stop.clone(),
            move |n| {
                delivered.fetch_add(n, Ordering::Relaxed);
                if i == 0 {
                    acknowledged.fetch_add(n, Ordering::Release);
                    heard.notify_one();
                }
            },
        )));
    }
    let (mut writer, replica) = writer(target, &doc, &stop).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu_before, delivered_before) = (target.cpu(), delivered.load(Ordering::Relaxed));
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        while sent - acknowledged.load(Ordering::Acquire) >= window {
            if tokio::time::timeout(Duration::from_secs(30), heard.notified())
                .await
                .is_err()
            {
                panic!("no acknowledgement for 30 s");
            }
        }
        writer
            .send(WsMessage::Binary(client::keystroke(&replica).into()))
            .await
            .unwrap();
        sent += 1;
    }
    let typing = started.elapsed();
    // What was sent reaches everyone before the figures are read.
    let expected = delivered_before + sent * readers as u64;
    let drained = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected
        && drained.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed();
    let cpu = target.cpu() - cpu_before;
    let deliveries = delivered.load(Ordering::Relaxed) - delivered_before;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    if deliveries < sent * readers as u64 {
        println!(
            "  only {deliveries} of {} deliveries arrived",
            sent * readers as u64
        );
    }
    Throughput {
        updates_per_second: sent as f64 / typing.as_secs_f64(),
        deliveries_per_second: deliveries as f64 / wall.as_secs_f64(),
        cpu_per_delivery: cpu / deliveries.max(1) as u32,
    }
}

/// What [`latency`] measured.
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    /// Deliveries made of those owed.
    pub delivered: u64,
    pub owed: u64,
    /// Server CPU time over wall time while the writer typed.
    pub cpu_share: f64,
}

/// The writer at `rate` updates a second for `seconds`, `readers` readers: how long each
/// update takes from being sent to reaching each reader.
pub async fn latency(target: &Target, readers: usize, rate: u64, seconds: u64) -> Latency {
    let doc = target.new_doc();
    let updates = (rate * seconds) as usize;
    let origin = Instant::now();
    let sent_at: Arc<Vec<AtomicU64>> = Arc::new((0..updates).map(|_| AtomicU64::new(0)).collect());
    let delivered = Arc::new(AtomicU64::new(0));
    let stop = CancellationToken::new();
    let mut tasks = Vec::with_capacity(readers);
    for reader in self::readers(target, &doc, readers).await {
        let (sent_at, delivered, stop) = (sent_at.clone(), delivered.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(sent_at.len());
            count_updates(reader, stop, |n| {
                let now = origin.elapsed().as_micros() as u64;
                for _ in 0..n {
                    if let Some(sent) = sent_at.get(latencies.len()) {
                        latencies.push(now.saturating_sub(sent.load(Ordering::Acquire)));
                    }
                }
                delivered.fetch_add(n, Ordering::Relaxed);
            })
            .await;
            latencies
        }));
    }
    let (mut writer, replica) = writer(target, &doc, &stop).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu_before = target.cpu();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for slot in sent_at.iter() {
        ticks.tick().await;
        let frame = client::keystroke(&replica);
        slot.store(origin.elapsed().as_micros() as u64, Ordering::Release);
        writer.send(WsMessage::Binary(frame.into())).await.unwrap();
    }
    let cpu_share = (target.cpu() - cpu_before).as_secs_f64() / started.elapsed().as_secs_f64();
    let owed = (updates * readers) as u64;
    let drained = Instant::now();
    while delivered.load(Ordering::Relaxed) < owed && drained.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    let mut all = Vec::with_capacity(owed as usize);
    for task in tasks {
        all.extend(task.await.unwrap_or_default());
    }
    all.sort_unstable();
    let micros = |p| Duration::from_micros(client::percentile(&all, p));
    Latency {
        p50: micros(50.0),
        p99: micros(99.0),
        max: micros(100.0),
        delivered: delivered.load(Ordering::Relaxed),
        owed,
        cpu_share,
    }
}

/// Durable updates a second from one connection sending back to back, at most `window`
/// unconfirmed: Tandem's "saved" confirmations, which come in order once each is stored.
pub async fn durable_writes(target: &Target, window: u64, seconds: u64) -> f64 {
    let doc = target.new_doc();
    let (ws, replica) = client::join(&target.url(&doc, true)).await;
    let (mut sink, mut stream) = ws.split();
    let confirmed = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(Notify::new());
    let reader = {
        let (confirmed, heard) = (confirmed.clone(), heard.clone());
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                if let WsMessage::Binary(frame) = frame {
                    if client::is_saved(&frame) {
                        confirmed.fetch_add(1, Ordering::Release);
                        heard.notify_one();
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        if sent - confirmed.load(Ordering::Acquire) >= window {
            if tokio::time::timeout(Duration::from_secs(30), heard.notified())
                .await
                .is_err()
            {
                panic!("no confirmation for 30 s");
            }
            continue;
        }
        sink.feed(WsMessage::Binary(client::keystroke(&replica).into()))
            .await
            .unwrap();
        sent += 1;
        if sent.is_multiple_of(16) {
            sink.flush().await.unwrap();
        }
    }
    sink.flush().await.unwrap();
    while confirmed.load(Ordering::Acquire) < sent {
        if tokio::time::timeout(Duration::from_secs(30), heard.notified())
            .await
            .is_err()
        {
            panic!("confirmations stopped");
        }
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    reader.abort();
    rate
}

/// The writer's connection, whose incoming frames are read and dropped until `stop`.
async fn writer(
    target: &Target,
    doc: &str,
    stop: &CancellationToken,
) -> (SplitSink<Socket, WsMessage>, yrs::Doc) {
    let (ws, replica) = client::join(&target.url(doc, false)).await;
    let (sink, mut stream) = ws.split();
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                frame = stream.next() => if !matches!(frame, Some(Ok(_))) { break },
            }
        }
    });
    (sink, replica)
}
