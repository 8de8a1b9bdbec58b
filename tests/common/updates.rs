//! Updates no stock client sends, built by hand for the tests and benchmarks of what one
//! update costs the server.

use yrs::block::{ClientID, BLOCK_ITEM_STRING_REF_NUMBER, ID};
use yrs::encoding::write::Write;
use yrs::updates::encoder::{Encoder, EncoderV1};

/// An update of `n` one-character items of `client` in `content`, each continuing the one
/// before. Stock clients send such text as one item; sent apart, yrs joins the items when the
/// transaction commits, each taking in the text of all those right of it.
pub fn run_of_single_characters(client: u64, n: u32) -> (Vec<u8>, String) {
    let client = ClientID::new(client);
    let mut encoder = EncoderV1::new();
    let mut text = String::new();
    encoder.write_var(1u32);
    encoder.write_var(n);
    encoder.write_client(client);
    encoder.write_var(0u32);
    for clock in 0..n {
        let character = if clock % 2 == 0 { "a" } else { "b" };
        if clock == 0 {
            encoder.write_info(BLOCK_ITEM_STRING_REF_NUMBER);
            encoder.write_parent_info(true);
            encoder.write_string(tandem::protocol::CONTENT);
        } else {
            encoder.write_info(BLOCK_ITEM_STRING_REF_NUMBER | 0b1000_0000);
            encoder.write_left_id(&ID::new(client, clock - 1));
        }
        encoder.write_string(character);
        text.push_str(character);
    }
    encoder.write_var(0u32);
    (encoder.to_vec(), text)
}

/// An update built to make yrs's conflict resolution walk the text again for every item:
/// client `base` writes `n` characters as one item, and client `base + 1` writes `n`
/// one-character items, each placed after a character further left and with nothing to its
/// right, so that each passes over all the items placed before it. Its cost is quadratic in
/// `n`: 12,000 items take yrs about 17 s on a 2-core machine.
pub fn conflicting_update(n: u32, base: u64) -> Vec<u8> {
    let (base, other) = (ClientID::new(base), ClientID::new(base + 1));
    let mut encoder = EncoderV1::new();
    encoder.write_var(2u32);
    // Higher clients first, as yrs writes them.
    encoder.write_var(n);
    encoder.write_client(other);
    encoder.write_var(0u32);
    for t in 0..n {
        encoder.write_info(BLOCK_ITEM_STRING_REF_NUMBER | 0b1000_0000);
        encoder.write_left_id(&ID::new(base, n - 1 - t));
        encoder.write_string("y");
    }
    encoder.write_var(1u32);
    encoder.write_client(base);
    encoder.write_var(0u32);
    encoder.write_info(BLOCK_ITEM_STRING_REF_NUMBER);
    encoder.write_parent_info(true);
    encoder.write_string(tandem::protocol::CONTENT);
    encoder.write_string(&"x".repeat(n as usize));
    encoder.write_var(0u32);
    encoder.to_vec()
}

/// An update of `m` one-character items of client `client`, placed right to left between the
/// characters of an item of `text_client` that holds `len` characters. yrs finds the place of
/// each by counting UTF-16 units from the start of the item's text, so each costs a walk over
/// it: 16,000 such inserts into a 1 MB paste take yrs 6 s.
pub fn inserts_right_to_left(client: u64, text_client: u64, len: u32, m: u32) -> Vec<u8> {
    let (client, text_client) = (ClientID::new(client), ClientID::new(text_client));
    let step = len / (m + 1);
    let mut encoder = EncoderV1::new();
    encoder.write_var(1u32);
    encoder.write_var(m);
    encoder.write_client(client);
    encoder.write_var(0u32);
    for t in 0..m {
        let at = step * (m - t);
        encoder.write_info(BLOCK_ITEM_STRING_REF_NUMBER | 0b1100_0000);
        encoder.write_left_id(&ID::new(text_client, at - 1));
        encoder.write_right_id(&ID::new(text_client, at));
        encoder.write_string("y");
    }
    encoder.write_var(0u32);
    encoder.to_vec()
}
