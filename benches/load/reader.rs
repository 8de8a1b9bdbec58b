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

    /// The payload length once the header is complete.
    fn header_done(&self) -> Option<u64> {
        frame_header(&self.header).map(|(_, _, len)| len as u64)
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
    within_join_time(join_unbounded(addr, path)).await
}

/// However slow the server, a join gives up after this long: every loop of the load ends.
const JOIN_TIME: std::time::Duration = std::time::Duration::from_secs(120);

async fn within_join_time<T>(join: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(JOIN_TIME, join)
        .await
        .expect("the server did not answer a join within 120 s")
}

async fn join_unbounded(addr: &str, path: &str) -> Reader {
    let (stream, early) = upgrade(addr, path).await;
    let mut reader = Reader {
        stream,
        scanner: Scanner::default(),
    };
    let mut seen = Seen::default();
    reader.scanner.feed(&early, &mut seen);
    let mut buf = vec![0u8; 16 * 1024];
    while !seen.step2 {
        let n = reader.stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed while joining");
        reader.scanner.feed(&buf[..n], &mut seen);
    }
    reader
}

/// Opens `path` on `addr` as a WebSocket and joins the document, keeping what the server
/// answered: the stream, and the message that brought the sync step 2 (the whole document),
/// its fragments read straight into one buffer.
pub async fn join_keeping(addr: &str, path: &str) -> (TcpStream, Vec<u8>) {
    within_join_time(join_keeping_unbounded(addr, path)).await
}

async fn join_keeping_unbounded(addr: &str, path: &str) -> (TcpStream, Vec<u8>) {
    let (mut stream, mut early) = upgrade(addr, path).await;
    let mut message = Vec::new();
    let mut control = Vec::new();
    loop {
        let (opcode, fin, len) = next_header(&mut stream, &mut early).await;
        let into = if opcode >= 8 {
            &mut control
        } else {
            &mut message
        };
        into.reserve(len);
        read_payload(&mut stream, &mut early, len, into).await;
        if opcode >= 8 {
            control.clear();
        } else if fin {
            let step2 = message.starts_with(&[0, 1]) || holds_step2(&message);
            if step2 {
                return (stream, message);
            }
            message.clear();
        }
    }
}

fn holds_step2(payload: &[u8]) -> bool {
    use yrs::updates::decoder::DecoderV1;
    let mut decoder = DecoderV1::new(yrs::encoding::read::Cursor::new(payload));
    yrs::sync::MessageReader::new(&mut decoder)
        .any(|m| matches!(m, Ok(Message::Sync(SyncMessage::SyncStep2(_)))))
}

/// The next frame's opcode, whether it ends its message, and its payload length, its header
/// taken from `early` (bytes already read), read from `stream` as needed.
async fn next_header(stream: &mut TcpStream, early: &mut Vec<u8>) -> (u8, bool, usize) {
    let mut buf = [0u8; 4096];
    loop {
        if let Some((opcode, head, len)) = frame_header(early) {
            let fin = early[0] & 0x80 != 0;
            early.drain(..head);
            return (opcode, fin, len);
        }
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed while joining");
        early.extend_from_slice(&buf[..n]);
    }
}

/// Appends the `len` bytes of payload to `into`: what `early` holds of it first, the rest
/// straight from `stream`; what `early` holds past it stays there.
async fn read_payload(stream: &mut TcpStream, early: &mut Vec<u8>, len: usize, into: &mut Vec<u8>) {
    let have = early.len().min(len);
    into.extend_from_slice(&early[..have]);
    early.drain(..have);
    let missing = (len - have) as u64;
    let before = into.len();
    (&mut *stream)
        .take(missing)
        .read_to_end(into)
        .await
        .unwrap();
    assert_eq!(
        into.len() - before,
        missing as usize,
        "the server closed mid-frame"
    );
}

/// A frame's opcode, header length and payload length, once `bytes` begin with its whole
/// header.
fn frame_header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let (&first, &second) = (bytes.first()?, bytes.get(1)?);
    let extra = match second & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let head = 2 + extra + if second & 0x80 != 0 { 4 } else { 0 };
    if bytes.len() < head {
        return None;
    }
    let len = match extra {
        0 => (second & 0x7f) as usize,
        n => bytes[2..2 + n]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize),
    };
    Some((first & 0x0f, head, len))
}

/// Opens `path` on `addr`, upgrades it to a WebSocket and sends an empty sync step 1; returns
/// the stream and whatever the server sent after its answer's head.
async fn upgrade(addr: &str, path: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = connect(addr).await;
    stream.set_nodelay(true).unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    // The answer's head, read a buffer at a time: whatever follows it is already frames.
    let mut buf = vec![0u8; 16 * 1024];
    let mut head = Vec::new();
    let body_at = loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0 && head.len() < 16 * 1024, "the upgrade failed");
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "the upgrade was refused: {}",
        String::from_utf8_lossy(&head[..body_at])
    );
    let step1 = Message::Sync(SyncMessage::SyncStep1(Default::default())).encode_v1();
    stream.write_all(&masked_binary(&step1)).await.unwrap();
    (stream, head.split_off(body_at))
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
