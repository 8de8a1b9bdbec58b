//! The document's offline copy: merged in before the first connection, written back a moment
//! after each change (see [`super::offline`] for where and within which bounds, and
//! [`crate::offline_limits::SaveSchedule`] for when).

use super::*;
use crate::offline_limits::{
    merge_verdict, MergeMark, MergeVerdict, SaveSchedule, Written, AFTER_OWN_CHANGE_MS,
};
use offline::{merging, unsaved};

/// The page's side of its offline copy.
pub(super) struct Keeping {
    /// The browser's store, once open (never, if the browser has none or the copy there could
    /// not be read: writing would replace what was not read).
    copies: Option<Rc<offline::Copies>>,
    /// A write failed: the store is reopened before the next one (the browser may have closed
    /// it, say after the site's data was cleared).
    stale: bool,
    pub(super) schedule: SaveSchedule,
    /// The state vector of the last copy stored: what is newer goes to local storage when the
    /// page is hidden or left.
    saved: Option<yrs::StateVector>,
    /// Writes started so far; each is numbered by this.
    writes: u64,
    /// This tab's entry in local storage was made after write number so-and-so started: a later
    /// write holds it, and removes it once stored.
    unsaved_after: Option<u64>,
    /// Entries merged on load (key and text as read): removed once a copy holding them is
    /// stored, unless their tab has written them again since.
    unsaved_merged: Vec<(String, String)>,
    /// Names this page as the writer of its copies (random per page load).
    writer: String,
    /// The document was deleted: its copy was removed, and none is written again.
    dropped: bool,
}

impl Keeping {
    pub(super) fn new() -> Keeping {
        Keeping {
            copies: None,
            stale: false,
            schedule: SaveSchedule::default(),
            saved: None,
            writes: 0,
            unsaved_after: None,
            unsaved_merged: Vec::new(),
            writer: format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64),
            dropped: false,
        }
    }
}

/// Edits made here while offline, perhaps in a tab since closed, are merged in (never swapped)
/// before the first connection, so that its handshake carries them to the server. Should the
/// browser's store take longer than [`OFFLINE_LOAD_WAIT_MS`], the page connects anyway, and a
/// copy that turns up later replaces the connection so a new handshake carries it.
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
        let (copies, kept, merged, verdict) = read_copies(&id).await;
        let Some(session) = weak.upgrade() else {
            return;
        };
        drop(fallback);
        {
            let mut s = session.borrow_mut();
            s.keeping.copies = copies;
            s.keeping.unsaved_merged = merged;
            let now = js_sys::Date::now();
            if let MergeVerdict::Merge { tries, mark: true } = verdict {
                merging::begin(&id, MergeMark { at: now, tries });
            }
            for copy in &kept {
                // Straight in, even during a composition: held, it would miss the handshake.
                s.integrate(copy);
            }
            if let MergeVerdict::Merge { mark: true, .. } = verdict {
                merging::end(&id);
            }
            if kept.is_empty() {
                // Nothing of this person's: written when the server's state has come.
                s.changed_elsewhere();
            } else {
                s.keeping.schedule.changed_here(now - AFTER_OWN_CHANGE_MS);
            }
        }
        let connected = session.borrow().connect_started;
        if !connected {
            start_connecting(&session);
        } else if !kept.is_empty() {
            // A deletion changes no state vector: replace the connection whatever the copy
            // held, and the handshake sends the server whatever it lacks.
            connection::replace(&session);
        }
    });
}

/// What was read on load: the store, the copies to merge, the local-storage entries among them
/// (key and text), and what to do about a failed merge before.
type ReadCopies = (
    Option<Rc<offline::Copies>>,
    Vec<Vec<u8>>,
    Vec<(String, String)>,
    MergeVerdict,
);

/// Opens the store and reads document `id`'s copies: the one in IndexedDB, what tabs put in
/// local storage when they were last hidden or left, and one an earlier version kept in local
/// storage. If merging them stopped the page twice before, they are dropped instead (see
/// [`crate::offline_limits::merge_verdict`]). Without a readable store there is nothing to
/// write to: a write would replace what was not read.
async fn read_copies(id: &str) -> ReadCopies {
    let verdict = merge_verdict(merging::mark(id), js_sys::Date::now());
    let copies = match offline::Copies::open().await {
        Ok(copies) => Some(Rc::new(copies)),
        Err(error) => {
            leptos::logging::warn!("Tandem: offline copies unavailable: {error}");
            None
        }
    };
    if verdict == MergeVerdict::Drop {
        leptos::logging::warn!("Tandem: this document's offline copy stopped the page; dropped");
        if let Some(copies) = &copies {
            let _ = copies.remove(id).await;
        }
        unsaved::forget_all(id);
        merging::end(id);
        return (copies, Vec::new(), Vec::new(), verdict);
    }
    let mut kept = Vec::new();
    let copies = match copies {
        Some(copies) => match copies.load(id).await {
            Ok(copy) => {
                kept.extend(copy);
                Some(copies)
            }
            Err(error) => {
                leptos::logging::warn!("Tandem: offline copy unreadable, left as it is: {error}");
                None
            }
        },
        None => None,
    };
    let mut merged = Vec::new();
    for (key, text, update) in unsaved::all(id) {
        kept.push(update);
        merged.push((key, text));
    }
    kept.extend(offline::legacy_copy(id));
    (copies, kept, merged, verdict)
}

impl Session {
    /// This person changed the document: the copy is written soon.
    pub(super) fn changed_here(&mut self) {
        self.keeping.schedule.changed_here(js_sys::Date::now());
    }

    /// Someone else's change arrived: the copy is written eventually.
    pub(super) fn changed_elsewhere(&mut self) {
        self.keeping.schedule.changed_elsewhere(js_sys::Date::now());
    }

    /// Whether this page keeps a copy: a viewer has nothing of its own to keep, and a deleted
    /// document's copy is removed.
    fn keeps_copy(&self) -> bool {
        self.editing() && !self.keeping.dropped
    }

    /// The document was deleted: its copy in this browser goes too (what the page shows stays
    /// on screen until it is closed), and none is written again.
    pub(super) fn drop_copy(&mut self) {
        self.keeping.dropped = true;
        let id = self.parts.id.as_str().to_string();
        unsaved::forget_all(&id);
        if let Some(copies) = self.keeping.copies.take() {
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(error) = copies.remove(&id).await {
                    leptos::logging::warn!("Tandem: a deleted document's copy stays: {error}");
                }
            });
        }
    }

    /// Writes the copy if one is due (`urgent`: the page is being hidden or left).
    pub(super) fn save_if_due(&mut self, urgent: bool) {
        if self.keeps_copy() && self.keeping.schedule.due(js_sys::Date::now(), urgent) {
            self.save_locally();
        }
    }

    /// Whether this page holds changes of its own the server has not confirmed.
    fn unconfirmed(&self) -> bool {
        !(self.synced
            && self.acks.waiting() == 0
            && self.parts.save.get_untracked() == SaveState::Saved)
    }

    /// The page is being hidden or left: if it holds changes the server has not confirmed,
    /// what its copy lacks goes to local storage at once (also when the browser has no
    /// IndexedDB); and a write of the copy starts (it may not finish).
    pub(super) fn keep_before_hiding(&mut self) {
        if !self.keeps_copy() {
            return;
        }
        if self.unconfirmed() && self.keeping.schedule.behind() {
            let since = self.keeping.saved.clone().unwrap_or_default();
            let update = self.doc.transact().encode_state_as_update_v1(&since);
            let whole = self.keeping.saved.is_none();
            if unsaved::keep(self.parts.id.as_str(), &self.keeping.writer, &update) {
                self.keeping.unsaved_after = Some(self.keeping.writes);
                // The whole state went in: the entries merged on load are in it.
                if whole {
                    for (key, text) in std::mem::take(&mut self.keeping.unsaved_merged) {
                        unsaved::forget_if_unchanged(&key, &text);
                    }
                }
            }
        }
        self.save_if_due(true);
    }

    /// Writes the replica to the browser's store for offline use, unless the browser has no
    /// store.
    fn save_locally(&mut self) {
        // Without a store, the schedule stays behind: what the page holds goes to local
        // storage when it is hidden.
        let Some(copies) = self.keeping.copies.clone() else {
            return;
        };
        let started = js_sys::Date::now();
        if self.keeping.schedule.hung(started) {
            self.keeping.stale = true;
        }
        let txn = self.doc.transact();
        let state = txn.encode_state_as_update_v1(&yrs::StateVector::default());
        let vector = txn.state_vector();
        drop(txn);
        // Unconfirmed changes make the copy worth more than others (see `offline_limits`).
        let unsynced = self.unconfirmed();
        self.keeping.schedule.started(started);
        self.keeping.writes += 1;
        let number = self.keeping.writes;
        let reopen = std::mem::take(&mut self.keeping.stale);
        let writer = self.keeping.writer.clone();
        let id = self.parts.id.as_str().to_string();
        let weak = CURRENT.with(|current| current.borrow().clone());
        wasm_bindgen_futures::spawn_local(async move {
            let copies = if reopen {
                match offline::Copies::open().await {
                    Ok(copies) => Rc::new(copies),
                    Err(error) => {
                        finish(
                            &weak,
                            (number, started),
                            Err(error),
                            &state,
                            vector,
                            &copies,
                        );
                        return;
                    }
                }
            } else {
                copies
            };
            let outcome = copies.save(&id, &state, unsynced, &writer).await;
            finish(&weak, (number, started), outcome, &state, vector, &copies);
        });
    }
}

/// Records how write `number`, started at `started`, ended.
fn finish(
    weak: &std::rc::Weak<RefCell<Session>>,
    (number, started): (u64, f64),
    outcome: Result<offline::Saved, offline::OfflineError>,
    state: &[u8],
    vector: yrs::StateVector,
    copies: &Rc<offline::Copies>,
) {
    let Some(session) = weak.upgrade() else {
        return;
    };
    let mut s = session.borrow_mut();
    let now = js_sys::Date::now();
    let written = match outcome {
        Ok(offline::Saved::Stored) => {
            s.keeping.copies = Some(copies.clone());
            s.keeping.saved = Some(vector);
            // What was put in local storage before this write started is in the copy now.
            if s.keeping.unsaved_after.is_some_and(|after| number > after) {
                unsaved::forget(s.parts.id.as_str(), &s.keeping.writer);
                s.keeping.unsaved_after = None;
            }
            for (key, text) in std::mem::take(&mut s.keeping.unsaved_merged) {
                unsaved::forget_if_unchanged(&key, &text);
            }
            Written::Stored
        }
        Ok(offline::Saved::TooLarge) => {
            leptos::logging::warn!(
                "Tandem: this document is too large to keep offline ({} bytes)",
                state.len()
            );
            Written::Refused
        }
        Ok(offline::Saved::NoRoom) => Written::Refused,
        Err(error) => {
            leptos::logging::warn!("Tandem: the offline copy was not written: {error}");
            s.keeping.stale = true;
            Written::Failed
        }
    };
    s.keeping.schedule.finished(started, now, written);
}
