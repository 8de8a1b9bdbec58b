//! The document's offline copy: merged in before the first connection, written back a moment
//! after each change (see [`super::offline`] for where and within which bounds, and
//! [`crate::offline_limits::SaveSchedule`] for when).

use super::*;
use crate::offline_limits::{SaveSchedule, Written, AFTER_OWN_CHANGE_MS};
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
    /// When that was last done.
    unsaved_kept_at: Option<f64>,
    /// Names this page as the writer of its copies (random per page load).
    writer: String,
}

impl Keeping {
    pub(super) fn new() -> Keeping {
        Keeping {
            copies: None,
            stale: false,
            schedule: SaveSchedule::default(),
            saved: None,
            unsaved_kept_at: None,
            writer: format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64),
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
        let (copies, kept) = read_copies(&id).await;
        let Some(session) = weak.upgrade() else {
            return;
        };
        drop(fallback);
        {
            let mut s = session.borrow_mut();
            s.keeping.copies = copies;
            merging::begin(&id);
            for copy in &kept {
                // Straight in, even during a composition: held, it would miss the handshake.
                s.integrate(copy);
            }
            merging::end(&id);
            // Written from now on, also when nothing changed, so older copies move over.
            let now = js_sys::Date::now();
            s.keeping.schedule.changed_here(now - AFTER_OWN_CHANGE_MS);
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

/// Opens the store and reads document `id`'s copies: the one in IndexedDB, what was put in
/// local storage when a page was last left, and one an earlier version kept in local storage.
/// If merging them made the last page fail, they are dropped instead. Without a readable store
/// there is no store to write to either.
async fn read_copies(id: &str) -> (Option<Rc<offline::Copies>>, Vec<Vec<u8>>) {
    let copies = match offline::Copies::open().await {
        Ok(copies) => copies,
        Err(error) => {
            leptos::logging::warn!("Tandem: offline copies unavailable: {error}");
            return (None, Vec::new());
        }
    };
    if merging::failed_before(id) {
        leptos::logging::warn!("Tandem: this document's offline copy broke the page; dropped");
        let _ = copies.remove(id).await;
        unsaved::forget(id);
        merging::end(id);
        return (Some(Rc::new(copies)), Vec::new());
    }
    let mut kept = Vec::new();
    match copies.load(id).await {
        Ok(Some(copy)) => kept.push(copy),
        Ok(None) => {}
        Err(error) => {
            leptos::logging::warn!("Tandem: offline copy unreadable, left as it is: {error}");
            return (None, Vec::new());
        }
    }
    kept.extend(unsaved::kept(id));
    kept.extend(offline::legacy_copy(id));
    (Some(Rc::new(copies)), kept)
}

/// Makes the first connection attempt, once.
fn start_connecting(session: &Shared) {
    if std::mem::replace(&mut session.borrow_mut().connect_started, true) {
        return;
    }
    connect(session);
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

    /// Writes the copy if one is due (`urgent`: the page is being hidden or left).
    pub(super) fn save_if_due(&mut self, urgent: bool) {
        if self.keeping.schedule.due(js_sys::Date::now(), urgent) {
            self.save_locally();
        }
    }

    /// The page is being hidden or left: what the copy lacks goes to local storage at once,
    /// and a write of the copy starts (it may not finish).
    pub(super) fn keep_before_hiding(&mut self) {
        let id = self.parts.id.as_str().to_string();
        if self.keeping.schedule.behind() {
            let since = self.keeping.saved.clone().unwrap_or_default();
            let update = self.doc.transact().encode_state_as_update_v1(&since);
            unsaved::keep(&id, &update);
            self.keeping.unsaved_kept_at = Some(js_sys::Date::now());
        }
        self.save_if_due(true);
    }

    /// Writes the replica to the browser's store for offline use, unless the browser has no
    /// store.
    fn save_locally(&mut self) {
        let Some(copies) = self.keeping.copies.clone() else {
            self.keeping.schedule = SaveSchedule::default();
            return;
        };
        let started = js_sys::Date::now();
        let txn = self.doc.transact();
        let state = txn.encode_state_as_update_v1(&yrs::StateVector::default());
        let vector = txn.state_vector();
        drop(txn);
        // Unconfirmed changes make the copy worth more than others (see `offline_limits`).
        let unsynced = !(self.synced
            && self.acks.waiting() == 0
            && self.parts.save.get_untracked() == SaveState::Saved);
        self.keeping.schedule.started(started);
        let reopen = std::mem::take(&mut self.keeping.stale);
        let writer = self.keeping.writer.clone();
        let id = self.parts.id.as_str().to_string();
        let weak = CURRENT.with(|current| current.borrow().clone());
        wasm_bindgen_futures::spawn_local(async move {
            let copies = if reopen {
                match offline::Copies::open().await {
                    Ok(copies) => Rc::new(copies),
                    Err(error) => {
                        finish(&weak, started, Err(error), &state, vector, &copies);
                        return;
                    }
                }
            } else {
                copies
            };
            let outcome = copies.save(&id, &state, unsynced, &writer).await;
            finish(&weak, started, outcome, &state, vector, &copies);
        });
    }
}

/// Records how the write started at `started` ended.
fn finish(
    weak: &std::rc::Weak<RefCell<Session>>,
    started: f64,
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
            if s.keeping.unsaved_kept_at.is_some_and(|at| at <= started) {
                unsaved::forget(s.parts.id.as_str());
                s.keeping.unsaved_kept_at = None;
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
