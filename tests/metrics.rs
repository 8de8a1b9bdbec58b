//! `/metrics`: Prometheus text that parses, counters that move when people edit, refusals and
//! closes counted by reason, and only for clients on this machine (or on its own listener).
//! The recorder is one per process, so each check compares a scrape before with one after.

mod common;
mod net;

use common::{Peer, TestServer};
use std::net::SocketAddr;
use tandem::server::metrics::*;
use tower::ServiceExt;

struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    async fn of(server: &TestServer) -> Scrape {
        let response = net::get(server.addr, "/metrics").await;
        assert_eq!(response.status, 200, "{}", response.body);
        assert!(response.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        Scrape::parse(&response.body)
    }

    fn parse(text: &str) -> Scrape {
        let lines = text.lines().map(|line| Ok(line.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).expect("Prometheus text"))
    }

    /// The value of `name` with the label `label` (if given), 0 when absent.
    fn value(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(|sample| sample.metric == name)
            .filter(|sample| label.is_none_or(|(k, v)| sample.labels.get(k) == Some(v)))
            .map(|sample| match sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_when_people_edit() {
    let server = TestServer::start().await;
    let before = Scrape::of(&server).await;
    let id = server.new_doc().await;
    let url = format!("{}?client=tandem", server.ws_url(id.as_str()));
    let mut writer = Peer::join_url(&url, None).await;
    let mut reader = Peer::join_url(&server.ws_url(id.as_str()), None).await;
    writer.insert(0, "counted").await;
    writer
        .pump_until("the confirmation", |p, _| p.acks > 0)
        .await;
    reader.wait_for_text("counted").await;
    writer
        .set_presence(r##"{"user":{"name":"Ann","color":"#336699"}}"##)
        .await;
    reader
        .pump_until("Ann's presence", |p, _| !p.seen_presence.is_empty())
        .await;

    let after = Scrape::of(&server).await;
    let grew = |name: &str, label: Option<(&str, &str)>, by: f64| {
        let (was, now) = (before.value(name, label), after.value(name, label));
        assert!(now - was >= by, "{name} {label:?}: {was} -> {now}");
    };
    grew(MESSAGES_IN, Some(("kind", "update")), 1.0);
    grew(MESSAGES_IN, Some(("kind", "sync_step1")), 2.0);
    grew(BYTES_IN, Some(("kind", "update")), 7.0);
    grew(MESSAGES_OUT, Some(("path", "broadcast")), 1.0);
    grew(MESSAGES_OUT, Some(("path", "reply")), 2.0);
    grew(UPDATES_STORED, None, 1.0);
    grew(&format!("{COMMIT_SECONDS}_count"), None, 1.0);
    grew(&format!("{FANOUT_SECONDS}_count"), None, 1.0);
    assert!(after.value(CONNECTIONS, None) >= 2.0);
    assert!(after.value(DOCUMENTS, None) >= 1.0);
    assert!(after.value(PRESENCE, None) >= 1.0);
    assert!(after.value(STORAGE_BYTES, None) > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_closes_are_counted_by_reason() {
    let server = TestServer::start_with(|c| c.max_message_bytes = 1024).await;
    let before = Scrape::of(&server).await;
    let id = server.new_doc().await;
    // A page from another site.
    let refused = net::ws_from(
        [127, 0, 0, 1].into(),
        server.addr,
        &format!("/ws/{id}"),
        &[("origin", "https://elsewhere.example")],
    )
    .await;
    assert_eq!(refused.err().map(|(status, _)| status.as_u16()), Some(403));
    // A message over the limit.
    let mut big = Peer::join_url(&server.ws_url(id.as_str()), None).await;
    big.insert(0, &"x".repeat(4096)).await;
    assert_eq!(big.expect_close().await, 1009);
    // A malformed document id.
    let malformed = net::ws_from([127, 0, 0, 1].into(), server.addr, "/ws/not-an-id", &[]).await;
    assert_eq!(
        malformed.err().map(|(status, _)| status.as_u16()),
        Some(400)
    );

    let after = Scrape::of(&server).await;
    for (name, label) in [
        (REFUSALS, ("reason", "origin")),
        (REFUSALS, ("reason", "size")),
        (REFUSALS, ("reason", "malformed")),
        (CLOSES, ("code", "1009")),
    ] {
        let (was, now) = (
            before.value(name, Some(label)),
            after.value(name, Some(label)),
        );
        assert!(now > was, "{name} {label:?}: {was} -> {now}");
    }
}

/// A request to the main router as if from `peer`.
async fn metrics_from(server: &TestServer, peer: &str) -> u16 {
    let mut request = axum::http::Request::get("/metrics")
        .body(axum::body::Body::empty())
        .unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let router = tandem::server::router(server.state.clone());
    router.oneshot(request).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn only_this_machine_may_read_the_metrics_unless_they_have_their_own_listener() {
    let server = TestServer::start().await;
    assert_eq!(metrics_from(&server, "127.0.0.1:5000").await, 200);
    assert_eq!(metrics_from(&server, "[::1]:5000").await, 200);
    assert_eq!(metrics_from(&server, "[::ffff:127.0.0.1]:5000").await, 200);
    for outside in ["10.0.0.7:5000", "192.168.1.2:80", "[2001:db8::1]:443"] {
        assert_eq!(metrics_from(&server, outside).await, 404, "{outside}");
    }
    assert_eq!(
        net::get_from([127, 0, 0, 2].into(), server.addr, "/metrics", &[])
            .await
            .status,
        200
    );
    // A proxy on this machine connects from loopback for anyone: what it forwards is not local.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip", "via"] {
        let forwarded = net::get_from(
            [127, 0, 0, 1].into(),
            server.addr,
            "/metrics",
            &[(header, "for=203.0.113.9")],
        )
        .await;
        assert_eq!(forwarded.status, 404, "{header}");
    }
    let proxied =
        TestServer::start_with(|c| c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    assert_eq!(net::get(proxied.addr, "/metrics").await.status, 404);

    // With a listener of its own, the main one does not serve them at all.
    let separate =
        TestServer::start_with(|c| c.metrics_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    assert_eq!(metrics_from(&separate, "127.0.0.1:5000").await, 404);
    let own = tandem::server::metrics_router(separate.state.clone());
    let response = own
        .oneshot(
            axum::http::Request::get("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let scrape = Scrape::parse(std::str::from_utf8(&body).unwrap());
    assert!(scrape.0.samples.iter().any(|s| s.metric == CONNECTIONS));
}
