//! Follows the frames arriving on a connection by their headers alone.
//!
//! Once tungstenite has refused a frame (an oversized one, say) it reads no further, yet the
//! server must keep reading until the client's close frame arrives; and when the client's
//! close frame does arrive, it may sit in tungstenite's buffer unread. Watching the raw bytes
//! as they come in answers "has the peer's close frame arrived?" whatever has become of the
//! WebSocket on top. Only headers are parsed (with tungstenite's own parser); payloads are
//! skipped by length, never buffered.

use std::io::Cursor;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// The longest frame header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;

/// Where the incoming byte stream is, frame-wise.
#[derive(Debug, Default)]
pub struct FrameWatch {
    /// The start of a header not complete yet.
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// The current frame is a close frame.
    in_close: bool,
    /// A close frame from the peer has arrived whole.
    peer_closed: bool,
    /// A header did not parse: frame boundaries are unknown from here on.
    lost: bool,
    /// Bytes seen in all.
    bytes: u64,
}

impl FrameWatch {
    /// Takes note of bytes read from the peer, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        self.bytes += bytes.len() as u64;
        while !bytes.is_empty() && !self.lost {
            if self.payload_left > 0 {
                let skip = self.payload_left.min(bytes.len() as u64);
                bytes = &bytes[skip as usize..];
                self.payload_left -= skip;
                self.peer_closed |= self.in_close && self.payload_left == 0;
                continue;
            }
            let take = (MAX_HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&bytes[..take]);
            let mut cursor = Cursor::new(&self.header[..self.header_len + take]);
            match FrameHeader::parse(&mut cursor) {
                Ok(None) => {
                    self.header_len += take;
                    bytes = &bytes[take..];
                }
                Ok(Some((header, length))) => {
                    let used = cursor.position() as usize - self.header_len;
                    bytes = &bytes[used..];
                    self.header_len = 0;
                    self.in_close = header.opcode == OpCode::Control(Control::Close);
                    self.payload_left = length;
                    self.peer_closed |= self.in_close && length == 0;
                }
                Err(_) => self.lost = true,
            }
        }
    }

    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A connection whose incoming bytes pass through a [`FrameWatch`].
#[derive(Debug)]
pub struct Watched<IO> {
    io: IO,
    frames: FrameWatch,
    /// Reading has met the end of the stream or an error.
    ended: bool,
}

impl<IO> Watched<IO> {
    pub fn new(io: IO) -> Self {
        Watched {
            io,
            frames: FrameWatch::default(),
            ended: false,
        }
    }

    pub fn frames(&self) -> &FrameWatch {
        &self.frames
    }

    pub fn ended(&self) -> bool {
        self.ended
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let wanted = buf.remaining() > 0;
        let result = ready!(Pin::new(&mut this.io).poll_read(cx, buf));
        let read = &buf.filled()[before..];
        match &result {
            Ok(()) if read.is_empty() && wanted => this.ended = true,
            Ok(()) => this.frames.feed(read),
            Err(_) => this.ended = true,
        }
        Poll::Ready(result)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    fn masked(mut frame: Frame) -> Vec<u8> {
        frame.header_mut().mask = Some([1, 2, 3, 4]);
        let mut bytes = Vec::new();
        frame.format(&mut bytes).unwrap();
        bytes
    }

    fn close() -> Vec<u8> {
        masked(Frame::close(Some(CloseFrame {
            code: 1000.into(),
            reason: "bye".into(),
        })))
    }

    fn binary(len: usize) -> Vec<u8> {
        masked(Frame::message(
            vec![8u8; len],
            OpCode::Data(Data::Binary),
            true,
        ))
    }

    /// Every way of cutting the stream into reads gives the same answer.
    fn fed_in_pieces(stream: &[u8], piece: usize) -> FrameWatch {
        let mut watch = FrameWatch::default();
        for chunk in stream.chunks(piece) {
            watch.feed(chunk);
        }
        watch
    }

    #[test]
    fn a_close_frame_is_seen_after_frames_of_every_length_format() {
        // Frames with 7-bit, 16-bit and 64-bit lengths, then the close frame.
        let mut stream = [binary(5), binary(300), binary(70_000)].concat();
        let before_close = stream.len();
        stream.extend(close());
        for piece in [1, 2, 3, 13, 14, 1000, stream.len()] {
            let watch = fed_in_pieces(&stream[..stream.len() - 1], piece);
            assert!(!watch.peer_closed(), "piece {piece}: not whole yet");
            let watch = fed_in_pieces(&stream, piece);
            assert!(watch.peer_closed(), "piece {piece}");
            assert_eq!(watch.bytes(), stream.len() as u64);
        }
        assert!(!fed_in_pieces(&stream[..before_close], 7).peer_closed());
    }

    #[test]
    fn a_payload_that_looks_like_a_close_frame_is_not_one() {
        let payload = close().repeat(3);
        let stream = masked(Frame::message(payload, OpCode::Data(Data::Binary), true));
        assert!(!fed_in_pieces(&stream, 5).peer_closed());
    }

    #[test]
    fn an_empty_close_frame_counts() {
        let stream = [binary(1), masked(Frame::close(None))].concat();
        assert!(fed_in_pieces(&stream, 1).peer_closed());
    }

    #[test]
    fn after_a_header_that_does_not_parse_nothing_is_taken_for_a_close() {
        // Opcode 0x3 is reserved.
        let stream = [vec![0x83, 0x80, 0, 0, 0, 0], close()].concat();
        assert!(!fed_in_pieces(&stream, 4).peer_closed());
    }
}
