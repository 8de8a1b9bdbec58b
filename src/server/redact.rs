//! What logs may say about a document: a short keyed hash of its id, never the id.
//!
//! A document id is a capability (whoever has it can edit), and logs travel further than the
//! server: to log collectors, support tickets, screenshots. A keyed hash still lets the lines
//! of one document be followed; the key is random per process, so a tag cannot be turned back
//! into the id by trying ids.

use crate::doc_id::DocId;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// Printed in place of a document id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocTag(u64);

fn key() -> &'static std::collections::hash_map::RandomState {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEY.get_or_init(std::collections::hash_map::RandomState::new)
}

/// The tag of `id` for logs.
pub fn doc_tag(id: &DocId) -> DocTag {
    let mut hasher = key().build_hasher();
    hasher.write(id.as_str().as_bytes());
    DocTag(hasher.finish())
}

impl fmt::Display for DocTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:012x}", self.0 >> 16)
    }
}

impl fmt::Debug for DocTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
