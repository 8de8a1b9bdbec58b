//! Two instances on one PostgreSQL and one Redis, rerunnable by anyone:
//!
//! ```sh
//! cargo bench --no-default-features --features ssr --bench cluster
//! ```
//!
//! Starts a private PostgreSQL and a private Redis (Debian's, on free loopback ports) and two
//! `tandem` processes sharing them, then:
//! 1. one editor on instance A types 100 changes a second for 30 s (one character each);
//!    an editor of the same document on instance B notes when each arrives: the delivery
//!    latency from A's editor to B's editor, through A, PostgreSQL, Redis and B;
//! 2. Redis is killed and started again, empty, 10 times; right after each restart A's editor
//!    types one change: the time until B's editor has it, which is how long a gap takes to
//!    heal (Redis is back, but the instances have not reconnected yet);
//! 3. the same with messages lost on purpose: both instances publish only every other change
//!    (a test hook), so half the changes reach B through the store.
//!
//! It prints figures; it asserts nothing beyond every change arriving.

#[path = "../tests/common/mod.rs"]
mod common;

use common::postgres::PgServer;
use common::redis::RedisServer;
use common::{Peer, ServerProcess};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const RATE: u32 = 100;
const SECONDS: u32 = 30;
const RESTARTS: usize = 10;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn start_pair(
    pg: &PgServer,
    redis: &RedisServer,
    extra: &[&str],
) -> (ServerProcess, ServerProcess, Vec<tempfile::TempDir>) {
    let database = pg.new_database();
    let dirs = vec![tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let mut args = vec!["--database-url", &database, "--redis-url"];
    let url = redis.url();
    args.push(&url);
    args.extend_from_slice(extra);
    let a = ServerProcess::start_with_args(dirs[0].path(), &args);
    let b = ServerProcess::start_with_args(dirs[1].path(), &args);
    (a, b, dirs)
}

/// Reads from `peer` until its text has `length` characters; returns when each length was
/// first seen.
async fn arrivals(mut peer: Peer, length: usize, limit: Duration) -> (Peer, Vec<Instant>) {
    let mut seen = Vec::with_capacity(length);
    let deadline = tokio::time::Instant::now() + limit;
    while seen.len() < length {
        let frame = tokio::time::timeout_at(deadline, peer.ws.next())
            .await
            .expect("every change arrives")
            .expect("the connection stays")
            .unwrap();
        if let WsMessage::Binary(frame) = frame {
            peer.handle_frame(&frame).await;
            let now = Instant::now();
            while seen.len() < peer.text().chars().count().min(length) {
                seen.push(now);
            }
        }
    }
    (peer, seen)
}

async fn latency(pg: &PgServer, redis: &RedisServer) {
    let (a, b, _dirs) = start_pair(pg, redis, &["--max-messages-per-second", "1000"]);
    let id = a.new_doc();
    let mut writer = Peer::join_url(&a.ws_url(&id), None).await;
    let reader = Peer::join_url(&b.ws_url(&id), None).await;
    let beside = Peer::join_url(&a.ws_url(&id), None).await;
    let count = (RATE * SECONDS) as usize;
    let limit = Duration::from_secs(SECONDS as u64 + 30);
    let receiving = tokio::spawn(arrivals(reader, count, limit));
    let receiving_beside = tokio::spawn(arrivals(beside, count, limit));
    let started = tokio::time::Instant::now();
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        tokio::time::sleep_until(started + Duration::from_secs(1) * i as u32 / RATE).await;
        sent.push(Instant::now());
        writer.insert(i as u32, "x").await;
        // Keep the writer's socket read so the server never waits on it.
        while let Ok(Some(Ok(WsMessage::Binary(frame)))) =
            tokio::time::timeout(Duration::ZERO, writer.ws.next()).await
        {
            writer.handle_frame(&frame).await;
        }
    }
    for (to, receiving) in [
        ("B", receiving),
        ("A too (same instance)", receiving_beside),
    ] {
        let (_, arrived) = receiving.await.unwrap();
        let mut latencies: Vec<Duration> = sent
            .iter()
            .zip(&arrived)
            .map(|(sent, arrived)| arrived.saturating_duration_since(*sent))
            .collect();
        latencies.sort();
        println!(
            "{count} changes at {RATE}/s from an editor on A to an editor on {to}: p50 {:.2?}, p90 {:.2?}, p99 {:.2?}, max {:.2?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
}

async fn heal_after_restart(pg: &PgServer, redis: &mut RedisServer) {
    let (a, b, _dirs) = start_pair(pg, redis, &[]);
    let id = a.new_doc();
    let mut writer = Peer::join_url(&a.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&b.ws_url(&id), None).await;
    let mut heals = Vec::new();
    for i in 0..RESTARTS {
        redis.restart();
        let typed = Instant::now();
        writer.insert(i as u32, "x").await;
        let (back, _) = arrivals(reader, i + 1, Duration::from_secs(30)).await;
        reader = back;
        heals.push(typed.elapsed());
        // Let both instances reconnect before the next restart.
        tokio::time::sleep(Duration::from_secs(6)).await;
    }
    heals.sort();
    println!(
        "a change typed right after Redis restarted, empty ({RESTARTS} times): median {:.2?}, max {:.2?}",
        percentile(&heals, 0.5),
        heals[heals.len() - 1]
    );
}

async fn heal_lost(pg: &PgServer, redis: &RedisServer) {
    let (a, b, _dirs) = start_pair(pg, redis, &["--test-redis-drop-half"]);
    let id = a.new_doc();
    let mut writer = Peer::join_url(&a.ws_url(&id), None).await;
    let mut reader = Peer::join_url(&b.ws_url(&id), None).await;
    let mut lost = Vec::new();
    let mut delivered = Vec::new();
    for i in 0..40 {
        let typed = Instant::now();
        writer.insert(i as u32, "x").await;
        let (back, _) = arrivals(reader, i + 1, Duration::from_secs(30)).await;
        reader = back;
        // Each instance publishes its first change, drops its second, and so on.
        if i % 2 == 0 {
            &mut delivered
        } else {
            &mut lost
        }
        .push(typed.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lost.sort();
    delivered.sort();
    println!(
        "changes Redis lost, typed one at a time (nothing after them shows a gap): median {:.2?}, max {:.2?}; those it carried: median {:.2?}",
        percentile(&lost, 0.5),
        lost[lost.len() - 1],
        percentile(&delivered, 0.5)
    );
}

#[tokio::main]
async fn main() {
    let pg = PgServer::start();
    let mut redis = RedisServer::start();
    println!("== delivery across instances");
    latency(&pg, &redis).await;
    println!("\n== healing");
    heal_after_restart(&pg, &mut redis).await;
    heal_lost(&pg, &redis).await;
}
