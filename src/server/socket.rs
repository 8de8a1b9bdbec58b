//! The WebSocket under each session, and how it ends.
//!
//! When the server refuses a connection (a message too big, a flood, a bad frame) the client is
//! often still sending. Closing the TCP connection with those bytes unread makes the kernel
//! answer with a reset, which can destroy the close frame in flight and fails the client's
//! sends: the client sees 1006 instead of the code and reason it is owed. So after its close
//! frame the server keeps reading, and discarding, until the client's close frame or the end
//! of the stream ([`Connection::linger`]), within bounds the session sets.
//!
//! After tungstenite has refused an oversized frame it cannot read further, so the lingering
//! reads the raw connection, whose incoming frames a [`watch::FrameWatch`] follows by their
//! headers. axum's WebSocket hides that connection, hence the upgrade of our own in
//! [`upgrade`].

mod upgrade;
mod watch;

pub use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
pub use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
pub use tokio_tungstenite::tungstenite::{Error, Message};
pub use upgrade::{Upgrade, UpgradeError};
pub use watch::{FrameWatch, Watched};

use futures_util::{Sink, Stream};
use hyper_util::rt::TokioIo;
use std::future::Future;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_tungstenite::WebSocketStream;

/// The WebSocket settings of every connection, for messages of at most `max_message_bytes`.
pub fn config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // Reads take up to 1 KiB at a time (a larger frame takes several). The read buffer
        // exists only while bytes are read or a frame is part-read, and is given back while the
        // connection waits (see vendor/tungstenite); it is zeroed before each read, so its
        // size costs CPU, not idle memory (4 KiB took 12% more instructions per change
        // applied than 1 KiB).
        .read_buffer_size(1024)
        // Frames ready together are gathered up to this, then written in one go (see
        // `session::outbox`); large ones are fragmented, so it never holds a whole document.
        .write_buffer_size(crate::server::session::WRITE_BUFFER_BYTES)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// A WebSocket as the server holds it after an upgrade.
pub type Socket = WebSocketStream<Watched<TokioIo<hyper::upgrade::Upgraded>>>;

/// What a session runs on: WebSocket messages both ways, and the end of the conversation.
pub trait Connection:
    Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Send + Unpin
{
    /// Called once this side's close frame is out: reads and discards whatever the peer
    /// still sends, until its close frame or the end of the stream, at most `max_bytes`.
    /// The caller bounds the time.
    fn linger(&mut self, max_bytes: u64) -> impl Future<Output = Lingered> + Send;
}

/// How lingering ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lingered {
    /// The peer's close frame arrived.
    Answered,
    /// The stream ended (or failed) first.
    Ended,
    /// The peer sent more than it was allowed to.
    TooMuch,
}

/// Lingering reads through a buffer this big, whatever the peer sends.
const LINGER_CHUNK: usize = 16 * 1024;

impl<IO> Connection for WebSocketStream<Watched<IO>>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin,
{
    async fn linger(&mut self, max_bytes: u64) -> Lingered {
        let io = self.get_mut();
        let start = io.frames().bytes();
        let mut scratch = vec![0u8; LINGER_CHUNK];
        loop {
            if io.frames().peer_closed() {
                return Lingered::Answered;
            }
            if io.ended() {
                return Lingered::Ended;
            }
            let read = io.frames().bytes() - start;
            if read >= max_bytes {
                return Lingered::TooMuch;
            }
            let room = (max_bytes - read).min(LINGER_CHUNK as u64) as usize;
            if !matches!(io.read(&mut scratch[..room]).await, Ok(1..)) {
                return Lingered::Ended;
            }
        }
    }
}
