//! Which pages may open a WebSocket here.
//!
//! A browser page may open a WebSocket here only from this server's own origin or an allowed
//! one; otherwise any web page could write into documents whose links its visitors know.
//! Clients without an `Origin` (not browsers) are let in unless the configuration says no.
//! The header is parsed as an origin (scheme, host, port), never compared as a string prefix.

use crate::server::config::Config;
use crate::server::error::HttpError;
use axum::http::header::ORIGIN;
use axum::http::uri::Authority;
use axum::http::HeaderMap;
use headers::{HeaderMapExt, Host, Origin};

/// Lets the upgrade through or says why not. `authority` is the request URI's authority, which
/// HTTP/2 carries instead of a `Host` header.
pub fn check_origin(
    headers: &HeaderMap,
    authority: Option<&Authority>,
    config: &Config,
) -> Result<(), HttpError> {
    if !headers.contains_key(ORIGIN) {
        return if config.require_origin {
            Err(HttpError::ForbiddenOrigin("(none)".into()))
        } else {
            Ok(())
        };
    }
    let Some(origin) = headers.typed_get::<Origin>().filter(|o| !o.is_null()) else {
        let raw = headers
            .get(ORIGIN)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        tracing::info!(origin = %raw, "WebSocket with an opaque or malformed origin refused");
        return Err(HttpError::ForbiddenOrigin(raw));
    };
    let host = headers
        .typed_get::<Host>()
        .or_else(|| authority.cloned().map(Host::from));
    let same_origin = host.is_some_and(|host| same_site_address(&origin, &host));
    let shown = origin.to_string();
    let allowed = config.allowed_origins.iter().any(|allowed| {
        allowed
            .trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(&shown)
    });
    if same_origin || allowed {
        Ok(())
    } else {
        tracing::info!(origin = %shown, "WebSocket from a foreign origin refused");
        Err(HttpError::ForbiddenOrigin(shown))
    }
}

/// Whether the page's origin names the host and port this request was sent to. The scheme is
/// not compared: behind a TLS-terminating proxy the server cannot see it.
fn same_site_address(origin: &Origin, host: &Host) -> bool {
    let default_port = match origin.scheme() {
        "https" => Some(443),
        "http" => Some(80),
        _ => return false,
    };
    origin.hostname().eq_ignore_ascii_case(host.hostname())
        && origin.port().or(default_port) == host.port().or(default_port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn check(origin: Option<&str>, host: &str, config: &Config) -> bool {
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().unwrap());
        if let Some(origin) = origin {
            headers.insert("origin", origin.parse().unwrap());
        }
        check_origin(&headers, None, config).is_ok()
    }

    #[test]
    fn own_and_allowed_origins_pass_and_nothing_else() {
        let config =
            Config::parse_from(["tandem", "--allowed-origins", "https://notes.example.com/"]);
        let host = "tandem.example.com:3000";
        assert!(check(Some("http://tandem.example.com:3000"), host, &config));
        assert!(check(
            Some("https://TANDEM.example.com:3000"),
            host,
            &config
        ));
        assert!(check(Some("https://notes.example.com"), host, &config));
        assert!(check(
            Some("https://tandem.example.com"),
            "tandem.example.com",
            &config
        ));
        assert!(check(None, host, &config), "not a browser");

        for foreign in [
            "https://evil.example.net",
            "http://tandem.example.com:3000.evil.example.net",
            "http://tandem.example.com:3001",
            "http://tandem.example.com",
            "https://notes.example.com.evil.example.net",
            "null",
            "tandem.example.com:3000",
            "http://tandem.example.com:3000/path",
            "ws://tandem.example.com:3000",
        ] {
            assert!(!check(Some(foreign), host, &config), "{foreign}");
        }
    }

    #[test]
    fn an_origin_can_be_required() {
        let config = Config::parse_from(["tandem", "--require-origin"]);
        assert!(!check(None, "localhost:3000", &config));
        assert!(check(
            Some("http://localhost:3000"),
            "localhost:3000",
            &config
        ));
    }
}
