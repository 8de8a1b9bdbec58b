//! Command-line and environment configuration.
//!
//! Every option has a flag and a `TANDEM_*` environment variable, so the same binary is
//! configured by hand, by a service manager or by a container without a config file.

use clap::{Parser, Subcommand};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// The commit Tandem was built from ("unknown" outside a git checkout; `+` if it had changes).
pub const COMMIT: &str = git_version::git_version!(
    args = ["--always", "--dirty=+", "--exclude=*"],
    fallback = "unknown"
);

/// The version, the commit and where the site's files come from, as `tandem --version` prints
/// them: an operator checks there that the one file to deploy carries its site.
pub static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let site = if super::site::EMBEDDED {
        "site embedded"
    } else {
        "site read from disk"
    };
    format!("{} ({COMMIT}, {site})", env!("CARGO_PKG_VERSION"))
});

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Tandem: a real-time collaborative Markdown editor.
///
/// Serves the editor at http://ADDR/ and each document's Yjs WebSocket at /ws/{id}, and keeps
/// documents in an SQLite database in the data directory. A release build made with
/// scripts/build-release.sh carries its site and runs from anywhere; other builds read the site
/// from target/site (run them from the repository root) or from LEPTOS_SITE_ROOT.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem", version = VERSION.as_str(), about, long_about)]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// How log lines are written; `RUST_LOG` chooses which (by default `info`).
    #[arg(long, env = "TANDEM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Address and port to listen on.
    #[arg(long, env = "TANDEM_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Serve HTTPS and wss:// with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, env = "TANDEM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The certificate's private key (PEM); needs --tls-cert.
    #[arg(long, env = "TANDEM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Directory of the document database (created on first start).
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Store documents in this PostgreSQL database instead (postgres://user:password@host/db);
    /// the data directory is then not used. The schema is created or migrated on start. Give
    /// it through the environment: a command line is visible to every user of the machine.
    /// Several instances may share the database; with --redis-url they also share every
    /// change and presence live.
    #[arg(long, env = "TANDEM_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Join the other instances on this Redis (redis://[:password@]host[:port][/db]): a change
    /// made on any instance reaches every editor of the document on every instance, and so
    /// does presence. Needs --database-url: the shared store is the truth, Redis only carries
    /// news of it, so an instance that missed some reads them from the store.
    #[arg(
        long,
        env = "TANDEM_REDIS_URL",
        hide_env_values = true,
        requires = "database_url"
    )]
    pub redis_url: Option<String>,

    /// The key links are derived under, as base64 of 32 bytes (`openssl rand -base64 32`).
    /// Kept out of the database, so a leaked database opens no document. Without it, the key
    /// is kept in the data directory (`link.key`, made on first start); instances sharing a
    /// PostgreSQL database must all be given the same key.
    #[arg(long, env = "TANDEM_LINK_KEY", hide_env_values = true)]
    pub link_key: Option<String>,

    /// Test hook: publish only every other change to Redis, as if Redis lost the rest.
    #[arg(long, hide = true)]
    pub test_redis_drop_half: bool,

    /// Largest size of the database in MiB; past it, changes are refused as if the disk were
    /// full (everything stored stays). 0: no limit.
    #[arg(
        long,
        env = "TANDEM_MAX_STORAGE_MB",
        default_value_t = 0,
        conflicts_with = "database_url"
    )]
    pub max_storage_mb: u64,

    /// Merge a document's stored updates into one snapshot after this many updates.
    #[arg(long, env = "TANDEM_COMPACT_AFTER_UPDATES", default_value_t = 1000)]
    pub compact_after_updates: usize,

    /// ... or after this many bytes of updates.
    #[arg(long, env = "TANDEM_COMPACT_AFTER_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub compact_after_bytes: usize,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection
    /// with code 1009.
    /// The default keeps the worst single update under about 40 MiB of server memory
    /// (`benches/frame_cost.rs`).
    #[arg(long, env = "TANDEM_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Largest document, in bytes of its stored form; a change that would exceed it is refused
    /// (close 1009 with the reason) and the document stays as it was.
    /// Answering a sync step 1 costs about twice this (`benches/frame_cost.rs`).
    #[arg(long, env = "TANDEM_MAX_DOC_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_doc_bytes: usize,

    /// Longest one message may take to integrate, in milliseconds; what went in by then is
    /// kept, the rest is refused (close 1008). Ordinary edits take microseconds and a long
    /// reconnect milliseconds; updates built to be slow would take minutes or hours
    /// (`benches/frame_cost.rs`).
    #[arg(long, env = "TANDEM_MAX_INTEGRATION_MS", default_value_t = 1000)]
    pub max_integration_ms: u64,

    /// Open WebSocket connections allowed from one client address.
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 64)]
    pub max_connections_per_address: usize,

    /// New WebSocket connections per second allowed from one client address (bursts of twice
    /// that); beyond it the upgrade is answered 429.
    #[arg(
        long,
        env = "TANDEM_MAX_NEW_CONNECTIONS_PER_SECOND",
        default_value_t = 20
    )]
    pub max_new_connections_per_second: u32,

    /// New documents a minute allowed from one client address (GET /new); beyond it the
    /// request is answered 429.
    #[arg(
        long,
        env = "TANDEM_MAX_NEW_DOCUMENTS_PER_MINUTE",
        default_value_t = 30
    )]
    pub max_new_documents_per_minute: u32,

    /// Messages per second allowed on one connection (bursts of twice that); beyond it the
    /// connection is closed with 1008.
    #[arg(long, env = "TANDEM_MAX_MESSAGES_PER_SECOND", default_value_t = 300)]
    pub max_messages_per_second: u32,

    /// Other origins (like https://notes.example.com) whose pages may open WebSockets here,
    /// comma-separated. The server's own origin is always allowed.
    #[arg(long, env = "TANDEM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Refuse WebSocket upgrades without an Origin header (by default non-browser clients,
    /// which send none, are let in).
    #[arg(long, env = "TANDEM_REQUIRE_ORIGIN")]
    pub require_origin: bool,

    /// Open WebSocket connections allowed in all; beyond it upgrades are answered 503.
    #[arg(long, env = "TANDEM_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Document pages rendered at the same time; beyond it a page request is answered 503
    /// with Retry-After.
    #[arg(long, env = "TANDEM_MAX_CONCURRENT_RENDERS", default_value_t = 64)]
    pub max_concurrent_renders: usize,

    /// Reverse proxies whose Forwarded and X-Forwarded-For headers are believed, as
    /// comma-separated addresses or CIDR ranges (like 10.0.0.0/8,::1). From any other peer
    /// those headers are ignored and the TCP peer is the client.
    #[arg(long, env = "TANDEM_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_network)]
    pub trusted_proxies: Vec<IpNet>,

    /// Show only images served by Tandem itself (or inline data) in the preview; by default
    /// a document may show images from anywhere.
    #[arg(long, env = "TANDEM_NO_REMOTE_IMAGES")]
    pub no_remote_images: bool,

    /// How often the editor page asks whether its connection is alive, in milliseconds
    /// (100 to 20,000). A page gives a connection up when a ping goes unanswered for two
    /// periods (at least 10 s); the server closes one it has not heard from for 60 s, so the
    /// longest period and its answer time fit within that.
    #[arg(
        long,
        env = "TANDEM_HEARTBEAT_MS",
        default_value_t = crate::reconnect::Heartbeat::DEFAULT_MS,
        value_parser = clap::value_parser!(u32).range(
            crate::reconnect::Heartbeat::MIN_MS as i64..=crate::reconnect::Heartbeat::MAX_MS as i64
        )
    )]
    pub heartbeat_ms: u32,

    /// Serve `/metrics` on this address of its own (to anyone who can reach it) instead of on
    /// the main address, where it answers only clients on this machine.
    #[arg(long, env = "TANDEM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Messages each connection may have waiting to be sent. A connection whose queue
    /// overflows is closed with 1013 so that it reconnects and resynchronises.
    #[arg(long, env = "TANDEM_SEND_QUEUE", default_value_t = 512)]
    pub send_queue: usize,
}

/// A network in CIDR notation, or a single address as a network of one.
fn parse_network(raw: &str) -> Result<IpNet, String> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{raw:?} is neither an address nor a CIDR range"))
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve (the default).
    Serve,
    /// Write a consistent copy of the database to FILE, also while a server is running.
    Backup {
        /// Where to write the copy; must not exist yet.
        file: PathBuf,
    },
    /// Write a document's Markdown to standard output, as stored (also while a server runs).
    Export {
        /// One of the document's links (its last part, the token). Tokens may begin with `-`,
        /// so this is never taken for an option.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Create a document from a Markdown file and print its edit link (also while a server runs).
    Import {
        /// The Markdown file (UTF-8, at most --max-doc-bytes).
        file: PathBuf,
        /// The document's title; by default the file's name without its extension.
        #[arg(long)]
        title: Option<String>,
    },
    /// Print the number of documents and the database's size (also while a server runs).
    Stats,
    /// Print a document's current edit and view links, one per line, labelled (also while a
    /// server runs). Uses the same link key as the server (--link-key, or the data directory's).
    Links {
        /// One of the document's links (its last part, the token): edit or view.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

impl Command {
    /// Whether this is a command that does one thing and exits, rather than serving.
    pub fn is_one_off(&self) -> bool {
        !matches!(self, Command::Serve)
    }

    /// Whether the command's result is printed on standard output (logs must stay off it).
    pub fn prints_result(&self) -> bool {
        matches!(
            self,
            Command::Export { .. }
                | Command::Import { .. }
                | Command::Stats
                | Command::Links { .. }
        )
    }
}

impl Config {
    /// The configuration of a test server: an ephemeral loopback port and the given data
    /// directory, defaults elsewhere.
    pub fn for_tests(data_dir: &std::path::Path) -> Self {
        Config::parse_from([
            "tandem",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            &data_dir.to_string_lossy(),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heartbeat(value: &str) -> Result<u32, clap::Error> {
        Config::try_parse_from(["tandem", "--heartbeat-ms", value]).map(|c| c.heartbeat_ms)
    }

    #[test]
    fn the_heartbeat_is_15_seconds_unless_set_within_its_bounds() {
        let default = Config::try_parse_from(["tandem"]).unwrap();
        assert_eq!(default.heartbeat_ms, 15_000);
        assert_eq!(heartbeat("250").unwrap(), 250);
        assert_eq!(heartbeat("100").unwrap(), 100);
        assert_eq!(heartbeat("20000").unwrap(), 20_000);
        for refused in ["0", "99", "20001", "-5", "soon", ""] {
            assert!(heartbeat(refused).is_err(), "{refused:?} was accepted");
        }
    }

    #[test]
    fn redis_without_a_shared_store_is_refused() {
        let refused = Config::try_parse_from(["tandem", "--redis-url", "redis://127.0.0.1:1"])
            .unwrap_err()
            .to_string();
        assert!(refused.contains("--database-url"), "{refused}");
        let joined = Config::try_parse_from([
            "tandem",
            "--redis-url",
            "redis://127.0.0.1:1",
            "--database-url",
            "postgres://127.0.0.1:1/tandem",
        ])
        .unwrap();
        assert_eq!(joined.redis_url.as_deref(), Some("redis://127.0.0.1:1"));
    }

    #[test]
    fn an_id_that_begins_with_a_hyphen_is_an_id() {
        let config =
            Config::try_parse_from(["tandem", "export", "-lc1Y7b3wq4Hy5m1kjL3Aw"]).unwrap();
        match config.command {
            Some(Command::Export { id }) => assert_eq!(id, "-lc1Y7b3wq4Hy5m1kjL3Aw"),
            other => panic!("{other:?}"),
        }
    }
}
