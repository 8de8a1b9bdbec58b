//! Links to a document, each a capability: whoever holds one may do what its role allows.
//!
//! A document has an internal id, never shown, and two links: the edit link (`/d/{token}`) and
//! the view link (`/v/{token}`). A token is 128 bits written like a document id (22 characters
//! of base64url), so a stock Yjs client joins with either at `/ws/{token}`.
//!
//! **What is stored.** The store keeps only a hash of each live token, mapped to the document
//! and the role: a leaked database opens nothing. The tokens themselves are derived, not drawn:
//! a keyed hash of the document's internal id, the role and the link's generation, under the
//! [`LinkKey`], which is kept outside the database. So the server (and `tandem links`) can show
//! a document's current links again at any time, and resetting a link is moving its generation
//! on: the new token is derived, the old hash deleted.
//!
//! **Links made before roles existed** were the document's id itself. They keep working: the
//! migration gives each such document a new internal id and stores the old id's hash as its
//! edit capability at generation 0, whose token is that old id (the one token that is not
//! derived). Resetting the edit link moves it to generation 1, derived like any other.

use crate::doc_id::DocId;
use std::path::Path;

/// What a link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Edit,
    View,
}

impl Role {
    /// The name stored beside a capability, and written into derivations.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edit => "edit",
            Role::View => "view",
        }
    }

    pub fn parse(stored: &str) -> Option<Role> {
        match stored {
            "edit" => Some(Role::Edit),
            "view" => Some(Role::View),
            _ => None,
        }
    }
}

/// The hash under which a token is stored and looked up: a token is 128 random-looking bits,
/// so an unkeyed hash is enough to make the stored value useless as a link.
pub fn token_hash(token: &DocId) -> [u8; 32] {
    *blake3::Hasher::new_derive_key("tandem 2026 capability token hash")
        .update(token.as_str().as_bytes())
        .finalize()
        .as_bytes()
}

/// The key tokens are derived under. Kept out of the database: with it and the database, every
/// current link can be shown; with the database alone, none.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

/// Why the link key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LinkKeyError {
    #[error("reading the link key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("writing a new link key {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the link key must be 32 bytes (as 43 or 44 characters of base64); this one is {0}")]
    Length(usize),
    #[error("the link key is not base64: {0}")]
    Encoding(#[from] base64::DecodeError),
}

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

impl LinkKey {
    /// A key given as base64 (for instances sharing a database, which must share it too).
    pub fn from_base64(text: &str) -> Result<LinkKey, LinkKeyError> {
        use base64::Engine;
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| LinkKeyError::Length(bytes.len()))?;
        Ok(LinkKey(key))
    }

    /// The key in `path`, made (32 random bytes, readable by its owner only) if there is none.
    pub fn load_or_create(path: &Path) -> Result<LinkKey, LinkKeyError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| LinkKeyError::Length(bytes.len()))?;
                Ok(LinkKey(key))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                write_private(path, &key).map_err(|source| LinkKeyError::Write {
                    path: path.display().to_string(),
                    source,
                })?;
                Ok(LinkKey(key))
            }
            Err(source) => Err(LinkKeyError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The token of `doc`'s `role` link at `generation`. Generation 0 of the edit link is the
    /// document's old id for documents made before roles; the caller knows which those are.
    pub fn derive(&self, doc: &DocId, role: Role, generation: u32) -> DocId {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(b"tandem link v1\0");
        hasher.update(doc.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(role.as_str().as_bytes());
        hasher.update(&generation.to_be_bytes());
        let mut bits = [0u8; 16];
        bits.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        DocId::from_random_bytes(bits)
    }
}

/// Writes `bytes` to a new file at `path` that only its owner can read, never over one that
/// exists (two processes starting at once keep the first key).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(c: char) -> DocId {
        DocId::parse(&c.to_string().repeat(22)).unwrap()
    }

    #[test]
    fn tokens_are_derived_per_document_role_generation_and_key() {
        let key = LinkKey([7; 32]);
        let edit = key.derive(&doc('a'), Role::Edit, 1);
        assert_eq!(
            edit,
            key.derive(&doc('a'), Role::Edit, 1),
            "the same every time"
        );
        assert_eq!(edit.as_str().len(), 22);
        let others = [
            key.derive(&doc('a'), Role::View, 1),
            key.derive(&doc('a'), Role::Edit, 2),
            key.derive(&doc('b'), Role::Edit, 1),
            LinkKey([8; 32]).derive(&doc('a'), Role::Edit, 1),
        ];
        for other in others {
            assert_ne!(edit, other);
        }
    }

    #[test]
    fn the_stored_hash_is_not_the_token() {
        let token = doc('c');
        let hash = token_hash(&token);
        assert_eq!(hash, token_hash(&token));
        assert_ne!(hash, token_hash(&doc('d')));
        assert!(!hash
            .windows(token.as_str().len())
            .any(|w| w == token.as_str().as_bytes()));
    }

    #[test]
    fn a_key_file_is_made_once_privately_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("link.key");
        let made = LinkKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let read = LinkKey::load_or_create(&path).unwrap();
        assert_eq!(made.0, read.0);
        std::fs::write(&path, b"short").unwrap();
        assert!(matches!(
            LinkKey::load_or_create(&path),
            Err(LinkKeyError::Length(5))
        ));
    }

    #[test]
    fn a_key_in_base64_is_32_bytes() {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
        assert_eq!(LinkKey::from_base64(&text).unwrap().0, [9; 32]);
        assert!(matches!(
            LinkKey::from_base64("c2hvcnQ="),
            Err(LinkKeyError::Length(5))
        ));
        assert!(LinkKey::from_base64("not base64 at all!").is_err());
        assert_eq!(format!("{:?}", LinkKey([1; 32])), "LinkKey(..)");
    }
}
