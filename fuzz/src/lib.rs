//! What the fuzz targets share.
//!
//! yrs reserves memory for as many entries as a state vector or an awareness update declares
//! before it reads any of them, so a frame of eight bytes that declares 2^29 entries makes a
//! release build reserve gigabytes and touch about one (the control bytes of the hash table),
//! for half a second, before the frame is refused as truncated; AddressSanitizer reports it as
//! out of memory. `wire::decode` reads the message after a frame's first one too, to tell
//! "several messages" from garbage, so that one counts as well. The reproducers are in
//! `fuzz/regressions/frame_decoder/`. The targets skip such frames, so that a run goes on
//! looking for anything else.
//!
//! Likewise yrs adds up block clocks unchecked: an update whose blocks run past 2^32 - 1 makes it
//! panic, sometimes while dropping a transaction during unwinding, which aborts the process
//! (`fuzz/regressions/room_receive/`). And an item whose right origin lies left of its left
//! origin (same client, smaller clock) integrates where its own encoding does not put it, so the
//! room reads otherwise than the document it hands out. The room target skips updates like these
//! too.

use yrs::block::{ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER};
use yrs::encoding::read::{Cursor, Read};
use yrs::sync::Message;
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};

/// Whether every count a frame declares before its entries fits in the frame. The decoder reads
/// the frame's first message and, when bytes follow, the message after it.
pub fn declared_counts_fit(frame: &[u8]) -> bool {
    if !first_message_fits(frame) {
        return false;
    }
    let mut decoder = DecoderV1::new(Cursor::new(frame));
    if Message::decode(&mut decoder).is_err() {
        return true;
    }
    match decoder.read_to_end() {
        Ok(rest) => first_message_fits(rest),
        Err(_) => true,
    }
}

/// Whether the counts of the first message (a sync step 1's state vector, an awareness
/// update's clients) fit in `bytes`: each entry takes at least two.
fn first_message_fits(bytes: &[u8]) -> bool {
    let mut cursor = Cursor::new(bytes);
    let count_fits = |cursor: &mut Cursor<'_>| {
        // A frame too short to hold its count is refused before anything is reserved.
        let (Ok(_len), Ok(count)) = (cursor.read_var::<u64>(), cursor.read_var::<u64>()) else {
            return true;
        };
        count.saturating_mul(2) <= bytes.len() as u64
    };
    match cursor.read_var::<u32>() {
        // Sync: only step 1 carries a count.
        Ok(0) => !matches!(cursor.read_var::<u32>(), Ok(0)) || count_fits(&mut cursor),
        // Awareness.
        Ok(1) => count_fits(&mut cursor),
        _ => true,
    }
}

/// Whether the blocks of an update (lib0 v1) all end at or below the largest clock, and no item's
/// origins cross. Updates that do not decode pass: yrs refuses them itself.
pub fn clocks_fit(update: &[u8]) -> bool {
    let mut decoder = DecoderV1::new(Cursor::new(update));
    let mut walk = || -> Result<bool, yrs::encoding::read::Error> {
        let clients: u32 = decoder.read_var()?;
        for _ in 0..clients.min(update.len() as u32) {
            let blocks: u32 = decoder.read_var()?;
            let _client = decoder.read_client()?;
            let mut clock: u32 = decoder.read_var()?;
            for _ in 0..blocks.min(update.len() as u32) {
                let Some(len) = block_len(&mut decoder)? else {
                    return Ok(false);
                };
                let Some(next) = clock.checked_add(len) else {
                    return Ok(false);
                };
                clock = next;
            }
        }
        Ok(true)
    };
    walk().unwrap_or(true)
}

/// Reads one block and returns how many clocks it takes, as yrs counts them; `None` for an item
/// whose right origin is an earlier clock of its left origin's client.
fn block_len(decoder: &mut DecoderV1<'_>) -> Result<Option<u32>, yrs::encoding::read::Error> {
    const HAS_ORIGIN: u8 = 0b1000_0000;
    const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
    const HAS_PARENT_SUB: u8 = 0b0010_0000;
    let info = decoder.read_info()?;
    match info {
        BLOCK_SKIP_REF_NUMBER => decoder.read_var().map(Some),
        BLOCK_GC_REF_NUMBER => decoder.read_len().map(Some),
        info => {
            let left = (info & HAS_ORIGIN != 0)
                .then(|| decoder.read_left_id())
                .transpose()?;
            let right = (info & HAS_RIGHT_ORIGIN != 0)
                .then(|| decoder.read_right_id())
                .transpose()?;
            if let (Some(left), Some(right)) = (left, right) {
                if left.client == right.client && right.clock <= left.clock {
                    return Ok(None);
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
            Ok(Some(ItemContent::decode(decoder, info)?.len_utf16()))
        }
    }
}

/// Whether a frame that carries an update carries one whose clocks fit (see [`clocks_fit`]).
pub fn frame_clocks_fit(frame: &[u8]) -> bool {
    use yrs::sync::SyncMessage;
    match Message::decode_v1(frame) {
        Ok(Message::Sync(SyncMessage::Update(update) | SyncMessage::SyncStep2(update))) => {
            clocks_fit(&update)
        }
        _ => true,
    }
}
