//! Versions of a document, kept for its History.
//!
//! A version is the document's title and text at one moment, with the names of the people who
//! wrote since the one before. They are made by the room (see `room::history`) and kept in the
//! same store as the document, its text deflated. Retention: the newest [`RECENT_VERSIONS`] of a
//! document, and beyond them the newest of each hour, up to [`MAX_VERSIONS`] in all; a version
//! that repeats the one before it is not kept. So a burst of versions (someone joining and
//! leaving in a loop, say) can push out the recent ones, but not the hours before.

use crate::doc_id::DocId;
use serde::{Deserialize, Serialize};

/// Versions kept whatever their age.
pub const RECENT_VERSIONS: usize = 50;
/// Most versions kept per document; the oldest are dropped first.
pub const MAX_VERSIONS: usize = 200;
/// Beyond the recent ones, the newest version of each such period is kept.
pub const HOURLY_MILLIS: i64 = 60 * 60 * 1000;
/// Most author names kept with one version, each at most [`MAX_AUTHOR_CHARS`] long.
pub const MAX_AUTHORS: usize = 16;
pub const MAX_AUTHOR_CHARS: usize = 64;

/// Largest text a stored version may inflate to: more than any document may hold.
pub const MAX_INFLATED_BYTES: usize = 256 * 1024 * 1024;

/// A version's author names as stored: tidied, as a JSON array.
pub fn authors_json(authors: &[String]) -> String {
    serde_json::to_string(&tidy_authors(authors.iter().cloned())).unwrap_or_else(|_| "[]".into())
}

/// What the History list shows of a stored version, its names read back from
/// [`authors_json`]; anything unreadable shows as no names.
pub fn stored_info(id: i64, created_at: i64, authors: &str) -> VersionInfo {
    VersionInfo {
        id,
        created_at,
        authors: serde_json::from_str(authors).unwrap_or_default(),
    }
}

/// A version to keep.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub doc: DocId,
    pub title: String,
    pub content: String,
    pub authors: Vec<String>,
}

/// What the History list shows of a version (not its title: a title may be long, and a list
/// of a hundred of them longer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub id: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub authors: Vec<String>,
}

/// A whole version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    pub info: VersionInfo,
    pub title: String,
    pub content: String,
}

/// Deflates a version's text for storage.
pub fn deflate(text: &str) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(text.as_bytes());
    encoder.finish().unwrap_or_default()
}

/// Inflates a stored version's text; `None` if it does not read, or reads past `limit` bytes.
pub fn inflate(bytes: &[u8], limit: usize) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    flate2::read::ZlibDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_string(&mut text)
        .ok()?;
    (text.len() <= limit).then_some(text)
}

/// Author names as kept: trimmed, cut to [`MAX_AUTHOR_CHARS`], without repeats, at most
/// [`MAX_AUTHORS`].
pub fn tidy_authors(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for name in names {
        let name: String = name.trim().chars().take(MAX_AUTHOR_CHARS).collect();
        if !name.is_empty() && !kept.contains(&name) {
            kept.push(name);
            if kept.len() == MAX_AUTHORS {
                break;
            }
        }
    }
    kept
}
