//! Each open document's local state, kept in the browser's IndexedDB so that edits made offline
//! survive a closed tab or a reload and reach the server the next time the page connects.
//!
//! The copy is the whole replica as one yrs update, merged (never swapped) into the page's
//! replica on load: whatever the server holds meanwhile is kept, and the handshake sends the
//! server only what it lacks. IndexedDB rather than local storage: local storage holds a few
//! MiB of strings per site, so a document over 1 MiB could not be kept there. Storage is
//! bounded by [`crate::offline_limits`]: at most 50 documents of at most 32 MiB each and 256
//! MiB in all, the oldest dropped first, also when the browser's own quota is full.
//!
//! Two object stores, written in one transaction: `copies` (id → the state's bytes) and
//! `kept` (id → [`Kept`] as JSON), so the bounds are checked without reading any state.

use crate::offline_limits::{self, Kept, Plan};
use idb::{Database, Factory, ObjectStoreParams, TransactionMode, TransactionResult};
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};

const DATABASE: &str = "tandem";
const VERSION: u32 = 1;
const COPIES: &str = "copies";
const KEPT: &str = "kept";
/// Times a write that found the quota full is tried again, each dropping one more old copy.
const SQUEEZES: usize = 4;
/// Where earlier versions kept copies in local storage; read once, then removed.
const LEGACY_PREFIX: &str = "tandem.doc.";
const LEGACY_INDEX: &str = "tandem.docs";

/// Why a copy could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("IndexedDB: {0}")]
    Database(#[from] idb::Error),
    #[error("the browser's storage quota is full")]
    Quota,
}

/// What became of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Stored,
    /// Over [`offline_limits::MAX_COPY_BYTES`]: not kept (an older copy stays).
    TooLarge,
    /// Nothing the server lacks, and no room without dropping a copy that holds unconfirmed
    /// changes: not kept.
    NoRoom,
}

/// The browser's store of offline copies.
pub struct Copies {
    db: Database,
}

impl Copies {
    /// Opens (on first use, creates) the store.
    pub async fn open() -> Result<Copies, OfflineError> {
        let mut request = Factory::new()?.open(DATABASE, Some(VERSION))?;
        request.on_upgrade_needed(|event| {
            use idb::DatabaseEvent;
            let Ok(db) = event.database() else { return };
            let existing = db.store_names();
            for store in [COPIES, KEPT] {
                if !existing.iter().any(|name| name == store) {
                    let _ = db.create_object_store(store, ObjectStoreParams::new());
                }
            }
        });
        let mut db = request.await?;
        // A newer version of the page wants to change the store's shape: step aside (this
        // page's saves then fail, and it reopens the store the next time it saves).
        db.on_version_change(|event| {
            use wasm_bindgen::JsCast;
            if let Some(db) = event
                .target()
                .and_then(|target| target.dyn_into::<web_sys::IdbDatabase>().ok())
            {
                db.close();
            }
        });
        Ok(Copies { db })
    }

    /// The stored state of document `id`, if any (a copy over the size bound is ignored).
    pub async fn load(&self, id: &str) -> Result<Option<Vec<u8>>, OfflineError> {
        let tx = self.db.transaction(&[COPIES], TransactionMode::ReadOnly)?;
        let value = tx.object_store(COPIES)?.get(JsValue::from_str(id))?.await?;
        Ok(value
            .and_then(|value| value.dyn_into::<Uint8Array>().ok())
            .filter(|bytes| u64::from(bytes.length()) <= offline_limits::MAX_COPY_BYTES)
            .map(|bytes| bytes.to_vec()))
    }

    /// Removes document `id`'s copy.
    pub async fn remove(&self, id: &str) -> Result<(), OfflineError> {
        let tx = self
            .db
            .transaction(&[COPIES, KEPT], TransactionMode::ReadWrite)?;
        tx.object_store(COPIES)?
            .delete(JsValue::from_str(id))?
            .await?;
        tx.object_store(KEPT)?
            .delete(JsValue::from_str(id))?
            .await?;
        tx.await?;
        Ok(())
    }

    /// Stores `state` as document `id`'s copy within the bounds, dropping others as needed
    /// (see [`offline_limits::plan`]); when the browser's quota is full, drops one more and
    /// tries again. `unsynced`: the state holds changes the server has not confirmed. `writer`
    /// names this page: a copy another tab wrote since is merged with rather than replaced.
    pub async fn save(
        &self,
        id: &str,
        state: &[u8],
        unsynced: bool,
        writer: &str,
    ) -> Result<Saved, OfflineError> {
        for squeeze in 0..=SQUEEZES {
            match self.try_save(id, state, unsynced, writer, squeeze).await {
                Ok(Some(saved)) => {
                    if saved == Saved::Stored {
                        forget_legacy(id);
                    }
                    return Ok(saved);
                }
                Ok(None) => continue,
                Err(OfflineError::Database(idb::Error::DomException(error)))
                    if error.name() == "QuotaExceededError" =>
                {
                    continue
                }
                Err(error) => return Err(error),
            }
        }
        Err(OfflineError::Quota)
    }

    /// One attempt at [`Self::save`]; `None` when the transaction was aborted (the quota).
    async fn try_save(
        &self,
        id: &str,
        state: &[u8],
        unsynced: bool,
        writer: &str,
        squeeze: usize,
    ) -> Result<Option<Saved>, OfflineError> {
        let tx = self
            .db
            .transaction(&[COPIES, KEPT], TransactionMode::ReadWrite)?;
        let copies = tx.object_store(COPIES)?;
        let kept_store = tx.object_store(KEPT)?;
        let kept = tidy(&copies, &kept_store).await?;
        let key = JsValue::from_str(id);
        // Another tab wrote this document's copy since: keep what it holds too.
        let theirs = kept
            .iter()
            .any(|other| other.id == id && other.writer != writer);
        let merged = if theirs {
            copies
                .get(key.clone())?
                .await?
                .and_then(|value| value.dyn_into::<Uint8Array>().ok())
                .and_then(|other| yrs::merge_updates_v1([other.to_vec().as_slice(), state]).ok())
        } else {
            None
        };
        let state = merged.as_deref().unwrap_or(state);
        let about = Kept {
            id: id.to_string(),
            bytes: state.len() as u64,
            saved_at: js_sys::Date::now(),
            unsynced: unsynced || theirs,
            writer: writer.to_string(),
        };
        let saved = match offline_limits::plan(&kept, &about, squeeze) {
            // The old copy stays: smaller, but what it holds is still the document's.
            Plan::TooLarge => Saved::TooLarge,
            Plan::NoRoom => Saved::NoRoom,
            Plan::Store { drop } => {
                for old in drop {
                    let old = JsValue::from_str(&old);
                    copies.delete(old.clone())?.await?;
                    kept_store.delete(old)?.await?;
                }
                let about = serde_json::to_string(&about).unwrap_or_default();
                copies
                    .put(&Uint8Array::from(state).into(), Some(&key))?
                    .await?;
                kept_store
                    .put(&JsValue::from_str(&about), Some(&key))?
                    .await?;
                Saved::Stored
            }
        };
        Ok(match tx.await? {
            TransactionResult::Committed => Some(saved),
            TransactionResult::Aborted => None,
        })
    }
}

/// Reads what is known of the stored copies, and removes what the bounds cannot account for:
/// records that are not a readable, believable [`Kept`] under their own id (see
/// [`Kept::is_sound`]), and copies without a record.
/// Only this page's own code writes here, but a store damaged by a crash, by another version or
/// by hand must not grow past the bounds unseen.
async fn tidy(
    copies: &idb::ObjectStore,
    kept_store: &idb::ObjectStore,
) -> Result<Vec<Kept>, OfflineError> {
    let now = js_sys::Date::now();
    let keys = kept_store.get_all_keys(None, None)?.await?;
    let values = kept_store.get_all(None, None)?.await?;
    let mut kept = Vec::new();
    let mut junk = Vec::new();
    for (key, value) in keys.into_iter().zip(values) {
        let record = value
            .as_string()
            .and_then(|json| serde_json::from_str::<Kept>(&json).ok())
            .filter(|record| key.as_string().as_deref() == Some(record.id.as_str()))
            .filter(|record| record.is_sound(now));
        match record {
            Some(record) => kept.push(record),
            None => junk.push(key),
        }
    }
    for key in copies.get_all_keys(None, None)?.await? {
        let recorded = key
            .as_string()
            .is_some_and(|id| kept.iter().any(|record| record.id == id));
        if !recorded && !junk.contains(&key) {
            junk.push(key);
        }
    }
    for key in junk {
        copies.delete(key.clone())?.await?;
        kept_store.delete(key)?.await?;
    }
    Ok(kept)
}

/// A copy an earlier version of the page kept in local storage, if any. It is merged like any
/// copy and removed once saved in IndexedDB.
pub fn legacy_copy(id: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let encoded = legacy_storage()?
        .get_item(&format!("{LEGACY_PREFIX}{id}"))
        .ok()??;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
}

/// Local storage, if it holds copies from an earlier version at all.
fn legacy_storage() -> Option<web_sys::Storage> {
    use gloo_storage::Storage;
    super::local_storage_usable()
        .then(gloo_storage::LocalStorage::raw)
        .filter(|storage| storage.get_item(LEGACY_INDEX).ok().flatten().is_some())
}

fn forget_legacy(id: &str) {
    let Some(storage) = legacy_storage() else {
        return;
    };
    let _ = storage.remove_item(&format!("{LEGACY_PREFIX}{id}"));
    let none_left = (0..storage.length().unwrap_or(0))
        .filter_map(|i| storage.key(i).ok().flatten())
        .all(|key| !key.starts_with(LEGACY_PREFIX));
    if none_left {
        let _ = storage.remove_item(LEGACY_INDEX);
    }
}

/// What the page holds that its copy lacks, written at once into local storage when the page
/// is hidden or left with changes the server has not confirmed: a write to IndexedDB takes
/// several steps and may not finish before the page is gone, a write to local storage is done
/// when the call returns. One entry per tab (`tandem.unsaved.{id}.{writer}`), so two tabs do not
/// overwrite each other's. Merged on the next load like a copy, and removed once a copy holding
/// it is stored.
pub mod unsaved {
    use base64::Engine;

    const PREFIX: &str = "tandem.unsaved.";
    /// Larger differences are not put in local storage (its whole quota is a few MiB).
    const MAX_BYTES: usize = 1024 * 1024;

    fn storage() -> Option<web_sys::Storage> {
        use gloo_storage::Storage;
        super::super::local_storage_usable().then(gloo_storage::LocalStorage::raw)
    }

    /// Keeps `update` for document `id` as tab `writer`'s entry, replacing its last one
    /// (`update` includes it). Returns whether it was kept.
    pub fn keep(id: &str, writer: &str, update: &[u8]) -> bool {
        let Some(storage) = storage() else {
            return false;
        };
        let key = format!("{PREFIX}{id}.{writer}");
        if update.len() > MAX_BYTES {
            leptos::logging::warn!("Tandem: too much unsaved to put in local storage");
            let _ = storage.remove_item(&key);
            return false;
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(update);
        let kept = storage.set_item(&key, &encoded).is_ok();
        if !kept {
            leptos::logging::warn!("Tandem: local storage is full; unsaved changes not kept");
        }
        kept
    }

    /// Every entry kept for document `id`, by any tab: its key, its text as stored, and the
    /// update.
    pub fn all(id: &str) -> Vec<(String, String, Vec<u8>)> {
        let Some(storage) = storage() else {
            return Vec::new();
        };
        let prefix = format!("{PREFIX}{id}.");
        let keys: Vec<String> = (0..storage.length().unwrap_or(0))
            .filter_map(|i| storage.key(i).ok().flatten())
            .filter(|key| key.starts_with(&prefix))
            .collect();
        keys.into_iter()
            .filter_map(|key| {
                let text = storage.get_item(&key).ok()??;
                let update = base64::engine::general_purpose::STANDARD
                    .decode(&text)
                    .ok()?;
                Some((key, text, update))
            })
            .collect()
    }

    /// Removes entry `key` if it still holds `text` (its tab may have written a newer one).
    pub fn forget_if_unchanged(key: &str, text: &str) {
        let Some(storage) = storage() else { return };
        if storage.get_item(key).ok().flatten().as_deref() == Some(text) {
            let _ = storage.remove_item(key);
        }
    }

    /// Removes tab `writer`'s entry for document `id`.
    pub fn forget(id: &str, writer: &str) {
        if let Some(storage) = storage() {
            let _ = storage.remove_item(&format!("{PREFIX}{id}.{writer}"));
        }
    }

    /// Removes every entry for document `id`.
    pub fn forget_all(id: &str) {
        for (key, text, _) in all(id) {
            forget_if_unchanged(&key, &text);
        }
    }
}

/// The [`MergeMark`](crate::offline_limits::MergeMark) of each document, in local storage.
pub mod merging {
    use crate::offline_limits::MergeMark;

    const PREFIX: &str = "tandem.merging.";

    /// The mark left for document `id`, if any.
    pub fn mark(id: &str) -> Option<MergeMark> {
        super::super::load_local(&format!("{PREFIX}{id}"))
    }

    pub fn begin(id: &str, mark: MergeMark) {
        super::super::save_local(&format!("{PREFIX}{id}"), &mark);
    }

    pub fn end(id: &str) {
        use gloo_storage::Storage;
        if super::super::local_storage_usable() {
            let _ = gloo_storage::LocalStorage::raw().remove_item(&format!("{PREFIX}{id}"));
        }
    }
}
