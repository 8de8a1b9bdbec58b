//! Document ids as they may appear in logs.
//!
//! A document id is the key to the document: whoever reads it in a log can edit. Logs name a
//! document by a tag instead, a short keyed hash of its id. One process gives one document one
//! tag, so its lines can still be followed; the key is drawn at random when the process starts
//! and never written anywhere, so a tag cannot be turned back into the id, nor checked against
//! a guessed id, nor matched across restarts.

use crate::doc_id::DocId;
use std::fmt;
use std::sync::OnceLock;

/// How a log line names a document: 12 hex characters (48 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocTag([u8; 6]);

/// The tag of `id` in this process's logs.
pub fn doc_tag(id: &DocId) -> DocTag {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let hash = blake3::keyed_hash(key, id.as_str().as_bytes());
    let mut tag = [0; 6];
    tag.copy_from_slice(&hash.as_bytes()[..6]);
    DocTag(tag)
}

impl fmt::Display for DocTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DocTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_stable_short_and_says_nothing_of_the_id() {
        let id = DocId::from_random_bytes([7; 16]);
        let other = DocId::from_random_bytes([8; 16]);
        let tag = doc_tag(&id).to_string();
        assert_eq!(tag.len(), 12);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(doc_tag(&id).to_string(), tag, "one document, one tag");
        assert_ne!(doc_tag(&other).to_string(), tag);
        assert!(!id.as_str().contains(&tag) && !tag.contains(&id.as_str()[..6]));
    }
}
