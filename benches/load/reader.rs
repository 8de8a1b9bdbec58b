//! A lean reader for the fan-out loads: a WebSocket spoken over a plain TCP stream, whose
//! frames are scanned, counted and dropped, never decoded or copied. Thousands of these share
//! the machine with the server under test; the leaner they are, the more of the machine the
//! figures leave to the server.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::encoder::Encode;

/// What one read brought in.
#[derive(Default)]
pub struct Seen {
    /// Complete document updates (sync message, type update).
    pub updates: u64,
    /// A sync step 2 (the answer to joining) completed.
    pub step2: bool,
}

/// Follows the server's frames across reads: where a header or payload ends, and the first
/// two bytes of each message, which say what it is.
#[derive(Default)]
pub struct Scanner {
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come; `None` while reading a header.
    remaining: Option<u64>,
    control: bool,
    fin: bool,
    lead: [u8; 2],
    lead_len: usize,
}

impl Scanner {
    pub fn feed(&mut self, mut data: &[u8], seen: &mut Seen) {
        loop {
            match self.remaining {
                None => {
                    let Some((&byte, rest)) = data.split_first() else {
                        return;
                    };
                    data = rest;
                    self.header.push(byte);
                    if let Some(len) = self.header_done() {
                        let opcode = self.header[0] & 0x0f;
                        self.fin = self.header[0] & 0x80 != 0;
                        self.control = opcode >= 8;
                        if opcode == 1 || opcode == 2 {
                            self.lead_len = 0;
                        }
                        self.header.clear();
                        self.remaining = Some(len);
                        if len == 0 {
                            self.end_frame(seen);
                        }
                    }
                }
                Some(left) => {
                    if data.is_empty() {
                        return;
                    }
                    let n = (left.min(data.len() as u64)) as usize;
                    if !self.control {
                        for &byte in data[..n].iter().take(2 - self.lead_len.min(2)) {
                            self.lead[self.lead_len] = byte;
                            self.lead_len += 1;
                        }
                    }
                    data = &data[n..];
                    self.remaining = Some(left - n as u64);
                    if left == n as u64 {
                        self.end_frame(seen);
                    }
                }
            }
        }
    }

    /// The payload length once the header is complete (server frames are not masked).
    fn header_done(&self) -> Option<u64> {
        let h = &self.header;
        if h.len() < 2 {
            return None;
        }
        let masked = if h[1] & 0x80 != 0 { 4 } else { 0 };
        let (extra, len) = match h[1] & 0x7f {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(n as u64)),
        };
        if h.len() < 2 + extra + masked {
            return None;
        }
        Some(len.unwrap_or_else(|| {
            h[2..2 + extra]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | b as u64)
        }))
    }

    fn end_frame(&mut self, seen: &mut Seen) {
        self.remaining = None;
        if self.control || !self.fin {
            return;
        }
        match (self.lead_len, self.lead) {
            (2, [0, 2]) => seen.updates += 1,
            (2, [0, 1]) => seen.step2 = true,
            _ => {}
        }
        self.lead_len = 0;
    }
}

/// A joined reader: the stream, and the scanner that has followed it so far.
pub struct Reader {
    pub stream: TcpStream,
    pub scanner: Scanner,
}

/// Opens `path` on `addr` as a WebSocket and joins the document: sync step 1 out, read until
/// the server's sync step 2 is in.
pub async fn join(addr: &str, path: &str) -> Reader {
    let mut stream = connect(addr).await;
    stream.set_nodelay(true).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).await.unwrap();
        assert!(n == 1 && head.len() < 16 * 1024, "the upgrade failed");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "the upgrade was refused: {}",
        String::from_utf8_lossy(&head)
    );
    let step1 = Message::Sync(SyncMessage::SyncStep1(Default::default())).encode_v1();
    stream.write_all(&masked_binary(&step1)).await.unwrap();
    let mut reader = Reader {
        stream,
        scanner: Scanner::default(),
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed while joining");
        let mut seen = Seen::default();
        reader.scanner.feed(&buf[..n], &mut seen);
        if seen.step2 {
            return reader;
        }
    }
}

async fn connect(addr: &str) -> TcpStream {
    for _ in 0..20 {
        if let Ok(stream) = TcpStream::connect(addr).await {
            return stream;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("cannot connect to {addr}");
}

/// A client's binary frame (clients must mask; a zero key leaves the payload as it is).
fn masked_binary(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x82];
    match payload.len() {
        n @ 0..=125 => frame.push(0x80 | n as u8),
        n @ 126..=65535 => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}
