//! Per-address limits that hold behind a reverse proxy and against forged headers, and the
//! server-wide cap on connections. Clients connect from distinct loopback addresses
//! (127.0.0.2, 127.0.0.3, ...), a proxy from 127.0.0.1.
#![cfg(feature = "ssr")]

mod common;
mod net;

use axum::http::StatusCode;
use common::{TestServer, PATIENCE};
use std::net::IpAddr;
use std::time::Duration;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// Opens a WebSocket to a fresh document from `from`, claiming whatever `headers` say.
async fn open(
    server: &TestServer,
    from: IpAddr,
    headers: &[(&str, &str)],
) -> Result<net::Socket, StatusCode> {
    net::ws_from(
        from,
        server.addr,
        &format!("/ws/{}", server.new_doc().await),
        headers,
    )
    .await
    .map_err(|(status, _)| status)
}

#[tokio::test]
async fn forged_forwarding_headers_from_a_client_change_nothing() {
    let server = TestServer::start_with(|c| c.max_connections_per_address = 2).await;
    let attacker = loopback(2);
    let victim = loopback(3);
    let mut held = Vec::new();
    // The attacker claims to be someone new each time: it is still counted as itself.
    for claim in ["198.51.100.1", "198.51.100.2"] {
        held.push(
            open(&server, attacker, &[("x-forwarded-for", claim)])
                .await
                .unwrap(),
        );
    }
    for claim in [
        &[("x-forwarded-for", "198.51.100.3")][..],
        &[("forwarded", "for=198.51.100.4")][..],
        &[
            ("x-forwarded-for", "127.0.0.3"),
            ("forwarded", "for=127.0.0.3"),
        ][..],
    ] {
        assert_eq!(
            open(&server, attacker, claim).await.err(),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{claim:?}"
        );
    }
    // Claiming to be the victim did not use up the victim's places.
    held.push(open(&server, victim, &[]).await.unwrap());
    held.push(open(&server, victim, &[]).await.unwrap());
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_is_counted_as_itself() {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = loopback(1);
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            open(&server, proxy, &[("x-forwarded-for", "198.51.100.7")])
                .await
                .unwrap(),
        );
    }
    // The same client again, also when it wrote a forged address of its own in front of the
    // one the proxy added.
    for chain in ["198.51.100.7", "203.0.113.9, 198.51.100.7"] {
        assert_eq!(
            open(&server, proxy, &[("x-forwarded-for", chain)])
                .await
                .err(),
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{chain}"
        );
    }
    // Other clients behind the same proxy are not affected, whichever header names them.
    held.push(
        open(&server, proxy, &[("x-forwarded-for", "198.51.100.8")])
            .await
            .unwrap(),
    );
    held.push(
        open(
            &server,
            proxy,
            &[("forwarded", "for=198.51.100.9;proto=https")],
        )
        .await
        .unwrap(),
    );
    held.push(
        open(
            &server,
            proxy,
            &[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")],
        )
        .await
        .unwrap(),
    );
    // A client that adds the header the proxy does not write, to name itself anew each time,
    // is counted under the proxy instead.
    for invented in ["203.0.113.50", "203.0.113.51"] {
        held.push(
            open(
                &server,
                proxy,
                &[
                    ("x-forwarded-for", "198.51.100.10"),
                    ("forwarded", &format!("for={invented}")),
                ],
            )
            .await
            .unwrap(),
        );
    }
    assert_eq!(
        open(
            &server,
            proxy,
            &[
                ("x-forwarded-for", "198.51.100.10"),
                ("forwarded", "for=203.0.113.52"),
            ],
        )
        .await
        .err(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    // A peer outside the trusted range is its own client, whatever it forwards.
    held.push(
        open(&server, loopback(2), &[("x-forwarded-for", "198.51.100.7")])
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn ipv6_clients_in_one_slash_64_share_a_count() {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let proxy = loopback(1);
    let via = |client: &'static str| [("x-forwarded-for", client)];
    let mut held = Vec::new();
    held.push(open(&server, proxy, &via("2001:db8:0:1::1")).await.unwrap());
    held.push(open(&server, proxy, &via("2001:db8:0:1::2")).await.unwrap());
    assert_eq!(
        open(&server, proxy, &via("2001:db8:0:1:ffff:ffff:ffff:ffff"))
            .await
            .err(),
        Some(StatusCode::TOO_MANY_REQUESTS),
        "the same /64"
    );
    held.push(open(&server, proxy, &via("2001:db8:0:2::1")).await.unwrap());
    // An IPv4 client written as IPv4-mapped IPv6 is the same IPv4 client.
    held.push(open(&server, proxy, &via("198.51.100.20")).await.unwrap());
    held.push(
        open(&server, proxy, &via("::ffff:198.51.100.20"))
            .await
            .unwrap(),
    );
    assert_eq!(
        open(&server, proxy, &via("198.51.100.20")).await.err(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn connections_beyond_the_server_wide_cap_are_answered_503() {
    let server = TestServer::start_with(|c| c.max_connections = 2).await;
    let first = open(&server, loopback(2), &[]).await.unwrap();
    let _second = open(&server, loopback(3), &[]).await.unwrap();
    let refused = net::ws_from(
        loopback(4),
        server.addr,
        &format!("/ws/{}", server.new_doc().await),
        &[],
    )
    .await
    .expect_err("a third connection is refused");
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.1.contains_key("retry-after"));

    // A place freed is given again.
    drop(first);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match open(&server, loopback(4), &[]).await {
            Ok(_) => break,
            Err(status) => assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the freed place was not given again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
