//! The WebSocket layer with Tandem's settings and its patched buffers (see
//! `vendor/tungstenite`): frames split at every kind of boundary, with the socket having
//! nothing to give (WouldBlock) at any point, still arrive whole and in order. The read buffer
//! is given back whenever the connection waits between frames and allocated again for the next
//! read: a read into no room would return 0 and be taken for the end of the stream, losing
//! every frame after it.
#![cfg(feature = "ssr")]

use std::io::{self, Read, Write};
use tandem::server::socket::{config, Message};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
use tokio_tungstenite::tungstenite::Error;

/// A small deterministic generator (xorshift), so a failure names a seed that repeats it.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A peer's bytes given out in pieces of random length, with "nothing yet" (WouldBlock) at
/// random points; what the server writes is taken a random amount at a time, or not at all.
struct Trickle {
    incoming: Vec<u8>,
    at: usize,
    rng: Rng,
    block_percent: u64,
    largest_piece: u64,
    reads_into_no_room: usize,
    written: Vec<u8>,
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            self.reads_into_no_room += 1;
        }
        if self.rng.below(100) < self.block_percent {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let left = self.incoming.len() - self.at;
        let n = (1 + self.rng.below(self.largest_piece) as usize)
            .min(left)
            .min(buf.len());
        buf[..n].copy_from_slice(&self.incoming[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.rng.below(100) < self.block_percent {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = (1 + self.rng.below(3000) as usize).min(buf.len());
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Payload lengths around the edges that matter: the header's three length forms, the 14-byte
/// longest header, the 1 KiB read size, the 64 KiB fragment size.
const LENGTHS: &[usize] = &[
    0, 1, 2, 13, 14, 15, 125, 126, 127, 1023, 1024, 1025, 2049, 65_535, 65_536, 70_000,
];

/// A client's masked frame.
fn masked(payload: Vec<u8>, opcode: OpCode, last: bool, rng: &mut Rng) -> Vec<u8> {
    let mut frame = Frame::message(payload, opcode, last);
    frame.header_mut().mask = Some([rng.below(256) as u8, 7, 1, 200]);
    let mut bytes = Vec::new();
    frame.format(&mut bytes).unwrap();
    bytes
}

#[test]
fn messages_split_anywhere_with_waits_anywhere_arrive_whole_and_in_order() {
    for seed in 1..1200u64 {
        let mut rng = Rng::new(seed);
        let mut incoming = Vec::new();
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut pings = 0;
        for i in 0..1 + rng.below(10) as usize {
            let length = LENGTHS[rng.below(LENGTHS.len() as u64) as usize];
            let message: Vec<u8> = (0..length).map(|j| (i * 5 + j * 3) as u8).collect();
            // Sent whole or in up to four fragments, pings between them.
            let parts = 1 + rng.below(4) as usize;
            let pieces: Vec<&[u8]> = if length == 0 {
                vec![&message[..]]
            } else {
                message.chunks(length.div_ceil(parts)).collect()
            };
            for (k, piece) in pieces.iter().enumerate() {
                let opcode = if k == 0 {
                    OpCode::Data(Data::Binary)
                } else {
                    OpCode::Data(Data::Continue)
                };
                incoming.extend(masked(
                    piece.to_vec(),
                    opcode,
                    k + 1 == pieces.len(),
                    &mut rng,
                ));
                if rng.below(3) == 0 {
                    let mut ping = Frame::ping(vec![9u8; rng.below(100) as usize]);
                    ping.header_mut().mask = Some([3, 1, 4, 1]);
                    ping.format(&mut incoming).unwrap();
                    pings += 1;
                }
            }
            sent.push(message);
        }
        let mut close = Frame::close(None);
        close.header_mut().mask = Some([2, 7, 1, 8]);
        close.format(&mut incoming).unwrap();
        let total = incoming.len();
        let stream = Trickle {
            incoming,
            at: 0,
            block_percent: rng.below(80),
            largest_piece: [1u64, 13, 14, 1024, 1025, 5000][rng.below(6) as usize],
            rng: Rng::new(seed + 1),
            reads_into_no_room: 0,
            written: Vec::new(),
        };
        let mut socket = WebSocket::from_raw_socket(stream, Role::Server, Some(config(1 << 20)));
        let mut received = Vec::new();
        let mut pinged = 0;
        loop {
            match socket.read() {
                Ok(Message::Binary(bytes)) => received.push(bytes.to_vec()),
                Ok(Message::Ping(_)) => pinged += 1,
                Ok(Message::Close(_)) => {}
                Ok(other) => panic!("seed {seed}: unexpected {other:?}"),
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(Error::ConnectionClosed) => break,
                Err(error) => panic!("seed {seed}: {error}"),
            }
        }
        let stream = socket.get_ref();
        assert_eq!(stream.reads_into_no_room, 0, "seed {seed}");
        assert_eq!(stream.at, total, "seed {seed}: not read to the end");
        assert_eq!(received, sent, "seed {seed}");
        assert_eq!(pinged, pings, "seed {seed}");
    }
}

#[test]
fn messages_written_while_the_peer_reads_slowly_arrive_whole() {
    for seed in 1..400u64 {
        let mut rng = Rng::new(seed);
        let stream = Trickle {
            incoming: Vec::new(),
            at: 0,
            block_percent: rng.below(70),
            largest_piece: 1,
            rng: Rng::new(seed + 2),
            reads_into_no_room: 0,
            written: Vec::new(),
        };
        let mut socket = WebSocket::from_raw_socket(stream, Role::Server, Some(config(1 << 20)));
        let mut expected = Vec::new();
        for i in 0..1 + rng.below(12) as usize {
            let length = LENGTHS[rng.below(LENGTHS.len() as u64) as usize];
            let payload: Vec<u8> = (0..length).map(|j| (i * 13 + j) as u8).collect();
            Frame::message(payload.clone(), OpCode::Data(Data::Binary), true)
                .format(&mut expected)
                .unwrap();
            match socket.send(Message::Binary(payload.into())) {
                Ok(()) => {}
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("seed {seed}: {error}"),
            }
        }
        loop {
            match socket.flush() {
                Ok(()) => break,
                Err(Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => panic!("seed {seed}: {error}"),
            }
        }
        assert_eq!(socket.get_ref().written, expected, "seed {seed}");
    }
}
