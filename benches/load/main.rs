//! Tandem under load, beside the reference Yjs server, rerunnable by anyone:
//!
//! ```sh
//! cargo bench --no-default-features --features ssr --bench load
//! ```
//!
//! Starts Tandem's release build, then the reference server (`@y/websocket-server` on Node,
//! installed on first use from `benches/load/y-websocket/`), each on loopback with a fresh
//! data directory, runs the same loads against each from this process and prints one table:
//!
//! - fan-out: one writer as fast as acknowledged (at most `LOAD_WINDOW` updates in flight,
//!   acknowledged when a reader has them) and 1,000 readers, then 100 readers;
//! - latency: one writer at 50 updates a second and 5,000 readers;
//! - durable writes (Tandem only): one connection sending back to back, confirmed as stored;
//! - 10,000 idle connections over 100 documents: how fast they open, memory and server CPU
//!   each;
//! - 50 people (`LOAD_JOINERS`) opening a 5 MB document at once;
//! - 500 people moving their carets once a second;
//! - (Tandem only, when valgrind is installed) instructions per delivery and per update
//!   applied, counted by callgrind (see `counts`).
//!
//! The load generator shares the machine with the server: its work is included, so it is kept
//! lean where it can be (the idle, join and fan-out loads speak WebSocket over plain TCP, see
//! `reader`). Figures come
//! from /proc of the server process. Every loop is bounded and servers are stopped at the end.
//! Environment: `LOAD_SERVERS=tandem,y-websocket`, `LOAD_ONLY=fanout,latency,durable,idle,
//! joins,presence,counts` (all by default), `LOAD_SECONDS=5`, `LOAD_WINDOW=64`,
//! `LOAD_WRAPPER` (a tool to run Tandem under, such as `valgrind --tool=massif`),
//! `LOAD_COUNTS_KEEP` (a directory to keep the callgrind dumps in).

mod client;
mod counts;
mod fanout;
mod idle;
mod join_storm;
mod presence;
mod reader;
mod target;

use std::time::Duration;
use target::{Kind, Target};

/// Rows of figures, one column per server.
#[derive(Default)]
struct Table {
    rows: Vec<(String, Vec<(Kind, String)>)>,
}

impl Table {
    fn put(&mut self, row: &str, kind: Kind, value: String) {
        println!("  {row}: {value}");
        match self.rows.iter_mut().find(|(name, _)| name == row) {
            Some((_, values)) => values.push((kind, value)),
            None => self.rows.push((row.to_string(), vec![(kind, value)])),
        }
    }

    fn print(&self, kinds: &[Kind]) {
        let header: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        println!("\n| load | {} |", header.join(" | "));
        println!("|---|{}", "---|".repeat(kinds.len()));
        for (row, values) in &self.rows {
            let cells: Vec<String> = kinds
                .iter()
                .map(|kind| {
                    values
                        .iter()
                        .find(|(k, _)| k == kind)
                        .map_or("–".to_string(), |(_, v)| v.clone())
                })
                .collect();
            println!("| {row} | {} |", cells.join(" | "));
        }
    }
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wanted(scenario: &str) -> bool {
    std::env::var("LOAD_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == scenario))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn thousands(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A fresh server of `kind` for each scenario, so that none inherits another's memory.
fn start(kind: Kind) -> Target {
    match kind {
        Kind::Tandem => match std::env::var("LOAD_WRAPPER") {
            Ok(wrapper) => Target::tandem_under(
                &wrapper
                    .split_whitespace()
                    .map(String::from)
                    .collect::<Vec<_>>(),
            ),
            Err(_) => Target::tandem(),
        },
        Kind::YWebsocket => Target::y_websocket().expect("y-websocket started before"),
    }
}

async fn run(kind: Kind, table: &mut Table) {
    let seconds = setting("LOAD_SECONDS", 5);
    let window = setting("LOAD_WINDOW", 64);
    println!("\n=== {}", kind.name());
    if wanted("fanout") {
        for readers in [1000, 100] {
            println!("fan-out: 1 writer as fast as acknowledged, {readers} readers, {seconds} s");
            let f = fanout::throughput(&start(kind), readers, window, seconds).await;
            let row = format!("1 writer as fast as acknowledged, {readers} readers");
            table.put(
                &format!("{row}: deliveries/s"),
                kind,
                thousands(f.deliveries_per_second),
            );
            table.put(
                &format!("{row}: updates/s"),
                kind,
                thousands(f.updates_per_second),
            );
            table.put(
                &format!("{row}: server CPU per delivery"),
                kind,
                format!("{:.2} µs", f.cpu_per_delivery.as_secs_f64() * 1e6),
            );
        }
    }
    if wanted("latency") {
        let readers = setting("LOAD_LATENCY_READERS", 5000) as usize;
        println!("latency: 1 writer at 50 updates/s, {readers} readers, {seconds} s");
        let l = fanout::latency(&start(kind), readers, 50, seconds.max(2)).await;
        let row = format!("1 writer at 50 updates/s, {readers} readers");
        table.put(&format!("{row}: latency p50"), kind, ms(l.p50));
        table.put(
            &format!("{row}: latency p99 / max"),
            kind,
            format!("{} / {}", ms(l.p99), ms(l.max)),
        );
        table.put(
            &format!("{row}: delivered"),
            kind,
            format!(
                "{} of {}",
                thousands(l.delivered as f64),
                thousands(l.owed as f64)
            ),
        );
        table.put(
            &format!("{row}: server CPU"),
            kind,
            format!("{:.0}% of a core", l.cpu_share * 100.0),
        );
    }
    if wanted("durable") && kind == Kind::Tandem {
        println!("durable writes: one connection back to back, {seconds} s");
        let rate = fanout::durable_writes(&start(kind), 4096, seconds).await;
        table.put(
            "1 connection back to back: durable updates/s",
            kind,
            thousands(rate),
        );
    }
    if wanted("idle") {
        let count = setting("LOAD_IDLE", 10_000) as usize;
        // LOAD_IDLE_DOC_BYTES=20000: documents with that much text, which each connection
        // receives when it joins (empty documents unless given).
        let doc_bytes = setting("LOAD_IDLE_DOC_BYTES", 0) as usize;
        println!("idle: {count} connections over 100 documents of {doc_bytes} bytes");
        let i = idle::idle(&start(kind), count, 100, doc_bytes, 128).await;
        let count = match doc_bytes {
            0 => count.to_string(),
            bytes => format!("{count} ({} KB documents)", bytes / 1000),
        };
        table.put(
            &format!("{count} idle connections: memory per connection"),
            kind,
            format!("{:.1} KiB", i.kib_each),
        );
        table.put(
            &format!("{count} idle connections: opened per second"),
            kind,
            thousands(i.per_second),
        );
        table.put(
            &format!("{count} idle connections: server CPU per connection opened"),
            kind,
            format!("{:.0} µs", i.cpu_each.as_secs_f64() * 1e6),
        );
    }
    if wanted("joins") {
        let joiners = setting("LOAD_JOINERS", 50) as usize;
        let row = format!("{joiners} people opening a 5 MB document at once");
        println!("joins: {row}");
        let j = join_storm::join_storm(&start(kind), 5, joiners).await;
        table.put(
            &format!("{row}: holding it, p50 / max"),
            kind,
            format!("{} / {}", ms(j.p50), ms(j.max)),
        );
        table.put(
            &format!("{row}: peak extra memory"),
            kind,
            format!("{:.0} MiB", j.peak_extra_kib as f64 / 1024.0),
        );
        table.put(
            &format!("{row}: server CPU time"),
            kind,
            format!("{:.2} s", j.cpu.as_secs_f64()),
        );
        let _ = j.document_bytes;
    }
    if wanted("counts") && kind == Kind::Tandem {
        let (updates, readers) = (setting("LOAD_COUNT_UPDATES", 100), 10);
        println!("counts: {updates} keystrokes to {readers} readers under callgrind, two runs");
        if let Some(c) = counts::counts(updates, readers).await {
            table.put(
                "instructions per delivery (callgrind)",
                kind,
                thousands(c.per_delivery),
            );
            table.put(
                "instructions per update applied and stored (callgrind)",
                kind,
                thousands(c.per_update),
            );
        }
    }
    if wanted("presence") {
        let people = setting("LOAD_PRESENCE", 500) as usize;
        println!("presence: {people} people moving carets once a second");
        let p = presence::carets(&start(kind), people, seconds.max(4) + 2).await;
        let row = format!("{people} people moving carets once a second");
        table.put(
            &format!("{row}: server CPU"),
            kind,
            format!("{:.0}% of a core", p.cpu_share * 100.0),
        );
        table.put(
            &format!("{row}: presence frames received/s"),
            kind,
            thousands(p.received_per_second),
        );
    }
}

#[tokio::main]
async fn main() {
    let servers = std::env::var("LOAD_SERVERS").unwrap_or_else(|_| "tandem,y-websocket".into());
    let mut table = Table::default();
    let mut kinds = Vec::new();
    for name in servers.split(',').map(str::trim) {
        let kind = match name {
            "tandem" => Some(Kind::Tandem),
            // Installed (if need be) and tried once here; skipped, with why, if it cannot run.
            "y-websocket" => Target::y_websocket().map(|probe| probe.kind),
            other => panic!("unknown server {other}; tandem or y-websocket"),
        };
        if let Some(kind) = kind {
            kinds.push(kind);
            run(kind, &mut table).await;
        }
    }
    table.print(&kinds);
}
