//! Tandem: a real-time collaborative Markdown editor.
//!
//! The same crate is the server (feature `ssr`) and the browser app (feature `hydrate`).
//!
//! # Layout
//! - [`app`]: the pages, compiled for both sides.
//! - [`protocol`]: the document's shape and edit diffing, shared by both sides.
//! - [`doc_id`]: the document id, parsed at every edge.
//! - [`markdown`]: the safe Markdown preview renderer, shared by both sides.
//! - [`formatting`]: what the Markdown toolbar and its shortcuts do to the source.
//! - [`undo`]: undo and redo of this person's own changes, used by the browser.
//! - [`reconnect`]: the browser's decisions about its connection (backoff, refusals, waking).
//! - `server` (feature `ssr`): HTTP, WebSocket sessions and the open documents.
//! - `client` (feature `hydrate`): the browser's replica, socket and editor binding.

// The editor's view is one deeply nested type; without erased component types
// (`--cfg erase_components`, which the test builds use) its release build needs more than the
// default depth.
#![recursion_limit = "256"]

pub mod acks;
pub mod app;
pub mod doc_id;
pub mod formatting;
pub mod markdown;
pub mod offline_limits;
pub mod pieces;
pub mod protocol;
pub mod reconnect;
pub mod undo;

#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
pub mod client;
