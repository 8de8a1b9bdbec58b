//! Who a request comes from.
//!
//! Behind a reverse proxy every TCP connection comes from the proxy, and the client's address
//! arrives in a `Forwarded` (RFC 7239) or `X-Forwarded-For` header. Anyone can write those
//! headers, so they are believed only from a peer inside `--trusted-proxies`, and only as far
//! as the chain of trusted proxies goes: reading from the right, each hop is added by the one
//! after it, so the first address that is not itself a trusted proxy is the client. What a
//! client wrote further left is never believed; per-address limits stay with the client.
//!
//! Proxies differ in which of the two headers they write, and pass the other one through as the
//! client sent it. So when a request carries both, they must name the same client; if they do
//! not, one of them is the client's own invention, and the request is counted under the proxy
//! it came from (a client cannot choose its address that way, only share the proxy's count
//! with others who try the same).

use crate::server::error::HttpError;
use crate::server::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{HeaderName, FORWARDED};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address, as far as it can be known (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or(HttpError::NoPeerAddress)?;
        Ok(ClientAddress(resolve(
            peer.ip(),
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

/// The client behind a request that arrived from `peer` with `headers`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !is_trusted(&peer, trusted) {
        return peer;
    }
    let forwarded = chain(headers, &FORWARDED, forwarded_for);
    let x_forwarded_for = chain(headers, &X_FORWARDED_FOR, node_address);
    match (forwarded.is_empty(), x_forwarded_for.is_empty()) {
        (true, true) => peer,
        (false, true) => walk(peer, &forwarded, trusted),
        (true, false) => walk(peer, &x_forwarded_for, trusted),
        (false, false) => {
            let client = walk(peer, &forwarded, trusted);
            if client == walk(peer, &x_forwarded_for, trusted) {
                client
            } else {
                peer
            }
        }
    }
}

fn is_trusted(address: &IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(address))
}

/// Walks `chain` from the right, starting at the trusted `peer`: the first hop that is not a
/// trusted proxy is the client.
fn walk(peer: IpAddr, chain: &[Option<IpAddr>], trusted: &[IpNet]) -> IpAddr {
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(address) => {
                client = address.to_canonical();
                if !is_trusted(&client, trusted) {
                    break;
                }
            }
            // An unknown or obfuscated hop: the trusted proxy that reported it is the nearest
            // address known.
            None => break,
        }
    }
    client
}

/// The addresses one header's hops name, client first, over all its lines; `None` for a hop
/// that names no address.
fn chain(
    headers: &HeaderMap,
    name: &HeaderName,
    address: fn(&str) -> Option<IpAddr>,
) -> Vec<Option<IpAddr>> {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| match value.to_str() {
            Ok(text) => text.split(',').map(address).collect::<Vec<_>>(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The `for=` address of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
        .and_then(|(_, value)| node_address(value))
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`,
/// `[2001:db8::1]`, `"[2001:db8::1]:4711"`. Names like `unknown` or `_hidden` give `None`.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Some(bracketed) = node.strip_prefix('[') {
        let (v6, _) = bracketed.split_once(']')?;
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    node.parse::<IpAddr>()
        .ok()
        .or_else(|| node.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let claims = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=198.51.100.2"),
        ]);
        assert_eq!(resolve(ip("192.0.2.9"), &claims, &[]), ip("192.0.2.9"));
        assert_eq!(
            resolve(ip("192.0.2.9"), &claims, &nets(&["10.0.0.0/8"])),
            ip("192.0.2.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "2001:db8:ffff::/48"]);
        let proxy = ip("10.0.0.1");
        // The client prepended a forged address; the proxy appended the real one.
        let chain = headers(&[("x-forwarded-for", "203.0.113.66, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(resolve(proxy, &chain, &trusted), ip("198.51.100.7"));
        // Split over several header lines, in order.
        let split = headers(&[
            ("x-forwarded-for", "203.0.113.66"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(resolve(proxy, &split, &trusted), ip("198.51.100.7"));
        // All hops trusted: the leftmost is the client.
        let inside = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.2")]);
        assert_eq!(resolve(proxy, &inside, &trusted), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(resolve(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn forwarded_is_read_per_rfc_7239() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.1");
        let chain = headers(&[(
            "forwarded",
            r#"for=203.0.113.66;proto=https, For="[2001:db8:cafe::17]:4711";by=10.0.0.1"#,
        )]);
        assert_eq!(resolve(proxy, &chain, &trusted), ip("2001:db8:cafe::17"));
        let with_port = headers(&[("forwarded", "for=192.0.2.43:47011")]);
        assert_eq!(resolve(proxy, &with_port, &trusted), ip("192.0.2.43"));
    }

    #[test]
    fn both_headers_must_name_the_same_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        let proxy = ip("10.0.0.1");
        let agreeing = headers(&[
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(resolve(proxy, &agreeing, &trusted), ip("198.51.100.7"));
        // The proxy writes one of them; the client invented the other.
        let invented = headers(&[
            ("forwarded", "for=203.0.113.66"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(resolve(proxy, &invented, &trusted), proxy);
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_proxy_that_reported_it() {
        let trusted = nets(&["10.0.0.0/8"]);
        let chain = headers(&[("forwarded", "for=198.51.100.7, for=unknown, for=10.0.0.3")]);
        assert_eq!(resolve(ip("10.0.0.1"), &chain, &trusted), ip("10.0.0.3"));
        let garbage = headers(&[("x-forwarded-for", "not an address")]);
        assert_eq!(resolve(ip("10.0.0.1"), &garbage, &trusted), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            resolve(
                ip("::ffff:10.0.0.1"),
                &headers(&[("x-forwarded-for", "::ffff:192.0.2.1")]),
                &trusted
            ),
            ip("192.0.2.1")
        );
    }
}
