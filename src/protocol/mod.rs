//! What both sides agree on: the shape of a Tandem document and the extra messages Tandem
//! speaks beside the standard Yjs protocol.
//!
//! # Layout
//! - [`presence`]: who is here and where, in the awareness shape Yjs editors use.
//! - [`diff`]: turns "the text before" and "the text after" an edit into one splice, the
//!   minimal yrs operation for a browser edit.
//! - [`wire`]: the frame codec, one message per WebSocket frame.
//! - [`close`]: the WebSocket close codes the server sends and the page explains.
//!
//! A document is a yrs [`Doc`] counting offsets in UTF-16 code units, the unit of JavaScript
//! strings, so that positions from a browser's `selectionStart` or from a stock Yjs client mean
//! the same character on every replica. It holds two texts: [`CONTENT`], the Markdown source,
//! and [`TITLE`].

pub mod close;
pub mod diff;
pub mod presence;
pub mod wire;

use yrs::{Doc, GetString, OffsetKind, Options, ReadTxn, Transact};

/// Message type of the acknowledgement the server sends a Tandem client once the changes of
/// a frame it sent are durable. Yjs uses types 0 to 3; stock clients never ask for this one.
pub const MSG_SAVED: u8 = 100;

/// Message type of the heartbeat Tandem's client sends; the server answers [`MSG_PONG`].
/// Browsers hide WebSocket pings from pages, so a page needs its own to notice a dead line.
pub const MSG_PING: u8 = 101;
/// The server's answer to [`MSG_PING`].
pub const MSG_PONG: u8 = 102;

/// Query parameter with which Tandem's own client asks for its extra messages.
pub const CLIENT_PARAM: &str = "client";
/// Its value.
pub const CLIENT_TANDEM: &str = "tandem";

/// The header with which `GET /link/{token}` says what a link is (`live`, `none`, `deleted`):
/// a page acts only on an answer that carries it, never on a proxy's or an older server's 404.
pub const LINK_STATUS_HEADER: &str = "tandem-link";

/// Name of the shared text holding the Markdown source.
pub const CONTENT: &str = "content";
/// Name of the shared text holding the document's title.
pub const TITLE: &str = "title";

/// A new, empty document replica with a random client id.
pub fn new_doc() -> Doc {
    let doc = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::default()
    });
    // Declare both roots up front so every replica knows them before the first update.
    doc.get_or_insert_text(CONTENT);
    doc.get_or_insert_text(TITLE);
    doc
}

/// The title alone: reading it must not build the whole Markdown source, which can be
/// megabytes, on every change.
pub fn read_title<T: ReadTxn>(txn: &T) -> String {
    txn.get_text(TITLE)
        .map(|text| text.get_string(txn))
        .unwrap_or_default()
}

/// The title and Markdown source of a document as plain strings.
pub fn read_texts<T: ReadTxn>(txn: &T) -> (String, String) {
    let read = |name: &str| {
        txn.get_text(name)
            .map(|text| text.get_string(txn))
            .unwrap_or_default()
    };
    (read(TITLE), read(CONTENT))
}

/// The title and Markdown source of a document.
pub fn texts_of(doc: &Doc) -> (String, String) {
    read_texts(&doc.transact())
}
