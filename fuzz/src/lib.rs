//! What the fuzz targets share.
//!
//! The server refuses frames that declare more entries than they hold (`wire::decode`) and
//! updates that list a client twice or reach past the largest clock (`shape::check`): the
//! inputs in `fuzz/regressions/` that once aborted the process or panicked yrs now replay as
//! refusals, and the targets no longer skip them.
//!
//! One kind of update is still skipped: an item whose right origin lies left of its left origin
//! integrates where its own encoding does not put it, so the room reads otherwise than the
//! document it hands out (`regressions/room_receive/origins_crossing_reads_otherwise_than_encoded`).
//! The server cannot tell such an item from a legitimate one without walking the text (an item
//! typed before the one to its left is ordinary), and it harms only the ordering of the text the
//! sender may edit anyway.

use yrs::block::{ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER};
use yrs::encoding::read::{Cursor, Read};
use yrs::sync::Message;
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};

/// Whether no item of an update (lib0 v1) has a right origin at or before its left origin in
/// the same client's clocks. Updates that do not decode pass: yrs refuses them itself.
pub fn origins_do_not_cross(update: &[u8]) -> bool {
    let mut decoder = DecoderV1::new(Cursor::new(update));
    let mut walk = || -> Result<bool, yrs::encoding::read::Error> {
        let clients: u32 = decoder.read_var()?;
        for _ in 0..clients.min(update.len() as u32) {
            let blocks: u32 = decoder.read_var()?;
            let _client = decoder.read_client()?;
            let _clock: u32 = decoder.read_var()?;
            for _ in 0..blocks.min(update.len() as u32) {
                if !block_origins_in_order(&mut decoder)? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    };
    walk().unwrap_or(true)
}

/// Reads one block; false for an item whose right origin is an earlier clock of its left
/// origin's client.
fn block_origins_in_order(decoder: &mut DecoderV1<'_>) -> Result<bool, yrs::encoding::read::Error> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    let info = decoder.read_info()?;
    match info {
        BLOCK_SKIP_REF_NUMBER => decoder.read_var::<u32>().map(|_| true),
        BLOCK_GC_REF_NUMBER => decoder.read_len().map(|_| true),
        info => {
            let left = (info & HAS_ORIGIN != 0)
                .then(|| decoder.read_left_id())
                .transpose()?;
            let right = (info & HAS_RIGHT_ORIGIN != 0)
                .then(|| decoder.read_right_id())
                .transpose()?;
            if let (Some(left), Some(right)) = (left, right) {
                if left.client == right.client && right.clock <= left.clock {
                    return Ok(false);
                }
            }
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                if decoder.read_parent_info()? {
                    decoder.read_string()?;
                } else {
                    decoder.read_left_id()?;
                }
                if info & HAS_PARENT_SUB != 0 {
                    decoder.read_string()?;
                }
            }
            ItemContent::decode(decoder, info)?;
            Ok(true)
        }
    }
}

/// Whether a frame that carries an update carries one whose origins do not cross (see
/// [`origins_do_not_cross`]).
pub fn frame_origins_do_not_cross(frame: &[u8]) -> bool {
    use yrs::sync::SyncMessage;
    match Message::decode_v1(frame) {
        Ok(Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update))) => {
            origins_do_not_cross(&update)
        }
        _ => true,
    }
}
