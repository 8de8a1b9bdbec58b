//! The recorded editing traces in `tests/data/traces/` (CC BY 4.0), replayed into a replica one
//! update per transaction, as an editor would send them. Shared by tests and benchmarks.

use yrs::{Doc, Text, Transact};

#[derive(serde::Deserialize)]
pub struct Trace {
    #[serde(rename = "endContent")]
    pub end_content: String,
    pub txns: Vec<TraceTxn>,
}

#[derive(serde::Deserialize)]
pub struct TraceTxn {
    /// `(position, deleted, inserted)`, positions in Unicode code points.
    pub patches: Vec<(u32, u32, String)>,
}

/// Reads `tests/data/traces/{name}` (copied into the repository with its attribution).
pub fn load(name: &str) -> Trace {
    let path = format!("{}/tests/data/traces/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let trace: Trace = serde_json::from_reader(flate2::read::GzDecoder::new(file)).unwrap();
    // Positions count code points; with ASCII text they equal the document's UTF-16 offsets.
    assert!(
        trace.end_content.is_ascii(),
        "replay assumes an ASCII trace"
    );
    trace
}

/// Applies every transaction of `trace` to the text `name` of `author`, calling `each` with
/// the update each transaction produced.
pub fn replay(trace: &Trace, author: &Doc, name: &str, mut each: impl FnMut(Vec<u8>)) {
    let text = author.get_or_insert_text(name);
    for txn in &trace.txns {
        let mut t = author.transact_mut();
        for (at, delete, insert) in &txn.patches {
            if *delete > 0 {
                text.remove_range(&mut t, *at, *delete);
            }
            if !insert.is_empty() {
                text.insert(&mut t, *at, insert);
            }
        }
        each(t.encode_update_v1());
    }
}
