//! Server memory and CPU under connection load, rerunnable by anyone:
//!
//! ```sh
//! cargo bench --no-default-features --features ssr --bench load
//! ```
//!
//! Starts the real `tandem` binary on loopback with a fresh data directory, then:
//! 1. opens 1,000 WebSocket connections (10 to each of 100 documents), each completing the
//!    Yjs handshake, and reads the server's resident memory once they are idle;
//! 2. writes a 5 MB document, then has 50 clients join it at once and waits until every one
//!    holds the whole text, reading the server's memory and CPU time around it.
//!
//! Figures come from /proc of the server process. Every loop is bounded and the server is
//! stopped at the end.

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};
use tandem::doc_id::DocId;
use tandem::protocol;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{GetString, ReadTxn, Text, Transact, Update};

struct Server {
    child: std::process::Child,
    addr: String,
}

impl Server {
    fn start(data_dir: &std::path::Path) -> Server {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "--addr",
                "127.0.0.1:0",
                "--max-connections-per-address",
                "5000",
            ])
            .args(["--max-new-connections-per-second", "100000"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn,tandem::server=info")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("tandem starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let addr = line[at + 20..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server address");
        Server { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }

    /// User plus system CPU time of the server so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid` in KiB, from /proc (0 once it is gone).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join(addr: &str, doc: &DocId) -> (Socket, yrs::Doc) {
    join_url(&format!("ws://{addr}/ws/{doc}")).await
}

async fn join_url(url: &str) -> (Socket, yrs::Doc) {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .expect("connect");
    let replica = protocol::new_doc();
    let step1 =
        Message::Sync(SyncMessage::SyncStep1(replica.transact().state_vector())).encode_v1();
    ws.send(WsMessage::Binary(step1.into())).await.unwrap();
    loop {
        let frame = match tokio::time::timeout(Duration::from_secs(60), ws.next()).await {
            Ok(Some(Ok(WsMessage::Binary(frame)))) => frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("handshake failed: {other:?}"),
        };
        let mut decoder = DecoderV1::new(Cursor::new(&frame));
        let mut done = false;
        for message in MessageReader::new(&mut decoder) {
            if let Ok(Message::Sync(SyncMessage::SyncStep2(update))) = message {
                replica
                    .transact_mut()
                    .apply_update(Update::decode_v1(&update).unwrap())
                    .unwrap();
                done = true;
            }
        }
        if done {
            return (ws, replica);
        }
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let baseline = server.rss_kib();
    println!("server resident memory at start: {}", mib(baseline));

    println!("\n== 1,000 idle connections (10 to each of 100 documents)");
    let docs: Vec<DocId> = (0..100u128)
        .map(|n| DocId::from_random_bytes((n + 1).to_le_bytes()))
        .collect();
    let started = Instant::now();
    let mut idle = Vec::with_capacity(1000);
    for i in 0..1000 {
        idle.push(join(&server.addr, &docs[i % 100]).await);
    }
    println!("opened and synchronised in {:.2?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let with_idle = server.rss_kib();
    println!(
        "resident memory: {} ({} above start), {:.1} KiB per connection",
        mib(with_idle),
        mib(with_idle.saturating_sub(baseline)),
        with_idle.saturating_sub(baseline) as f64 / 1000.0
    );
    drop(idle);
    tokio::time::sleep(Duration::from_secs(2)).await;

    println!("\n== 50 clients joining a 5 MB document at once");
    let big = DocId::from_random_bytes([7; 16]);
    {
        // Written as Tandem's own client, which is told when each update is durable.
        let (mut ws, replica) =
            join_url(&format!("ws://{}/ws/{big}?client=tandem", server.addr)).await;
        let text = replica.get_or_insert_text(protocol::CONTENT);
        let line =
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\n";
        let chunk: String = line.repeat(256 * 1024 / line.len());
        for _ in 0..20 {
            let update = {
                let mut txn = replica.transact_mut();
                let at = text.len(&txn);
                text.insert(&mut txn, at, &chunk);
                txn.encode_update_v1()
            };
            ws.send(WsMessage::Binary(
                Message::Sync(SyncMessage::Update(update))
                    .encode_v1()
                    .into(),
            ))
            .await
            .unwrap();
        }
        let mut saved = 0;
        while saved < 20 {
            match tokio::time::timeout(Duration::from_secs(120), ws.next()).await {
                Ok(Some(Ok(WsMessage::Binary(frame)))) => {
                    let mut decoder = DecoderV1::new(Cursor::new(&frame));
                    saved += MessageReader::new(&mut decoder)
                        .filter(|m| matches!(m, Ok(Message::Custom(protocol::MSG_SAVED, _))))
                        .count();
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("writing the document failed: {other:?}"),
            }
        }
        println!(
            "document size: {:.1} MB of text, stored",
            text.get_string(&replica.transact()).len() as f64 / 1e6
        );
        let _ = ws.close(None).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before, cpu_before) = (server.rss_kib(), server.cpu());
    let started = Instant::now();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let sampler = {
        let pid = server.child.id();
        let peak = peak.clone();
        tokio::spawn(async move {
            for _ in 0..2400 {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };
    let joins: Vec<_> = (0..50)
        .map(|_| {
            let (addr, big) = (server.addr.clone(), big.clone());
            tokio::spawn(async move { join(&addr, &big).await })
        })
        .collect();
    let mut joined = Vec::new();
    for join in joins {
        joined.push(join.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu() - cpu_before;
    let rss_after = server.rss_kib();
    sampler.abort();
    for (_, replica) in &joined {
        assert!(
            replica
                .get_or_insert_text(protocol::CONTENT)
                .len(&replica.transact())
                > 5_000_000
        );
    }
    println!("all 50 hold the whole document after {elapsed:.2?}");
    println!("server CPU time for the 50 joins: {cpu:.2?}");
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "resident memory: {} before, peak {} during ({} more), {} after",
        mib(rss_before),
        mib(peak),
        mib(peak.saturating_sub(rss_before)),
        mib(rss_after)
    );
}
