//! The identifier of a document, parsed once at the edge.
//!
//! A document's id is its key: whoever knows it can edit. It is 128 random bits written as 22
//! characters of the URL-safe base64 alphabet, so it can sit in a path segment unescaped. Every
//! route and socket parses the raw string into a [`DocId`]; nothing past the edge handles
//! unchecked ids.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Length of a document id in characters (128 bits in base64url without padding).
pub const DOC_ID_LEN: usize = 22;

/// A well-formed document id: exactly 22 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocId(String);

/// Why a string is not a document id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocIdError {
    #[error("a document id has {DOC_ID_LEN} characters, this one has {0}")]
    Length(usize),
    #[error("a document id uses only A-Z, a-z, 0-9, '-' and '_'")]
    Alphabet,
}

impl DocId {
    pub fn parse(raw: &str) -> Result<Self, DocIdError> {
        if raw.len() != DOC_ID_LEN {
            return Err(DocIdError::Length(raw.chars().count()));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(DocIdError::Alphabet);
        }
        Ok(DocId(raw.to_owned()))
    }

    /// Turns 16 random bytes into an id. The caller supplies the randomness so that this
    /// module stays free of any random-number source and works on both sides.
    pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
        use base64::Engine;
        DocId(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DocId {
    type Error = DocIdError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        DocId::parse(&value)
    }
}

impl From<DocId> for String {
    fn from(id: DocId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_base64url_of_the_right_length() {
        let id = DocId::parse("AbCdEfGhIjKlMnOpQr-_09").unwrap();
        assert_eq!(id.as_str(), "AbCdEfGhIjKlMnOpQr-_09");
    }

    #[test]
    fn rejects_wrong_length_and_alphabet() {
        assert_eq!(DocId::parse("short"), Err(DocIdError::Length(5)));
        assert_eq!(DocId::parse(""), Err(DocIdError::Length(0)));
        assert_eq!(
            DocId::parse("AbCdEfGhIjKlMnOpQr-_0="),
            Err(DocIdError::Alphabet)
        );
        assert_eq!(
            DocId::parse("AbCdEfGhIjKlMnOpQr/_09"),
            Err(DocIdError::Alphabet)
        );
        // Multi-byte characters never pass, whatever their count.
        assert!(DocId::parse("ééééééééééé").is_err());
    }

    #[test]
    fn random_bytes_make_a_valid_id() {
        let id = DocId::from_random_bytes([0xff; 16]);
        assert_eq!(id.as_str().len(), DOC_ID_LEN);
        assert_eq!(DocId::parse(id.as_str()).unwrap(), id);
    }
}
