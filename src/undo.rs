//! Undo and redo of this person's own changes only.
//!
//! The browser's own undo history belongs to the text field, and the field's value is rewritten
//! whenever someone else types, which wipes that history (or, worse, undoes their text). Undo
//! therefore works on the replica instead: a yrs [`UndoManager`] over both texts that tracks
//! only transactions made with the [`LOCAL`] origin, the ones this page makes from its own
//! fields. Remote updates are applied without that origin, so they are never undone here, and
//! undoing a change of one's own leaves everyone else's text where it is, even text typed into
//! the middle of it.
//!
//! Typing is grouped into steps the way editors do it: changes less than [`GROUP_MILLIS`]
//! apart form one step, and [`History::break_group`] ends a step early (the page calls it when
//! the caret moves elsewhere).

use std::sync::{Arc, Mutex};
use yrs::sync::time::Clock;
use yrs::undo::{Options, StackItem, UndoManager};
use yrs::{Doc, TextRef};

/// The origin of transactions this page makes from its own fields.
pub const LOCAL: &str = "tandem-local";
/// Changes closer together than this are undone as one step.
pub const GROUP_MILLIS: u64 = 500;
/// Most steps kept, each way; past it the oldest are forgotten, down to [`KEPT_STEPS`].
pub const MAX_STEPS: usize = 500;
/// Steps kept each way once [`MAX_STEPS`] is passed.
pub const KEPT_STEPS: usize = 400;

/// This person's undo and redo stacks for one document.
pub struct History {
    doc: Doc,
    texts: Vec<TextRef>,
    clock: Arc<dyn Clock>,
    manager: UndoManager<()>,
}

/// Which way to go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Undo,
    Redo,
}

impl History {
    /// Tracks this page's changes to `texts` of `doc`, timed by `clock` (milliseconds).
    pub fn new(doc: &Doc, texts: &[&TextRef], clock: Arc<dyn Clock>) -> History {
        let texts: Vec<TextRef> = texts.iter().map(|text| (*text).clone()).collect();
        let manager = Self::manager(doc, &texts, clock.clone(), Vec::new(), Vec::new());
        History {
            doc: doc.clone(),
            texts,
            clock,
            manager,
        }
    }

    /// An undo manager over `texts` tracking the local origin, starting with these stacks.
    fn manager(
        doc: &Doc,
        texts: &[TextRef],
        clock: Arc<dyn Clock>,
        undo: Vec<StackItem<()>>,
        redo: Vec<StackItem<()>>,
    ) -> UndoManager<()> {
        let mut options = Options {
            capture_timeout_millis: GROUP_MILLIS,
            tracked_origins: Default::default(),
            capture_transaction: None,
            timestamp: clock,
            init_undo_stack: undo,
            init_redo_stack: redo,
        };
        options.tracked_origins.insert(LOCAL.into());
        let mut manager = UndoManager::with_options(options);
        for text in texts {
            manager.expand_scope(doc, text);
        }
        manager
    }

    /// Takes back (or redoes) this person's last step and returns the update that does it, to
    /// send to everyone; `None` when there is nothing to take back.
    pub fn step(&mut self, direction: Direction) -> Option<Vec<u8>> {
        let changes = Arc::new(Mutex::new(Vec::new()));
        let sink = changes.clone();
        let key = "tandem-undo-step";
        self.doc
            .observe_update_v1(key, move |_, event| {
                if let Ok(mut changes) = sink.lock() {
                    changes.push(event.update.clone());
                }
            })
            .ok()?;
        let changed = match direction {
            Direction::Undo => self.manager.undo_blocking(),
            Direction::Redo => self.manager.redo_blocking(),
        };
        let _ = self.doc.unobserve_update_v1(key);
        self.trim();
        let changes = std::mem::take(&mut *changes.lock().ok()?);
        if !changed || changes.is_empty() {
            return None;
        }
        yrs::merge_updates_v1(changes.iter().map(Vec::as_slice)).ok()
    }

    /// Ends the current step: the next change starts a new one.
    pub fn break_group(&mut self) {
        self.manager.reset();
    }

    pub fn can_undo(&self) -> bool {
        self.manager.can_undo()
    }

    pub fn can_redo(&self) -> bool {
        self.manager.can_redo()
    }

    /// Forgets the oldest steps once there are more than [`MAX_STEPS`] (keeping the newest
    /// [`KEPT_STEPS`]): a page open all day must not keep every keystroke's history, and the
    /// recent past stays undoable. yrs cannot drop the oldest steps in place, so the manager is
    /// rebuilt from the steps kept.
    fn trim(&mut self) {
        let undo = self.manager.undo_stack();
        let redo = self.manager.redo_stack();
        if undo.len() <= MAX_STEPS && redo.len() <= MAX_STEPS {
            return;
        }
        let newest =
            |stack: &[StackItem<()>]| stack[stack.len().saturating_sub(KEPT_STEPS)..].to_vec();
        let (undo, redo) = (newest(undo), newest(redo));
        self.manager = Self::manager(&self.doc, &self.texts, self.clock.clone(), undo, redo);
    }

    /// Called after each local change, so the bound holds while typing too.
    pub fn after_change(&mut self) {
        self.trim();
    }
}

/// The modifier keys held with a key.
#[derive(Clone, Copy, Debug, Default)]
pub struct Modifiers {
    pub ctrl: bool,
    pub meta: bool,
    pub shift: bool,
    pub alt: bool,
}

/// What a key press asks of the history: Ctrl/Cmd+Z undoes, Ctrl/Cmd+Shift+Z and Ctrl+Y
/// redo. `key` is `KeyboardEvent.key`; with Shift held it may come as an upper-case letter.
pub fn shortcut(key: &str, held: Modifiers) -> Option<Direction> {
    if held.alt || !(held.ctrl || held.meta) {
        return None;
    }
    match (key.to_ascii_lowercase().as_str(), held.shift) {
        ("z", false) => Some(Direction::Undo),
        ("z", true) => Some(Direction::Redo),
        ("y", false) if held.ctrl => Some(Direction::Redo),
        _ => None,
    }
}

/// What a `beforeinput` event's `inputType` asks of the history: the browser's Edit menu and
/// context menu undo through these, not through keys.
pub fn input_type(input_type: &str) -> Option<Direction> {
    match input_type {
        "historyUndo" => Some(Direction::Undo),
        "historyRedo" => Some(Direction::Redo),
        _ => None,
    }
}

/// Whether a key moves the caret without typing: the step being typed ends there, so undo
/// does not take back two separate places' typing at once.
pub fn moves_caret(key: &str) -> bool {
    matches!(
        key,
        "ArrowLeft"
            | "ArrowRight"
            | "ArrowUp"
            | "ArrowDown"
            | "Home"
            | "End"
            | "PageUp"
            | "PageDown"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CONTENT, TITLE};
    use std::sync::atomic::{AtomicU64, Ordering};
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Text, Transact, Update};

    struct Page {
        doc: Doc,
        content: TextRef,
        title: TextRef,
        history: History,
        now: Arc<AtomicU64>,
    }

    impl Page {
        fn new(client: u64) -> Page {
            let doc = yrs::Doc::with_options(yrs::Options {
                client_id: yrs::block::ClientID::new(client),
                offset_kind: yrs::OffsetKind::Utf16,
                ..Default::default()
            });
            let content = doc.get_or_insert_text(CONTENT);
            let title = doc.get_or_insert_text(TITLE);
            let now = Arc::new(AtomicU64::new(1_000_000));
            let clock = now.clone();
            let history = History::new(
                &doc,
                &[&content, &title],
                Arc::new(move || clock.load(Ordering::SeqCst)),
            );
            Page {
                doc,
                content,
                title,
                history,
                now,
            }
        }

        /// Types `text` at `index` of `field` as this person, `after` milliseconds after the
        /// last change; returns the update to send.
        fn type_at(&mut self, field: &str, index: u32, text: &str, after: u64) -> Vec<u8> {
            self.now.fetch_add(after, Ordering::SeqCst);
            let target = if field == TITLE {
                &self.title
            } else {
                &self.content
            };
            let mut txn = self.doc.transact_mut_with(LOCAL);
            target.insert(&mut txn, index, text);
            let update = txn.encode_update_v1();
            drop(txn);
            self.history.after_change();
            update
        }

        /// Applies someone else's update, as the page does with what the server relays.
        fn receive(&self, update: &[u8]) {
            self.doc
                .transact_mut()
                .apply_update(Update::decode_v1(update).unwrap())
                .unwrap();
        }

        fn text(&self) -> String {
            self.content.get_string(&self.doc.transact())
        }
    }

    #[test]
    fn undo_takes_back_only_my_text_and_redo_brings_it_back() {
        let (mut me, mut other) = (Page::new(1), Page::new(2));
        let mine = me.type_at(CONTENT, 0, "mine ", 0);
        other.receive(&mine);
        let theirs = other.type_at(CONTENT, 5, "theirs", 0);
        me.receive(&theirs);
        assert_eq!(me.text(), "mine theirs");

        let undo = me.history.step(Direction::Undo).expect("something to undo");
        assert_eq!(me.text(), "theirs");
        other.receive(&undo);
        assert_eq!(other.text(), "theirs");
        // Nothing of mine is left to undo; the other person's text is not mine to take back.
        assert_eq!(me.history.step(Direction::Undo), None);
        assert_eq!(me.text(), "theirs");

        let redo = me.history.step(Direction::Redo).expect("something to redo");
        other.receive(&redo);
        assert_eq!(me.text(), "mine theirs");
        assert_eq!(other.text(), "mine theirs");
    }

    #[test]
    fn text_someone_typed_inside_mine_stays_when_mine_is_undone() {
        let (mut me, mut other) = (Page::new(1), Page::new(2));
        other.receive(&me.type_at(CONTENT, 0, "hello world", 0));
        me.receive(&other.type_at(CONTENT, 5, ", dear", 0));
        assert_eq!(me.text(), "hello, dear world");
        other.receive(&me.history.step(Direction::Undo).unwrap());
        assert_eq!(me.text(), ", dear");
        assert_eq!(other.text(), ", dear");
    }

    #[test]
    fn typing_in_quick_succession_is_one_step_and_a_pause_starts_another() {
        let mut me = Page::new(1);
        me.type_at(CONTENT, 0, "a", 0);
        me.type_at(CONTENT, 1, "b", 100);
        me.type_at(CONTENT, 2, "c", 100);
        me.type_at(CONTENT, 3, " d", GROUP_MILLIS + 1);
        assert_eq!(me.text(), "abc d");
        me.history.step(Direction::Undo).unwrap();
        assert_eq!(me.text(), "abc");
        me.history.step(Direction::Undo).unwrap();
        assert_eq!(me.text(), "");
        assert!(!me.history.can_undo());
    }

    #[test]
    fn a_broken_group_is_undone_in_two_steps() {
        let mut me = Page::new(1);
        me.type_at(CONTENT, 0, "one", 0);
        me.history.break_group();
        me.type_at(CONTENT, 3, "two", 10);
        me.history.step(Direction::Undo).unwrap();
        assert_eq!(me.text(), "one");
    }

    #[test]
    fn the_title_is_undone_too() {
        let mut me = Page::new(1);
        me.type_at(TITLE, 0, "Plans", 0);
        me.history.step(Direction::Undo).unwrap();
        assert_eq!(me.title.get_string(&me.doc.transact()), "");
    }

    #[test]
    fn remote_changes_are_never_recorded() {
        let (mut me, mut other) = (Page::new(1), Page::new(2));
        me.receive(&other.type_at(CONTENT, 0, "theirs", 0));
        assert!(!me.history.can_undo());
        assert_eq!(me.history.step(Direction::Undo), None);
        assert_eq!(me.text(), "theirs");
    }

    #[test]
    fn a_new_change_after_undo_clears_redo() {
        let mut me = Page::new(1);
        me.type_at(CONTENT, 0, "one", 0);
        me.history.step(Direction::Undo).unwrap();
        assert!(me.history.can_redo());
        me.type_at(CONTENT, 0, "two", GROUP_MILLIS + 1);
        assert!(!me.history.can_redo());
    }

    #[test]
    fn the_steps_kept_are_bounded_and_the_newest_still_undo() {
        let mut me = Page::new(1);
        for i in 0..(MAX_STEPS as u32 + 10) {
            me.type_at(CONTENT, i, "x", GROUP_MILLIS + 1);
        }
        let kept = me.history.manager.undo_stack().len();
        assert!((KEPT_STEPS..=MAX_STEPS).contains(&kept), "{kept} steps");
        // The step just made is among those kept.
        let before = me.text().len();
        me.history
            .step(Direction::Undo)
            .expect("the newest step undoes");
        assert_eq!(me.text().len(), before - 1);
        // Typing goes on being recorded after the rebuild.
        me.type_at(CONTENT, 0, "y", GROUP_MILLIS + 1);
        me.history.step(Direction::Undo).unwrap();
        assert!(!me.text().starts_with('y'));
    }

    #[test]
    fn shortcuts_follow_the_platforms() {
        let ctrl = Modifiers {
            ctrl: true,
            ..Default::default()
        };
        let cmd = Modifiers {
            meta: true,
            ..Default::default()
        };
        let shifted = |m: Modifiers| Modifiers { shift: true, ..m };
        assert_eq!(shortcut("z", ctrl), Some(Direction::Undo));
        assert_eq!(shortcut("z", cmd), Some(Direction::Undo));
        assert_eq!(shortcut("Z", shifted(ctrl)), Some(Direction::Redo));
        assert_eq!(shortcut("z", shifted(cmd)), Some(Direction::Redo));
        assert_eq!(shortcut("y", ctrl), Some(Direction::Redo));
        // Cmd+Y is not redo on a Mac; plain keys and AltGr combinations type.
        assert_eq!(shortcut("y", cmd), None);
        assert_eq!(shortcut("z", Modifiers::default()), None);
        assert_eq!(shortcut("z", Modifiers { alt: true, ..ctrl }), None);
        assert_eq!(input_type("historyUndo"), Some(Direction::Undo));
        assert_eq!(input_type("historyRedo"), Some(Direction::Redo));
        assert_eq!(input_type("insertText"), None);
        assert!(moves_caret("ArrowLeft") && !moves_caret("a"));
    }
}
