//! How soon connections that came by a link are closed once the link is taken back: a view
//! link reset (close 4001) and a document deleted (close 4002), from the call to each
//! client's close frame, with `VIEWERS` clients on the link, `ROUNDS` times each. The server
//! runs in this process on a temporary SQLite store; the clients connect over loopback.
//!
//! Run: `cargo bench --no-default-features --features ssr --bench links`.

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use tandem::server::capability::Role;
use tandem::server::config::Config;
use tandem::server::AppState;
use tokio_tungstenite::tungstenite::Message;

const VIEWERS: usize = 10;
const ROUNDS: usize = 20;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads until the close frame: its code, and when it came.
async fn closed(mut client: Client) -> (u16, Instant) {
    let patience = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(patience, client.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => {
                return (u16::from(frame.code), Instant::now())
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// Milliseconds at the `q` quantile of `samples` (sorted here).
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(dir.path());
    // The clients all come from this one address.
    config.max_new_connections_per_second = 10_000;
    let state = AppState::open(config).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(tandem::server::serve(listener, state.clone()));

    let (mut reset, mut deleted) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let links = state.links.clone();
        let (doc, edit) = tokio::task::spawn_blocking(move || links.create().unwrap())
            .await
            .unwrap();
        let view = state
            .links
            .of_async(doc.clone())
            .await
            .unwrap()
            .view
            .unwrap();
        for (token, role, samples, expected) in [
            (view, Some(Role::View), &mut reset, 4001),
            (edit, None, &mut deleted, 4002),
        ] {
            let mut clients = Vec::new();
            for _ in 0..VIEWERS {
                let (client, _) =
                    tokio_tungstenite::connect_async(format!("ws://{addr}/ws/{token}"))
                        .await
                        .unwrap();
                clients.push(client);
            }
            // Every client is in the room before the link is taken back.
            while state.hub.get(&doc).is_none() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            let waits: Vec<_> = clients
                .into_iter()
                .map(|c| tokio::spawn(closed(c)))
                .collect();
            let started = Instant::now();
            match role {
                Some(role) => {
                    state
                        .hub
                        .reset_links(&state.links, doc.clone(), vec![role])
                        .await
                        .unwrap();
                }
                None => state.hub.delete(&state.links, doc.clone()).await.unwrap(),
            }
            for wait in waits {
                let (code, at) = wait.await.unwrap();
                assert_eq!(code, expected);
                samples.push(at.duration_since(started).as_secs_f64() * 1000.0);
            }
        }
    }
    println!(
        "connections closed after their link was taken back ({VIEWERS} clients x {ROUNDS} rounds):"
    );
    for (what, samples) in [
        ("view link reset (4001)", &mut reset),
        ("document deleted (4002)", &mut deleted),
    ] {
        println!(
            "  {what}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            quantile(samples, 0.5),
            quantile(samples, 0.99),
            quantile(samples, 1.0)
        );
    }
}
