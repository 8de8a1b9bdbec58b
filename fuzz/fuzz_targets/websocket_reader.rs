//! Any bytes a peer sends reach the WebSocket reader (tungstenite with Tandem's settings and
//! its patched buffers, see `vendor/tungstenite`), in pieces of any size, with the socket
//! having nothing to give at any point: it must never panic, never read into no room (a read
//! of 0 bytes is taken for the end of the stream), and stop only at an error, a close, or the
//! end of what was sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{self, Read, Write};
use tandem::server::socket::{config, Error, Message};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};

/// The input's bytes after its first two, given out in pieces; the first two bytes choose the
/// largest piece and how often the socket has nothing yet.
struct Pieces<'a> {
    bytes: &'a [u8],
    at: usize,
    largest: usize,
    block_every: usize,
    reads: usize,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        assert!(!buf.is_empty(), "a read into no room");
        self.reads += 1;
        if self.block_every > 0 && self.reads % self.block_every == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.largest.min(buf.len()).min(self.bytes.len() - self.at);
        buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Pieces<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|input: &[u8]| {
    let [largest, block, bytes @ ..] = input else {
        return;
    };
    let stream = Pieces {
        bytes,
        at: 0,
        largest: 1 + usize::from(*largest) * 16,
        // Never, or every second to eighth read.
        block_every: match block % 8 {
            0 => 0,
            n => usize::from(n) + 1,
        },
        reads: 0,
    };
    let mut socket = WebSocket::from_raw_socket(stream, Role::Server, Some(config(64 * 1024)));
    // Each turn reads at least one byte or meets a wait; the waits are at most every other
    // read, so this ends.
    loop {
        match socket.read() {
            Ok(Message::Close(_)) | Ok(_) => {}
            Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
});
