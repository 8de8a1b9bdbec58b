//! The document's offline copy: merged in before the first connection, written back a moment
//! after each change (see [`super::offline`] for where and within which bounds).

use super::*;

/// Edits made here while offline, perhaps in a tab since closed, are merged in (never swapped)
/// before the first connection, so that its handshake carries them to the server. Should the
/// browser's store take longer than [`OFFLINE_LOAD_WAIT_MS`], the page connects anyway, and a
/// copy that turns up later and adds something replaces the connection so a new handshake
/// carries it.
pub(super) fn offline_then_connect(session: &Shared) {
    let weak = Rc::downgrade(session);
    let fallback = Timeout::new(OFFLINE_LOAD_WAIT_MS, move || {
        if let Some(session) = weak.upgrade() {
            start_connecting(&session);
        }
    });
    let weak = Rc::downgrade(session);
    wasm_bindgen_futures::spawn_local(async move {
        let id = match weak.upgrade() {
            Some(session) => session.borrow().parts.id.as_str().to_string(),
            None => return,
        };
        let copies = match offline::Copies::open().await {
            Ok(copies) => Some(Rc::new(copies)),
            Err(error) => {
                leptos::logging::warn!("Tandem: offline copies unavailable: {error}");
                None
            }
        };
        let mut kept = Vec::new();
        if let Some(copies) = &copies {
            match copies.load(&id).await {
                Ok(Some(copy)) => kept.push(copy),
                Ok(None) => {}
                Err(error) => leptos::logging::warn!("Tandem: offline copy unreadable: {error}"),
            }
        }
        kept.extend(offline::legacy_copy(&id));
        let Some(session) = weak.upgrade() else {
            return;
        };
        drop(fallback);
        let added = {
            let mut s = session.borrow_mut();
            s.copies = copies;
            let before = s.doc.transact().state_vector();
            for copy in &kept {
                s.apply_remote(copy);
            }
            // The copy is rewritten from now on, also when nothing changes, so a legacy copy
            // moves over.
            s.unsaved_since.get_or_insert(0.0);
            let after = s.doc.transact().state_vector();
            after != before
        };
        let connected = session.borrow().connect_started;
        if !connected {
            start_connecting(&session);
        } else if added {
            connection::replace(&session);
        }
    });
}

/// Makes the first connection attempt, once.
fn start_connecting(session: &Shared) {
    if std::mem::replace(&mut session.borrow_mut().connect_started, true) {
        return;
    }
    connect(session);
}

impl Session {
    /// Writes the replica to the browser's store for offline use, unless a write is under way
    /// (the copy stays behind and the next tick tries again) or the browser has no store.
    pub(super) fn save_locally(&mut self) {
        if self.saving {
            return;
        }
        let Some(copies) = self.copies.clone() else {
            self.unsaved_since = None;
            return;
        };
        let state = self
            .doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        self.unsaved_since = None;
        self.saving = true;
        let id = self.parts.id.as_str().to_string();
        let weak = CURRENT.with(|current| current.borrow().clone());
        wasm_bindgen_futures::spawn_local(async move {
            let outcome = copies.save(&id, &state).await;
            let Some(session) = weak.upgrade() else {
                return;
            };
            let mut s = session.borrow_mut();
            s.saving = false;
            match outcome {
                Ok(offline::Saved::Stored) => {}
                Ok(offline::Saved::TooLarge) => leptos::logging::warn!(
                    "Tandem: this document is too large to keep offline ({} bytes)",
                    state.len()
                ),
                Err(error) => {
                    leptos::logging::warn!("Tandem: the offline copy was not written: {error}");
                    let retry_at = js_sys::Date::now() + SAVE_LOCALLY_RETRY_MS;
                    s.unsaved_since = Some(retry_at - SAVE_LOCALLY_AFTER_MS);
                }
            }
        });
    }
}
