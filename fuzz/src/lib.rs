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
