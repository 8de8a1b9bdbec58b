//! Joins runs of characters an update writes one after another into one item, and runs of
//! collected or skipped clocks into one range, before yrs integrates them.
//!
//! When a transaction commits, yrs merges each client's new items with their left neighbours,
//! walking from the right: every item takes in the text of everything right of it, and the
//! copies are freed only once the walk ends. A run of `n` items costs `n²/2` bytes that way: an
//! update of 64,000 one-character items (480 KB) took 2 GB. Stock clients never send such runs
//! (yrs and Yjs merge typing in their own store before they encode it), but nothing stops a
//! hostile one. Joined here, in one pass, such a run integrates as the one item it would have
//! become anyway.
//!
//! Two neighbouring items join exactly when yrs would join them once integrated: characters of
//! the same client at consecutive clocks, the right one's origin being the left one's last
//! character and both having the same right origin. By the YATA rules an item integrates in the
//! same place whichever of its equivalent encodings arrives, so the document comes out the same.
//!
//! Runs only updates [`super::shape::check`] accepted: characters and deleted runs in one of
//! the document's texts, counts bounded by the bytes, no client twice.

use yrs::block::{ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, ID};
use yrs::encoding::read::{Cursor, Error, Read};
use yrs::encoding::write::Write;
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::IdSet;

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// Where an item without origins belongs.
enum Parent {
    Root(String),
    Item(ID),
}

/// One block of a client's section, as read.
enum Block {
    Skip(u32),
    Gc(u32),
    Item {
        info: u8,
        origin: Option<ID>,
        right_origin: Option<ID>,
        parent: Option<Parent>,
        parent_sub: Option<String>,
        content: ItemContent,
    },
}

/// Returns `update` (lib0 v1) with its runs of characters joined, or `None` when it has none.
///
/// Streams: only the item a run is being joined into is held decoded; every other block is
/// written out as soon as it is read, so joining costs about the update's size again, however
/// many blocks it has.
pub fn join(update: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut decoder = DecoderV1::new(Cursor::new(update));
    let mut encoder = EncoderV1::new();
    let mut joined = false;
    let clients: u32 = decoder.read_var()?;
    encoder.write_var(clients);
    for _ in 0..clients {
        let count: u32 = decoder.read_var()?;
        let client = decoder.read_client()?;
        let start: u32 = decoder.read_var()?;
        // v1 sections are plain concatenations: a section's blocks are written apart and
        // appended once their number is known.
        let mut section = EncoderV1::new();
        let mut written: u32 = 0;
        let mut open: Option<Block> = None;
        let mut clock = start;
        for _ in 0..count {
            let block = read_block(&mut decoder)?;
            let len = match &block {
                Block::Skip(len) | Block::Gc(len) => *len,
                Block::Item { content, .. } => content.len_utf16(),
            };
            let continues = clock.checked_sub(1).map(|last| ID::new(client, last));
            match (&mut open, block) {
                (
                    Some(Block::Item {
                        right_origin: left_right_origin,
                        content: ItemContent::String(left),
                        ..
                    }),
                    Block::Item {
                        origin,
                        right_origin,
                        content: ItemContent::String(right),
                        ..
                    },
                    // yrs drops an empty item without giving it a clock, so the next item's
                    // origin is the character before it: never join into one.
                ) if !left.as_str().is_empty()
                    && origin.is_some()
                    && origin == continues
                    && right_origin == *left_right_origin =>
                {
                    left.push_str(right.as_str());
                    joined = true;
                }
                // Collected or skipped ranges merge as yrs merges them, by adding lengths: two
                // bytes on the wire would otherwise be a hundred-byte block in yrs's memory.
                (Some(Block::Gc(left)), Block::Gc(right))
                | (Some(Block::Skip(left)), Block::Skip(right)) => {
                    *left += right;
                    joined = true;
                }
                (_, block) => {
                    if let Some(done) = open.take() {
                        write_block(&mut section, &done);
                        written += 1;
                    }
                    if matches!(
                        block,
                        Block::Gc(_)
                            | Block::Skip(_)
                            | Block::Item {
                                content: ItemContent::String(_),
                                ..
                            }
                    ) {
                        open = Some(block);
                    } else {
                        write_block(&mut section, &block);
                        written += 1;
                    }
                }
            }
            clock = clock.saturating_add(len);
        }
        if let Some(done) = open.take() {
            write_block(&mut section, &done);
            written += 1;
        }
        encoder.write_var(written);
        encoder.write_client(client);
        encoder.write_var(start);
        encoder.write_all(&section.to_vec());
    }
    if !joined {
        return Ok(None);
    }
    IdSet::decode(&mut decoder)?.encode(&mut encoder);
    Ok(Some(encoder.to_vec()))
}

fn read_block(decoder: &mut DecoderV1<'_>) -> Result<Block, Error> {
    let info = decoder.read_info()?;
    Ok(match info {
        BLOCK_SKIP_REF_NUMBER => Block::Skip(decoder.read_var()?),
        BLOCK_GC_REF_NUMBER => Block::Gc(decoder.read_len()?),
        info => {
            let origin = (info & HAS_ORIGIN != 0)
                .then(|| decoder.read_left_id())
                .transpose()?;
            let right_origin = (info & HAS_RIGHT_ORIGIN != 0)
                .then(|| decoder.read_right_id())
                .transpose()?;
            let (parent, parent_sub) = if origin.is_none() && right_origin.is_none() {
                let parent = if decoder.read_parent_info()? {
                    Parent::Root(decoder.read_string()?.to_owned())
                } else {
                    Parent::Item(decoder.read_left_id()?)
                };
                let sub = (info & HAS_PARENT_SUB != 0)
                    .then(|| decoder.read_string().map(str::to_owned))
                    .transpose()?;
                (Some(parent), sub)
            } else {
                (None, None)
            };
            let content = ItemContent::decode(decoder, info)?;
            Block::Item {
                info,
                origin,
                right_origin,
                parent,
                parent_sub,
                content,
            }
        }
    })
}

/// Writes a block as yrs does (`Block::encode`).
fn write_block(encoder: &mut EncoderV1, block: &Block) {
    match block {
        Block::Skip(len) => {
            encoder.write_info(BLOCK_SKIP_REF_NUMBER);
            encoder.write_var(*len);
        }
        Block::Gc(len) => {
            encoder.write_info(BLOCK_GC_REF_NUMBER);
            encoder.write_len(*len);
        }
        Block::Item {
            info,
            origin,
            right_origin,
            parent,
            parent_sub,
            content,
        } => {
            encoder.write_info(*info);
            if let Some(origin) = origin {
                encoder.write_left_id(origin);
            }
            if let Some(right_origin) = right_origin {
                encoder.write_right_id(right_origin);
            }
            match parent {
                Some(Parent::Root(name)) => {
                    encoder.write_parent_info(true);
                    encoder.write_string(name);
                }
                Some(Parent::Item(id)) => {
                    encoder.write_parent_info(false);
                    encoder.write_left_id(id);
                }
                None => {}
            }
            if let Some(sub) = parent_sub {
                encoder.write_string(sub);
            }
            content.encode(encoder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::CONTENT;
    use yrs::{GetString, ReadTxn, Text, Transact, Update};

    /// An update of `n` one-character items of client 7, each continuing the one before, as a
    /// stock client never sends them: yrs would join them before encoding.
    fn run_of_single_characters(n: u32, text: &str) -> Vec<u8> {
        let client = yrs::block::ClientID::new(7);
        let mut encoder = EncoderV1::new();
        encoder.write_var(1u32);
        encoder.write_var(n);
        encoder.write_client(client);
        encoder.write_var(0u32);
        let characters: Vec<char> = text.chars().collect();
        for clock in 0..n {
            let character = characters[clock as usize % characters.len()].to_string();
            if clock == 0 {
                encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER);
                encoder.write_parent_info(true);
                encoder.write_string(CONTENT);
            } else {
                encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN);
                encoder.write_left_id(&ID::new(client, clock - 1));
            }
            encoder.write_string(&character);
        }
        encoder.write_var(0u32);
        encoder.to_vec()
    }

    fn text_after(updates: &[&[u8]]) -> String {
        let doc = yrs::Doc::with_options(yrs::Options {
            offset_kind: yrs::OffsetKind::Utf16,
            ..Default::default()
        });
        let content = doc.get_or_insert_text(CONTENT);
        let mut txn = doc.transact_mut();
        for update in updates {
            txn.apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }
        assert!(txn.store().pending_update().is_none());
        content.get_string(&txn)
    }

    #[test]
    fn a_run_becomes_one_item_with_the_same_text() {
        let run = run_of_single_characters(1000, "ab");
        let joined = join(&run).unwrap().expect("the run is joined");
        assert!(joined.len() < run.len() / 3, "{} bytes", joined.len());
        assert_eq!(text_after(&[&joined]), "ab".repeat(500));
        assert_eq!(text_after(&[&joined]), text_after(&[&run]));
    }

    #[test]
    fn nothing_is_joined_into_an_empty_item() {
        // "AB" as one item, an empty item after "A", and "Z" after "B": yrs drops the empty
        // item without a clock, so "Z" (whose origin is the clock before it) follows "B".
        // Joined into the empty item, "Z" would take its origin and land after "A".
        let client = yrs::block::ClientID::new(7);
        let mut encoder = EncoderV1::new();
        encoder.write_var(1u32);
        encoder.write_var(3u32);
        encoder.write_client(client);
        encoder.write_var(0u32);
        encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER);
        encoder.write_parent_info(true);
        encoder.write_string(CONTENT);
        encoder.write_string("AB");
        encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN);
        encoder.write_left_id(&ID::new(client, 0));
        encoder.write_string("");
        encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN);
        encoder.write_left_id(&ID::new(client, 1));
        encoder.write_string("Z");
        encoder.write_var(0u32);
        let update = encoder.to_vec();
        let joined = join(&update).unwrap();
        assert_eq!(text_after(&[&update]), "ABZ");
        assert_eq!(text_after(&[joined.as_deref().unwrap_or(&update)]), "ABZ");
    }

    #[test]
    fn collected_ranges_are_joined_into_one() {
        // Client 7: 10,000 collected ranges of one clock each, then "x" after them.
        let client = yrs::block::ClientID::new(7);
        let mut encoder = EncoderV1::new();
        encoder.write_var(1u32);
        encoder.write_var(10_001u32);
        encoder.write_client(client);
        encoder.write_var(0u32);
        for _ in 0..10_000 {
            encoder.write_info(yrs::block::BLOCK_GC_REF_NUMBER);
            encoder.write_len(1);
        }
        encoder.write_info(yrs::block::BLOCK_ITEM_STRING_REF_NUMBER);
        encoder.write_parent_info(true);
        encoder.write_string(CONTENT);
        encoder.write_string("x");
        encoder.write_var(0u32);
        let update = encoder.to_vec();
        let joined = join(&update).unwrap().expect("the ranges are joined");
        assert!(joined.len() < 32, "{} bytes", joined.len());
        let decoded = Update::decode_v1(&joined).unwrap();
        assert_eq!(decoded.state_vector().get(&client), 10_001);
        assert_eq!(text_after(&[&joined]), text_after(&[&update]));
    }

    #[test]
    fn characters_outside_the_basic_plane_count_two_clocks() {
        // Each of these takes two UTF-16 units, so the next item's origin is two clocks on;
        // written as if it took one, the run must not be joined.
        let run = run_of_single_characters(4, "😀");
        assert_eq!(join(&run).unwrap(), None);
    }

    #[test]
    fn updates_without_runs_are_left_as_they_are() {
        let doc = yrs::Doc::new();
        let content = doc.get_or_insert_text(CONTENT);
        content.insert(&mut doc.transact_mut(), 0, "hello world");
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&Default::default());
        assert_eq!(join(&whole).unwrap(), None);
    }

    #[test]
    fn an_item_split_by_an_insertion_is_joined_and_the_insertion_lands_inside() {
        // The store keeps "hello wo" and "rld" apart around the insertion and encodes them as a
        // run; joined, the insertion splits them again where it belongs.
        let doc = yrs::Doc::new();
        let content = doc.get_or_insert_text(CONTENT);
        content.insert(&mut doc.transact_mut(), 0, "hello world");
        content.remove_range(&mut doc.transact_mut(), 2, 3);
        content.insert(&mut doc.transact_mut(), 5, " and more ");
        let whole = doc
            .transact()
            .encode_state_as_update_v1(&Default::default());
        let joined = join(&whole).unwrap().expect("the split item is joined");
        assert_eq!(text_after(&[&joined]), "he wo and more rld");
    }

    #[test]
    fn interleaved_peers_and_deletions_come_out_the_same() {
        // Two peers typing into each other's text, with deletions, sent as one update: whatever
        // is joined must integrate to the same text as what was sent.
        let a = yrs::Doc::with_client_id(1);
        let b = yrs::Doc::with_client_id(2);
        let (ta, tb) = (a.get_or_insert_text(CONTENT), b.get_or_insert_text(CONTENT));
        for step in 0..200u32 {
            let (doc, text) = if step % 3 == 0 { (&b, &tb) } else { (&a, &ta) };
            let mut txn = doc.transact_mut();
            let len = text.len(&txn);
            let at = (step * 7) % (len + 1);
            if step % 5 == 4 && len > 2 {
                text.remove_range(&mut txn, at.min(len - 1), 1);
            } else {
                text.insert(&mut txn, at, if step % 2 == 0 { "x" } else { "yz" });
            }
            drop(txn);
            let sv = b.transact().state_vector();
            let diff = a.transact().encode_state_as_update_v1(&sv);
            b.transact_mut()
                .apply_update(Update::decode_v1(&diff).unwrap())
                .unwrap();
            let sv = a.transact().state_vector();
            let diff = b.transact().encode_state_as_update_v1(&sv);
            a.transact_mut()
                .apply_update(Update::decode_v1(&diff).unwrap())
                .unwrap();
        }
        let whole = a.transact().encode_state_as_update_v1(&Default::default());
        let joined = join(&whole).unwrap().expect("split items are joined");
        assert_eq!(text_after(&[&joined]), ta.get_string(&a.transact()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Whatever two peers type into each other's text, the whole document joined integrates
        /// to the same text as the document as encoded.
        #[test]
        fn joining_never_changes_the_text(
            edits in proptest::collection::vec((0u8..2, 0u32..1000, 0u8..4, "[a-c😀]{1,3}"), 1..120)
        ) {
            let docs = [1, 2].map(|client| yrs::Doc::with_options(yrs::Options {
                client_id: yrs::block::ClientID::new(client),
                offset_kind: yrs::OffsetKind::Utf16,
                ..Default::default()
            }));
            let texts = docs.each_ref().map(|doc| doc.get_or_insert_text(CONTENT));
            for (who, at, kind, insert) in edits {
                let (doc, text) = (&docs[who as usize], &texts[who as usize]);
                let mut txn = doc.transact_mut();
                let len = text.len(&txn);
                if kind == 0 && len > 0 {
                    let at = at % len;
                    text.remove_range(&mut txn, at, (len - at).min(2));
                } else {
                    // UTF-16 offsets may fall inside a surrogate pair; yrs moves them out.
                    text.insert(&mut txn, at % (len + 1), &insert);
                }
                drop(txn);
                if kind == 3 {
                    for (from, to) in [(0, 1), (1, 0)] {
                        let sv = docs[to].transact().state_vector();
                        let diff = docs[from].transact().encode_state_as_update_v1(&sv);
                        docs[to].transact_mut().apply_update(Update::decode_v1(&diff).unwrap()).unwrap();
                    }
                }
            }
            for doc in &docs {
                let whole = doc.transact().encode_state_as_update_v1(&Default::default());
                let joined = join(&whole).unwrap();
                proptest::prop_assert_eq!(
                    text_after(&[joined.as_deref().unwrap_or(&whole)]),
                    text_after(&[&whole])
                );
            }
        }
    }
}
