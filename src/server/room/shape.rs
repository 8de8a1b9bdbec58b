//! Reads an update's structure before it reaches the replica, to refuse what would break
//! other people's editors.
//!
//! A Tandem document is two texts, `content` and `title`. The Yjs encoding does not carry a
//! root's type: every peer decides it by how it reads the root, so an update that writes a
//! map entry or a number into `content` integrates fine on the server and then breaks every
//! stock editor that reads `content` as text. yrs integrates such updates without complaint and
//! a CRDT cannot take an integrated change back, so the check happens first, on the encoded
//! update.
//!
//! The walk uses yrs's own decoder (`Decoder`, `ItemContent::decode`), so it reads exactly what
//! yrs will read. Only items that name their parent explicitly (no left or right origin) can
//! start content in a root; items with an origin continue whatever their origin is part of, so
//! checking the explicit ones is enough to keep the two texts texts. The walk also refuses
//! counts larger than the bytes that could hold them, before yrs reserves memory for them.

use yrs::block::{ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_SKIP_REF_NUMBER};
use yrs::encoding::read::{Cursor, Read};
use yrs::updates::decoder::{Decoder, DecoderV1};

const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;

/// Why an update is refused before it is applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("undecodable update: {0}")]
    Undecodable(String),
    #[error("update claims {count} entries in {bytes} bytes")]
    ImpossibleCount { count: u64, bytes: usize },
    #[error("update writes a map entry into the text {root:?}")]
    MapEntryInText { root: String },
    #[error("update writes {kind} into the text {root:?}")]
    NotTextContent { root: String, kind: &'static str },
}

impl From<yrs::encoding::read::Error> for ShapeError {
    fn from(error: yrs::encoding::read::Error) -> Self {
        ShapeError::Undecodable(error.to_string())
    }
}

/// Checks that `update` (lib0 v1) keeps each root in `texts` a text.
pub fn check(update: &[u8], texts: &[&str]) -> Result<(), ShapeError> {
    let mut decoder = DecoderV1::new(Cursor::new(update));
    let bounded = |count: u64| {
        // Every client section and every block takes at least one byte.
        if count as usize > update.len() {
            Err(ShapeError::ImpossibleCount {
                count,
                bytes: update.len(),
            })
        } else {
            Ok(())
        }
    };
    let clients: u32 = decoder.read_var()?;
    bounded(clients.into())?;
    for _ in 0..clients {
        let blocks: u32 = decoder.read_var()?;
        bounded(blocks.into())?;
        let _client = decoder.read_client()?;
        let _clock: u32 = decoder.read_var()?;
        for _ in 0..blocks {
            check_block(&mut decoder, texts)?;
        }
    }
    Ok(())
}

fn check_block(decoder: &mut DecoderV1<'_>, texts: &[&str]) -> Result<(), ShapeError> {
    let info = decoder.read_info()?;
    match info {
        BLOCK_SKIP_REF_NUMBER => {
            let _: u32 = decoder.read_var()?;
        }
        BLOCK_GC_REF_NUMBER => {
            decoder.read_len()?;
        }
        info => {
            if info & HAS_ORIGIN != 0 {
                decoder.read_left_id()?;
            }
            if info & HAS_RIGHT_ORIGIN != 0 {
                decoder.read_right_id()?;
            }
            let explicit_parent = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
            let mut root = None;
            let mut map_entry = false;
            if explicit_parent {
                if decoder.read_parent_info()? {
                    root = Some(decoder.read_string()?.to_owned());
                } else {
                    decoder.read_left_id()?;
                }
                if info & HAS_PARENT_SUB != 0 {
                    decoder.read_string()?;
                    map_entry = true;
                }
            }
            let content = ItemContent::decode(decoder, info)?;
            if let Some(root) = root.filter(|root| texts.contains(&root.as_str())) {
                if map_entry {
                    return Err(ShapeError::MapEntryInText { root });
                }
                if let Some(kind) = non_text_kind(&content) {
                    return Err(ShapeError::NotTextContent { root, kind });
                }
            }
        }
    }
    Ok(())
}

/// What a text cannot hold, by name; `None` for text content.
fn non_text_kind(content: &ItemContent) -> Option<&'static str> {
    match content {
        ItemContent::String(_)
        | ItemContent::Embed(_)
        | ItemContent::Format(_, _)
        | ItemContent::Deleted(_) => None,
        ItemContent::Any(_) => Some("values"),
        ItemContent::Binary(_) => Some("binary data"),
        ItemContent::Doc(_, _) => Some("a subdocument"),
        ItemContent::JSON(_) => Some("JSON values"),
        ItemContent::Type(_) => Some("a nested type"),
        #[allow(unreachable_patterns)]
        _ => Some("content a text cannot hold"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CONTENT, TITLE};
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
        assert_eq!(check(&bytes, TEXTS), Ok(()));
    }

    #[test]
    fn other_roots_may_be_anything() {
        let bytes = update(
            |doc| {
                (
                    doc.get_or_insert_map("meta"),
                    doc.get_or_insert_array("list"),
                )
            },
            |(meta, list), txn| {
                meta.insert(txn, "k", 1);
                list.push_back(txn, 2);
            },
        );
        assert_eq!(check(&bytes, TEXTS), Ok(()));
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
        assert!(matches!(
            check(&bytes, TEXTS),
            Err(ShapeError::NotTextContent { .. })
        ));
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
