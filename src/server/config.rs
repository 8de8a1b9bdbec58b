//! Command-line and environment configuration.
//!
//! Every option has a flag and a `TANDEM_*` environment variable, so the same binary is
//! configured by hand, by a service manager or by a container without a config file.

use clap::Parser;
use std::net::SocketAddr;

/// Tandem: a real-time collaborative Markdown editor.
///
/// Serves the editor at http://ADDR/ and each document's Yjs WebSocket at /ws/{id}. Run it
/// from the repository root after a release build (it then finds its site files in
/// target/site), or point LEPTOS_SITE_ROOT at a copy of that directory.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem", version, about, long_about)]
pub struct Config {
    /// Address and port to listen on.
    #[arg(long, env = "TANDEM_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Largest WebSocket message accepted, in bytes; a larger one closes the connection
    /// with code 1009.
    #[arg(long, env = "TANDEM_MAX_MESSAGE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// Messages each connection may have waiting to be sent. A connection whose queue
    /// overflows is closed with 1013 so that it reconnects and resynchronises.
    #[arg(long, env = "TANDEM_SEND_QUEUE", default_value_t = 512)]
    pub send_queue: usize,
}

impl Config {
    /// The configuration a test server uses: an ephemeral port on loopback, defaults elsewhere.
    pub fn for_tests() -> Self {
        Config::parse_from(["tandem", "--addr", "127.0.0.1:0"])
    }
}
