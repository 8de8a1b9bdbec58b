//! A WebSocket client at the level of frames over a plain TCP socket, for tests that need what
//! no client library does: ignore the server's close frame, declare a frame and never finish it.

use super::PATIENCE;
use std::io::{Cursor, Result};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

pub struct RawClient {
    stream: TcpStream,
    /// Bytes received and not yet taken as frames.
    received: Vec<u8>,
}

impl RawClient {
    /// Opens `path` (like `/ws/{id}`) with a hand-written HTTP/1.1 upgrade.
    pub async fn connect(addr: SocketAddr, path: &str) -> RawClient {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut client = RawClient {
            stream,
            received: Vec::new(),
        };
        let end = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(at) = client.received.windows(4).position(|w| w == b"\r\n\r\n") {
                    return at + 4;
                }
                assert!(client.read_some().await.unwrap() > 0, "no upgrade response");
            }
        })
        .await
        .expect("upgrade response in time");
        let head = String::from_utf8_lossy(&client.received[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        client.received.drain(..end);
        client
    }

    /// Reads what has arrived into the buffer; 0 at EOF.
    pub async fn read_some(&mut self) -> Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.received.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Sends one complete, masked frame.
    pub async fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> Result<()> {
        let mut frame = Frame::message(payload.to_vec(), opcode, true);
        frame.header_mut().mask = Some(rand::random());
        let mut bytes = Vec::new();
        frame.format(&mut bytes).unwrap();
        self.stream.write_all(&bytes).await
    }

    /// Sends the header of a masked frame of `length` bytes; its payload is up to the caller.
    pub async fn send_header(&mut self, opcode: OpCode, length: u64) -> Result<()> {
        let header = FrameHeader {
            opcode,
            mask: Some(rand::random()),
            ..FrameHeader::default()
        };
        let mut bytes = Vec::new();
        header.format(length, &mut bytes).unwrap();
        self.stream.write_all(&bytes).await
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next frame from the server; `None` at EOF.
    pub async fn read_frame(&mut self) -> Result<Option<(FrameHeader, Vec<u8>)>> {
        loop {
            let mut cursor = Cursor::new(&self.received[..]);
            if let Some((header, length)) =
                FrameHeader::parse(&mut cursor).map_err(std::io::Error::other)?
            {
                let start = cursor.position() as usize;
                let end = start + length as usize;
                if self.received.len() >= end {
                    let payload = self.received[start..end].to_vec();
                    self.received.drain(..end);
                    return Ok(Some((header, payload)));
                }
            }
            if self.read_some().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads frames until the server's close frame and returns its code and reason; `None`
    /// if the connection ended without one. Waits at most [`PATIENCE`].
    pub async fn read_close(&mut self) -> Result<Option<(u16, String)>> {
        tokio::time::timeout(PATIENCE, async {
            while let Some((header, payload)) = self.read_frame().await? {
                if header.opcode == OpCode::Control(Control::Close) {
                    let code = match payload.get(..2) {
                        Some(code) => u16::from_be_bytes([code[0], code[1]]),
                        None => u16::from(CloseCode::Status),
                    };
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                    return Ok(Some((code, reason.into_owned())));
                }
            }
            Ok(None)
        })
        .await
        .expect("a close frame or the end of the connection in time")
    }
}
