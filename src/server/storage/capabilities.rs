//! What the store keeps of a document's links (see [`crate::server::capability`]): the hash of
//! each live token, the document it opens, its role and its generation.

use crate::doc_id::DocId;
use crate::server::capability::Role;

/// A live link, found by the hash of its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// The document's internal id.
    pub doc: DocId,
    pub role: Role,
    /// Which generation of the link this is: resetting a link moves it on.
    pub generation: u32,
}

/// A link to store: the hash of its token, and its generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLink {
    pub token_hash: [u8; 32],
    pub generation: u32,
    /// The link comes with a new document, whose row is made with it. Otherwise the document
    /// must exist: a reset that lands after a deletion makes nothing (and no link ever opens a
    /// deleted document again).
    pub new_document: bool,
}
