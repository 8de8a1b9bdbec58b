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
