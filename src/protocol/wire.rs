//! The frame codec every side uses: exactly one y-protocols message per WebSocket frame.
//!
//! The Yjs protocol allows a frame to carry several messages back to back, but no stock client
//! sends more than one (y-websocket writes one message per frame), and a frame that packs
//! thousands of them turns one small input into thousands of answers. So a frame with anything
//! after its first message is refused as a whole; the limits on messages per second then count
//! exactly the messages the server answers.
//!
//! yrs reserves room for as many entries as a state vector or an awareness update declares
//! before it reads the first one: eight bytes declaring 2^29 entries cost a gigabyte. So the
//! declared counts are checked against the bytes that would have to hold them before yrs
//! decodes anything.

use yrs::encoding::read::{Cursor, Read};
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
    #[error("message declares {count} entries in {bytes} bytes")]
    ImpossibleCount { count: u64, bytes: usize },
}

/// y-protocols message types whose payload starts with a count of entries.
const MSG_SYNC: u32 = 0;
const MSG_SYNC_STEP_1: u32 = 0;
const MSG_AWARENESS: u32 = 1;
/// The fewest bytes one state-vector entry (client, clock) or awareness entry (client, clock,
/// state) can take.
const MIN_SV_ENTRY: u64 = 2;
const MIN_AWARENESS_ENTRY: u64 = 3;

/// Refuses a message whose state vector or awareness update declares more entries than its
/// payload could hold. Messages too short to hold a count pass: yrs refuses them as truncated
/// before it reserves anything.
fn check_declared_count(frame: &[u8]) -> Result<(), WireError> {
    let mut cursor = Cursor::new(frame);
    let min_entry = match cursor.read_var::<u32>() {
        Ok(MSG_SYNC) => match cursor.read_var::<u32>() {
            Ok(MSG_SYNC_STEP_1) => MIN_SV_ENTRY,
            _ => return Ok(()),
        },
        Ok(MSG_AWARENESS) => MIN_AWARENESS_ENTRY,
        _ => return Ok(()),
    };
    // The payload's declared length is skipped, not trusted: yrs reads it as 32 bits and lets
    // longer encodings wrap. What bounds the count is the bytes actually left in the frame.
    let (Ok(_payload), Ok(count)) = (cursor.read_var::<u64>(), cursor.read_var::<u64>()) else {
        return Ok(());
    };
    let left = (frame.len() - cursor.next) as u64;
    if count.saturating_mul(min_entry) > left {
        return Err(WireError::ImpossibleCount {
            count,
            bytes: frame.len(),
        });
    }
    Ok(())
}

/// Decodes a frame holding exactly one message, with nothing after it.
pub fn decode(frame: &[u8]) -> Result<Message, WireError> {
    check_declared_count(frame)?;
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
    check_declared_count(rest)?;
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

    #[test]
    fn counts_larger_than_their_bytes_are_refused_before_decoding() {
        // A sync step 1 whose five-byte state vector declares 2^29 entries.
        let bomb = [0x00, 0x00, 0x05, 0x80, 0x80, 0x80, 0x80, 0x02];
        assert!(matches!(
            decode(&bomb),
            Err(WireError::ImpossibleCount { .. })
        ));
        // An awareness update declaring 2^28 entries.
        let bomb = [0x01, 0x05, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert!(matches!(
            decode(&bomb),
            Err(WireError::ImpossibleCount { .. })
        ));
        // The same, behind an awareness query.
        let bomb = [0x03, 0x00, 0x00, 0x05, 0x80, 0x80, 0x80, 0x80, 0x02];
        assert!(matches!(
            decode(&bomb),
            Err(WireError::ImpossibleCount { .. })
        ));
        // A payload length whose long encoding wraps in yrs's 32-bit reading.
        let bomb = [
            0x00, 0x00, 0x88, 0x80, 0x80, 0x80, 0x80, 0x01, 0x80, 0x80, 0x80, 0x80, 0x01, 0x00,
            0x00, 0x00,
        ];
        assert!(matches!(
            decode(&bomb),
            Err(WireError::ImpossibleCount { .. })
        ));
        // A state vector of one entry declares what it holds.
        let mut sv = StateVector::default();
        sv.set_max(yrs::block::ClientID::new(7), 3);
        let frame = encode(&Message::Sync(SyncMessage::SyncStep1(sv)));
        assert!(decode(&frame).is_ok());
    }
}
