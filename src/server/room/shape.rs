//! Reads an update's structure before it reaches the replica, to refuse what would break
//! other people's editors or yrs itself.
//!
//! A Tandem document is two plain texts, `content` and `title`, and nothing else. The Yjs
//! encoding does not carry a root's type: every peer decides it by how it reads the root, so an
//! update that writes a map entry or a number into `content` integrates fine on the server and
//! then breaks every stock editor that reads `content` as text. yrs integrates such updates
//! without complaint and a CRDT cannot take an integrated change back, so the check happens
//! first, on the encoded update.
//!
//! The rule is simple enough to hold by induction: an item that names its parent must name one
//! of the two texts (no other roots, no nested types, no map entries), and every item, wherever
//! it lands, holds text (or a deleted run). An item with an origin continues whatever its origin
//! belongs to, which is then one of the two texts too.
//!
//! The walk uses yrs's own decoder (`Decoder`, `ItemContent::decode`), so it reads exactly what
//! yrs will read. It also refuses what yrs does not survive: counts larger than the bytes that
//! could hold them (yrs reserves memory for them first), a client listed twice (yrs then reads
//! freed memory), and clocks past 2^31 - 1 (yrs adds clocks unchecked and measures gaps in an
//! `i32`: such updates panic it, at times while it unwinds, which aborts the process). Stock
//! clients never write any of these: a client's clock counts its characters.

use super::authors::Section;
use std::collections::HashSet;
use yrs::block::{
    ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_BINARY_REF_NUMBER,
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_DOC_REF_NUMBER, BLOCK_ITEM_EMBED_REF_NUMBER,
    BLOCK_ITEM_FORMAT_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
    BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER,
};
use yrs::encoding::read::{Cursor, Read};
use yrs::updates::decoder::{Decoder, DecoderV1};

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const CONTENT_REF: u8 = 0b0001_1111;

/// The largest clock an update may reach.
pub const MAX_CLOCK: u32 = i32::MAX as u32;
/// Most clients one update may write for, or delete from. yrs keeps a few hundred bytes per
/// client, so an update of one character per client takes 30 times its size in memory; this
/// bounds that (to about 30 MiB), far above what documents have (each page that ever wrote is
/// one client).
pub const MAX_CLIENTS: u32 = 65_536;

/// Why an update is refused before it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("undecodable update: {0}")]
    Undecodable(String),
    #[error("update claims {count} entries in {bytes} bytes")]
    ImpossibleCount { count: u64, bytes: usize },
    #[error("update writes a map entry into the text {root:?}")]
    MapEntryInText { root: String },
    #[error("update writes {kind} into a text")]
    NotTextContent { kind: &'static str },
    #[error("update writes into {root:?}, which is not part of a Tandem document")]
    UnknownRoot { root: String },
    #[error("update writes into a nested type, which a Tandem document does not have")]
    NestedType,
    #[error("update lists client {client} twice")]
    RepeatedClient { client: u64 },
    #[error("update reaches past the largest clock ({MAX_CLOCK})")]
    ClockOverflow,
    #[error("update writes for {0} clients, more than {MAX_CLIENTS}")]
    TooManyClients(u32),
}

impl From<yrs::encoding::read::Error> for ShapeError {
    fn from(error: yrs::encoding::read::Error) -> Self {
        ShapeError::Undecodable(error.to_string())
    }
}

/// Checks that `update` (lib0 v1) writes only text into the roots named in `texts`, and returns
/// the clocks it writes, per client.
pub fn check(update: &[u8], texts: &[&str]) -> Result<Vec<Section>, ShapeError> {
    let mut decoder = DecoderV1::new(Cursor::new(update));
    let bounded = |count: u32| {
        // Every client section, block and deleted range takes at least one byte.
        if count as usize > update.len() {
            Err(ShapeError::ImpossibleCount {
                count: count.into(),
                bytes: update.len(),
            })
        } else {
            Ok(())
        }
    };
    let clients: u32 = decoder.read_var()?;
    bounded(clients)?;
    if clients > MAX_CLIENTS {
        return Err(ShapeError::TooManyClients(clients));
    }
    let mut seen = HashSet::new();
    // Not reserved up front: the count is only known not to exceed the bytes.
    let mut sections = Vec::new();
    for _ in 0..clients {
        let blocks: u32 = decoder.read_var()?;
        bounded(blocks)?;
        let client = decoder.read_client()?;
        if !seen.insert(client) {
            return Err(ShapeError::RepeatedClient {
                client: client.get(),
            });
        }
        let start: u32 = decoder.read_var()?;
        let mut clock = advance(start, 0)?;
        for _ in 0..blocks {
            let len = check_block(&mut decoder, texts)?;
            clock = advance(clock, len)?;
        }
        sections.push(Section {
            client,
            start,
            end: clock,
        });
    }
    // The delete set: per client, ranges of clocks.
    let clients: u32 = decoder.read_var()?;
    bounded(clients)?;
    if clients > MAX_CLIENTS {
        return Err(ShapeError::TooManyClients(clients));
    }
    seen.clear();
    for _ in 0..clients {
        let client = decoder.read_client()?;
        if !seen.insert(client) {
            return Err(ShapeError::RepeatedClient {
                client: client.get(),
            });
        }
        let ranges: u32 = decoder.read_var()?;
        bounded(ranges)?;
        for _ in 0..ranges {
            let clock = decoder.read_ds_clock()?;
            let len = decoder.read_ds_len()?;
            advance(clock, len)?;
        }
    }
    Ok(sections)
}

/// The clock after a run of `len` from `clock`, if it stays within [`MAX_CLOCK`].
fn advance(clock: u32, len: u32) -> Result<u32, ShapeError> {
    clock
        .checked_add(len)
        .filter(|end| *end <= MAX_CLOCK)
        .ok_or(ShapeError::ClockOverflow)
}

/// Reads one block and returns how many clocks it takes.
fn check_block(decoder: &mut DecoderV1<'_>, texts: &[&str]) -> Result<u32, ShapeError> {
    let info = decoder.read_info()?;
    match info {
        BLOCK_SKIP_REF_NUMBER => Ok(decoder.read_var()?),
        BLOCK_GC_REF_NUMBER => Ok(decoder.read_len()?),
        info => {
            if info & HAS_ORIGIN != 0 {
                decoder.read_left_id()?;
            }
            if info & HAS_RIGHT_ORIGIN != 0 {
                decoder.read_right_id()?;
            }
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                if !decoder.read_parent_info()? {
                    return Err(ShapeError::NestedType);
                }
                let root = decoder.read_string()?;
                if !texts.contains(&root) {
                    return Err(ShapeError::UnknownRoot {
                        root: root.chars().take(64).collect(),
                    });
                }
                if info & HAS_PARENT_SUB != 0 {
                    return Err(ShapeError::MapEntryInText {
                        root: root.to_owned(),
                    });
                }
            }
            // Judged by its kind before it is decoded: decoding values recurses once per level
            // of nesting (a few kilobytes of nested arrays overflow the stack), and decoding a
            // subdocument builds a document.
            if let Some(kind) = non_text_kind(info & CONTENT_REF) {
                return Err(ShapeError::NotTextContent { kind });
            }
            Ok(ItemContent::decode(decoder, info)?.len_utf16())
        }
    }
}

/// What a plain text cannot hold, by the content's kind in an item's info byte; `None` for
/// characters and deleted runs.
fn non_text_kind(content_ref: u8) -> Option<&'static str> {
    match content_ref {
        BLOCK_ITEM_STRING_REF_NUMBER | BLOCK_ITEM_DELETED_REF_NUMBER => None,
        BLOCK_ITEM_EMBED_REF_NUMBER => Some("an embedded object"),
        BLOCK_ITEM_FORMAT_REF_NUMBER => Some("formatting"),
        BLOCK_ITEM_ANY_REF_NUMBER => Some("values"),
        BLOCK_ITEM_BINARY_REF_NUMBER => Some("binary data"),
        BLOCK_ITEM_DOC_REF_NUMBER => Some("a subdocument"),
        BLOCK_ITEM_JSON_REF_NUMBER => Some("JSON values"),
        BLOCK_ITEM_TYPE_REF_NUMBER => Some("a nested type"),
        _ => Some("content a text cannot hold"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CONTENT, TITLE};
    use yrs::encoding::write::Write;
    use yrs::{Array, Map, Text, Transact};

    const TEXTS: &[&str] = &[CONTENT, TITLE];

    /// Encodes the edits `edit` makes to a fresh document whose roots `prepare` declares
    /// (roots are declared outside the transaction: declaring one opens a transaction of its own).
    fn update<R>(
        prepare: impl FnOnce(&yrs::Doc) -> R,
        edit: impl FnOnce(&R, &mut yrs::TransactionMut),
    ) -> Vec<u8> {
        let doc = yrs::Doc::new();
        let roots = prepare(&doc);
        let mut txn = doc.transact_mut();
        edit(&roots, &mut txn);
        txn.encode_update_v1()
    }

    #[test]
    fn ordinary_text_edits_pass() {
        let bytes = update(
            |doc| {
                (
                    doc.get_or_insert_text(CONTENT),
                    doc.get_or_insert_text(TITLE),
                )
            },
            |(content, title), txn| {
                content.insert(txn, 0, "hello **world**");
                content.remove_range(txn, 0, 2);
                title.insert(txn, 0, "Title");
            },
        );
        assert!(check(&bytes, TEXTS).is_ok());
    }

    #[test]
    fn other_roots_and_nested_types_are_refused() {
        let bytes = update(
            |doc| doc.get_or_insert_map("meta"),
            |meta, txn| {
                meta.insert(txn, "k", 1);
            },
        );
        assert!(matches!(
            check(&bytes, TEXTS),
            Err(ShapeError::UnknownRoot { .. })
        ));
        let bytes = update(
            |doc| doc.get_or_insert_array("list"),
            |list, txn| {
                let nested = list.push_back(txn, yrs::ArrayPrelim::default());
                nested.push_back(txn, 1);
            },
        );
        assert!(check(&bytes, TEXTS).is_err());
    }

    #[test]
    fn formatting_and_embeds_in_a_text_are_refused() {
        let bytes = update(
            |doc| doc.get_or_insert_text(CONTENT),
            |content, txn| {
                content.insert(txn, 0, "plain");
                content.format(
                    txn,
                    0,
                    2,
                    yrs::types::Attrs::from([("b".into(), true.into())]),
                );
            },
        );
        assert!(matches!(
            check(&bytes, TEXTS),
            Err(ShapeError::NotTextContent { kind: "formatting" })
        ));
        let bytes = update(
            |doc| doc.get_or_insert_text(CONTENT),
            |content, txn| {
                content.insert_embed(txn, 0, yrs::Any::from(1));
            },
        );
        assert!(matches!(
            check(&bytes, TEXTS),
            Err(ShapeError::NotTextContent { .. })
        ));
    }

    #[test]
    fn clients_listed_twice_and_clocks_past_the_largest_are_refused() {
        // Two garbage-collected ranges from clock 2^32 - 16: yrs aborts the process on it.
        let past = [
            0x01, 0x02, 0x05, 0xf0, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x20, 0x00, 0x01, 0x00,
        ];
        assert_eq!(check(&past, TEXTS), Err(ShapeError::ClockOverflow));
        // One client (2577) writing one character at clock 2^31 + 2^30.
        let past = [
            0x01, 0x01, 0x91, 0x14, 0x80, 0x80, 0x80, 0x80, 0x0c, 0x04, 0x01, 0x07, b'c', b'o',
            b'n', b't', b'e', b'n', b't', 0x01, b'x', 0x00,
        ];
        assert_eq!(check(&past, TEXTS), Err(ShapeError::ClockOverflow));
        // A deleted range reaching past the largest clock.
        let past = [0x00, 0x01, 0x05, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x07, 0x05];
        assert_eq!(check(&past, TEXTS), Err(ShapeError::ClockOverflow));
        // Client 5 listed twice, each with one character.
        let one = |clock: u8| {
            [
                0x01, 0x05, clock, 0x04, 0x01, 0x07, b'c', b'o', b'n', b't', b'e', b'n', b't',
                0x01, b'x',
            ]
        };
        let mut twice = vec![0x02];
        twice.extend(one(0));
        twice.extend(one(1));
        twice.push(0x00);
        assert_eq!(
            check(&twice, TEXTS),
            Err(ShapeError::RepeatedClient { client: 5 })
        );
    }

    #[test]
    fn deeply_nested_values_are_refused_without_being_decoded() {
        // One item in `content` holding a value nested 100,000 arrays deep (200 KB): decoding
        // it recurses once per level.
        let mut bytes = vec![0x01, 0x01, 0x05, 0x00, 0x08, 0x01, 0x07];
        bytes.extend(b"content");
        bytes.push(0x01);
        for _ in 0..100_000 {
            bytes.extend([0x75, 0x01]);
        }
        bytes.extend([0x7f, 0x00]);
        assert_eq!(
            check(&bytes, TEXTS),
            Err(ShapeError::NotTextContent { kind: "values" })
        );
    }

    #[test]
    fn the_fuzzers_reproducers_are_refused_before_yrs_sees_them() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/regressions/update_shape");
        for name in [
            "repeated_clients_use_after_free",
            "change_encodes_unreadably",
        ] {
            let bytes = std::fs::read(format!("{dir}/{name}")).unwrap();
            assert!(check(&bytes, TEXTS).is_err(), "{name} passed the check");
        }
    }

    #[test]
    fn a_map_where_everyone_has_a_text_is_refused() {
        let bytes = update(
            |doc| doc.get_or_insert_map(CONTENT),
            |content, txn| {
                content.insert(txn, "k", "v");
            },
        );
        assert!(matches!(
            check(&bytes, TEXTS),
            Err(ShapeError::MapEntryInText { .. })
        ));
    }

    #[test]
    fn values_in_a_text_are_refused() {
        let bytes = update(
            |doc| doc.get_or_insert_array(TITLE),
            |title, txn| {
                title.push_back(txn, 42);
            },
        );
        assert_eq!(
            check(&bytes, TEXTS),
            Err(ShapeError::NotTextContent { kind: "values" })
        );
    }

    #[test]
    fn more_clients_than_the_bound_are_refused() {
        // The count alone decides: no client's section is read.
        // Blocks of one client too many, then no blocks and a delete set naming one too many.
        for start in [vec![], vec![0u8]] {
            let mut bytes = start;
            bytes.write_var(MAX_CLIENTS + 1);
            bytes.resize(MAX_CLIENTS as usize * 4, 0);
            assert_eq!(
                check(&bytes, TEXTS),
                Err(ShapeError::TooManyClients(MAX_CLIENTS + 1))
            );
        }
    }

    #[test]
    fn impossible_counts_and_garbage_are_refused() {
        // 2^32-1 clients in five bytes.
        assert!(matches!(
            check(&[0xff, 0xff, 0xff, 0xff, 0x0f], TEXTS),
            Err(ShapeError::ImpossibleCount { .. })
        ));
        assert!(check(&[1, 1, 5], TEXTS).is_err());
    }
}
