//! The frame codec every side uses: exactly one y-protocols message per WebSocket frame.
//!
//! The Yjs protocol allows a frame to carry several messages back to back, but no stock client
//! sends more than one (y-websocket writes one message per frame), and a frame that packs
//! thousands of them turns one small input into thousands of answers. So a frame with anything
//! after its first message is refused as a whole; the limits on messages per second then count
//! exactly the messages the server answers.

use yrs::encoding::read::Cursor;
use yrs::sync::{Message, MessageReader};
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
use yrs::updates::encoder::Encode;

/// Why a frame is not one well-formed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("empty or truncated message")]
    Empty,
    #[error("undecodable message: {0}")]
    Undecodable(String),
    #[error("more than one message in a frame")]
    SeveralMessages,
}

/// Decodes a frame holding exactly one message, with nothing after it.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    let message = match Message::decode(&mut decoder) {
        Ok(message) => message,
        Err(yrs::encoding::read::Error::EndOfBuffer(_)) => return Err(WireError::Empty),
        Err(error) => return Err(WireError::Undecodable(error.to_string())),
    };
    let rest = decoder
        .read_to_end()
        .map_err(|e| WireError::Undecodable(e.to_string()))?;
    if rest.is_empty() {
        return Ok(message);
    }
    let mut rest = DecoderV1::new(Cursor::new(rest));
    match MessageReader::new(&mut rest).next() {
        Some(Ok(_)) => Err(WireError::SeveralMessages),
        _ => Err(WireError::Undecodable("bytes after the message".into())),
    }
}

/// Encodes one message as one frame.
pub fn encode(message: &Message) -> Vec<u8> {
    message.encode_v1()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::sync::SyncMessage;
    use yrs::StateVector;

    fn step1() -> Vec<u8> {
        encode(&Message::Sync(SyncMessage::SyncStep1(
            StateVector::default(),
        )))
    }

    #[test]
    fn one_message_round_trips() {
        let frame = step1();
        assert!(matches!(
            decode(&frame),
            Ok(Message::Sync(SyncMessage::SyncStep1(_)))
        ));
    }

    #[test]
    fn a_frame_with_two_messages_is_refused() {
        let mut frame = step1();
        frame.extend(step1());
        assert_eq!(decode(&frame).unwrap_err(), WireError::SeveralMessages);
    }

    #[test]
    fn empty_truncated_and_trailing_garbage_are_refused() {
        assert_eq!(decode(&[]).unwrap_err(), WireError::Empty);
        assert!(decode(&[0, 2]).is_err());
        let mut frame = step1();
        frame.push(0xff);
        assert!(decode(&frame).is_err());
    }
}
