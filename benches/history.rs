//! What the History costs in storage: the automerge-paper trace (259,778 edits of one
//! writer, `tests/data/traces/`, CC BY 4.0) replayed with a version kept every
//! `EDITS_PER_VERSION` edits, stored as the server stores them (SQLite, deflated, retained as the
//! server retains them: all made within the hour here, so the recent 50). Prints bytes of versions per byte of the final document, for all versions made and
//! for those retained.
//!
//! Run: `cargo bench --no-default-features --features ssr --bench history`.

#[path = "../tests/common/trace.rs"]
mod trace;

use tandem::doc_id::DocId;
use tandem::server::storage::sqlite::{SqliteStore, DB_FILE};
use tandem::server::storage::{DocStore, NewVersion};
use yrs::{GetString, Transact};

/// A version every this many edits: about one per five minutes of steady typing at 15 edits a
/// minute would be 75; this is a busier writer.
const EDITS_PER_VERSION: usize = 2_000;

fn main() {
    let trace = trace::load("automerge-paper.json.gz");
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), 0).unwrap();
    let id = DocId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
    let author = tandem::protocol::new_doc();
    // The replay calls back inside the author's transaction: the text is read off a mirror.
    let mirror = tandem::protocol::new_doc();
    let text = mirror.get_or_insert_text(tandem::protocol::CONTENT);
    let (mut edits, mut made, mut made_bytes) = (0usize, 0usize, 0usize);
    trace::replay(&trace, &author, tandem::protocol::CONTENT, |update| {
        use yrs::updates::decoder::Decode;
        mirror
            .transact_mut()
            .apply_update(yrs::Update::decode_v1(&update).unwrap())
            .unwrap();
        edits += 1;
        if edits % EDITS_PER_VERSION == 0 {
            let content = text.get_string(&mirror.transact());
            made_bytes += tandem::server::storage::versions::deflate(&content).len();
            let kept = store
                .add_version(&NewVersion {
                    doc: id.clone(),
                    title: String::new(),
                    content,
                    authors: vec!["Writer".into()],
                })
                .unwrap();
            made += usize::from(kept.is_some());
        }
    });
    let document = text.get_string(&mirror.transact()).len();
    let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
    let (retained, retained_bytes): (i64, i64) = conn
        .query_row(
            "SELECT count(*), sum(length(content)) FROM versions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    println!(
        "automerge-paper, a version every {EDITS_PER_VERSION} edits: {made} versions made, {:.2} bytes of versions per byte of document ({} bytes); {retained} retained, {:.2} bytes per byte",
        made_bytes as f64 / document as f64,
        document,
        retained_bytes as f64 / document as f64,
    );
}
