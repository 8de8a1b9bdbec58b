//! A browser text field bound to a yrs text.
//!
//! The field and the text always hold the same string: `known` is that string as of the
//! last synchronisation. A local edit is recovered by comparing the field's new value with
//! `known` (see [`crate::protocol::diff`]) and applied to the text as one splice. A remote
//! change is applied to the text and then written to the field, with the selection carried
//! across as yrs sticky indices, so the caret stays next to the characters it was next to.
//!
//! The view page has no fields: its [`TextField::unbound`] only follows the text, so the session
//! reads the same `text()` on both pages, and nothing there can change the text.

use crate::protocol::diff;
use wasm_bindgen::JsCast;
use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yrs::{Assoc, Doc, GetString, IndexedSequence, StickyIndex, Text, TextRef, Transact};

/// A `<textarea>` or an `<input>`: the same value and selection API under two types.
pub enum FieldElement {
    Area(HtmlTextAreaElement),
    Line(HtmlInputElement),
}

impl FieldElement {
    fn value(&self) -> String {
        match self {
            FieldElement::Area(e) => e.value(),
            FieldElement::Line(e) => e.value(),
        }
    }
    fn set_value(&self, value: &str) {
        match self {
            FieldElement::Area(e) => e.set_value(value),
            FieldElement::Line(e) => e.set_value(value),
        }
    }
    fn selection(&self) -> Option<(u32, u32)> {
        let (start, end) = match self {
            FieldElement::Area(e) => (e.selection_start(), e.selection_end()),
            FieldElement::Line(e) => (e.selection_start(), e.selection_end()),
        };
        Some((start.ok()??, end.ok()??))
    }
    fn selection_direction(&self) -> Option<String> {
        match self {
            FieldElement::Area(e) => e.selection_direction().ok()?,
            FieldElement::Line(e) => e.selection_direction().ok()?,
        }
    }
    fn set_selection(&self, start: u32, end: u32, direction: Option<&str>) {
        let direction = direction.unwrap_or("none");
        let _ = match self {
            FieldElement::Area(e) => e.set_selection_range_with_direction(start, end, direction),
            FieldElement::Line(e) => e.set_selection_range_with_direction(start, end, direction),
        };
    }
    pub fn element(&self) -> &web_sys::Element {
        match self {
            FieldElement::Area(e) => e.unchecked_ref(),
            FieldElement::Line(e) => e.unchecked_ref(),
        }
    }
    pub fn event_target(&self) -> &web_sys::EventTarget {
        self.element().unchecked_ref()
    }
}

/// Most bytes of someone else's change written into a focused field as an edit (see
/// [`write_in_place`]); a larger one replaces the field's value.
const IN_PLACE_MAX_BYTES: usize = 4 * 1024;
/// Each edit written in place is a step in the field's own undo history, which the browser
/// keeps (Chromium up to a thousand steps) although Tandem never uses it. After this many bytes
/// written in place, the next change replaces the value, which empties that history.
const IN_PLACE_BUDGET_BYTES: usize = 256 * 1024;

/// Writes someone else's change into the field as the one edit that turns what it shows
/// (`known`) into `value`, when the field has the focus. The browser then lays out only the
/// lines around the change; given a new value instead, it lays out the whole text again, which
/// takes Chromium a quarter of a second for a megabyte. The edit goes through the browser's
/// `insertText` command, the only way to edit a field's text in place; its `input` event finds
/// the session busy and is left alone (see `session::fields`), and its entry in the field's own
/// undo history is never used (undo is the session's, see `crate::undo`). Returns whether the
/// field now shows `value`; when not (no focus, a large change, no such command), the caller
/// sets the value.
fn write_in_place(element: &FieldElement, known: &str, value: &str, written: &mut usize) -> bool {
    let Some(document) = element.element().owner_document() else {
        return false;
    };
    let focused = document
        .active_element()
        .is_some_and(|active| active.is_same_node(Some(element.element())));
    if !focused {
        return false;
    }
    let Some(change) = diff::splice(known, value, None) else {
        return true;
    };
    let bytes = change.insert.len() + change.delete as usize;
    if bytes > IN_PLACE_MAX_BYTES || *written + bytes > IN_PLACE_BUDGET_BYTES {
        return false;
    }
    *written += bytes;
    let Ok(document) = document.dyn_into::<web_sys::HtmlDocument>() else {
        return false;
    };
    element.set_selection(change.start, change.start + change.delete, None);
    let done = if change.insert.is_empty() {
        document.exec_command("delete")
    } else {
        document.exec_command_with_show_ui_and_value("insertText", false, &change.insert)
    };
    if done != Ok(true) {
        return false;
    }
    match element {
        FieldElement::Area(area) => area.text_length() == diff::utf16_len(value),
        FieldElement::Line(line) => line.value() == value,
    }
}

/// Where the selection was, as positions that move with the text.
pub struct Selection {
    start: StickyIndex,
    end: StickyIndex,
    direction: Option<String>,
}

pub struct TextField {
    /// `None` on the view page (see [`TextField::unbound`]).
    element: Option<FieldElement>,
    text: TextRef,
    known: String,
    /// Bytes of others' changes written in place since the value was last replaced (see
    /// [`IN_PLACE_BUDGET_BYTES`]).
    written_in_place: usize,
}

impl TextField {
    /// Binds `element` to the text `name` of `doc` and shows the text's current value.
    pub fn new(element: FieldElement, doc: &Doc, name: &str) -> Self {
        let text = doc.get_or_insert_text(name);
        let known = text.get_string(&doc.transact());
        if element.value() != known {
            element.set_value(&known);
        }
        TextField {
            element: Some(element),
            text,
            known,
            written_in_place: 0,
        }
    }

    /// Follows the text `name` of `doc` without a field: nothing is shown or typed, and
    /// [`TextField::refresh`] only keeps `text()` current.
    pub fn unbound(doc: &Doc, name: &str) -> Self {
        let text = doc.get_or_insert_text(name);
        let known = text.get_string(&doc.transact());
        TextField {
            element: None,
            text,
            known,
            written_in_place: 0,
        }
    }

    pub fn element(&self) -> Option<&FieldElement> {
        self.element.as_ref()
    }

    /// The selection as (anchor, head): the head is where the caret is.
    pub fn anchor_and_head(&self) -> Option<(u32, u32)> {
        let element = self.element.as_ref()?;
        let (start, end) = element.selection()?;
        Some(match element.selection_direction().as_deref() {
            Some("backward") => (end, start),
            _ => (start, end),
        })
    }

    pub fn shared_text(&self) -> &TextRef {
        &self.text
    }

    pub fn text(&self) -> &str {
        &self.known
    }

    /// Applies whatever the user just did in the field to the text. Returns the encoded
    /// update to send, or `None` when the field did not change.
    pub fn local_change(&mut self, doc: &Doc) -> Option<Vec<u8>> {
        let element = self.element.as_ref()?;
        let value = element.value();
        let caret = element.selection().map(|(_, end)| end);
        let splice = diff::splice(&self.known, &value, caret)?;
        // Made with the local origin: this person's undo tracks it (see `crate::undo`).
        let mut txn = doc.transact_mut_with(crate::undo::LOCAL);
        if splice.delete > 0 {
            self.text
                .remove_range(&mut txn, splice.start, splice.delete);
        }
        if !splice.insert.is_empty() {
            self.text.insert(&mut txn, splice.start, &splice.insert);
        }
        self.known = value;
        Some(txn.encode_update_v1())
    }

    /// The current selection as sticky indices. A collapsed caret sticks to the character
    /// before it, so text inserted right at the caret by someone else lands after it; a
    /// range sticks to its own first and last characters.
    pub fn remember_selection(&self, doc: &Doc) -> Option<Selection> {
        let element = self.element.as_ref()?;
        let (start, end) = element.selection()?;
        let txn = doc.transact();
        let (start_assoc, end_assoc) = if start == end {
            (Assoc::Before, Assoc::Before)
        } else {
            (Assoc::After, Assoc::Before)
        };
        Some(Selection {
            start: self.text.sticky_index(&txn, start, start_assoc)?,
            end: self.text.sticky_index(&txn, end, end_assoc)?,
            direction: element.selection_direction(),
        })
    }

    /// Shows the text's value after a remote change, restoring the selection and scroll
    /// position. Returns whether the value changed.
    pub fn refresh(&mut self, doc: &Doc, selection: Option<Selection>) -> bool {
        let txn = doc.transact();
        let value = self.text.get_string(&txn);
        if value == self.known {
            return false;
        }
        if let Some(element) = &self.element {
            let scroll = element.element().scroll_top();
            if !write_in_place(element, &self.known, &value, &mut self.written_in_place) {
                element.set_value(&value);
                self.written_in_place = 0;
            }
            if let Some(selection) = selection {
                let start = selection.start.get_offset(&txn).map(|o| o.index);
                let end = selection.end.get_offset(&txn).map(|o| o.index);
                if let (Some(start), Some(end)) = (start, end) {
                    element.set_selection(start, end.max(start), selection.direction.as_deref());
                }
            }
            element.element().set_scroll_top(scroll);
        }
        self.known = value;
        true
    }

    /// Puts `value` into the field as if this person had typed it; the next
    /// [`TextField::local_change`] turns it into one splice.
    pub fn type_value(&self, value: &str) {
        if let Some(element) = &self.element {
            element.set_value(value);
        }
    }

    /// The selection as (start, end), in UTF-16 units.
    pub fn selection(&self) -> Option<(u32, u32)> {
        self.element.as_ref()?.selection()
    }

    /// Applies this person's formatting `ops` (see [`crate::formatting::Edited`]) to the text
    /// as small edits, shows the result with the selection `start..end`, and returns the update
    /// to send. Only the markers change: text inside the selection is not rewritten, so what
    /// someone else types into it at the same moment stays.
    pub fn apply_own_ops(
        &mut self,
        doc: &Doc,
        ops: &[crate::formatting::Op],
        (start, end): (u32, u32),
    ) -> Vec<u8> {
        let mut txn = doc.transact_mut_with(crate::undo::LOCAL);
        for op in ops.iter().rev() {
            if op.remove > 0 {
                self.text.remove_range(&mut txn, op.at, op.remove);
            }
            if !op.insert.is_empty() {
                self.text.insert(&mut txn, op.at, &op.insert);
            }
        }
        let update = txn.encode_update_v1();
        drop(txn);
        let value = self.text.get_string(&doc.transact());
        if let Some(element) = &self.element {
            let scroll = element.element().scroll_top();
            element.set_value(&value);
            element.set_selection(start, end, None);
            element.element().set_scroll_top(scroll);
        }
        self.known = value;
        update
    }

    /// Shows the text's value after this person's own undo or redo, with the caret where the
    /// change was (after what came back, or where what went away stood). Returns whether the
    /// value changed.
    pub fn show_own_change(&mut self, doc: &Doc) -> bool {
        let value = self.text.get_string(&doc.transact());
        let Some(change) = diff::splice(&self.known, &value, None) else {
            return false;
        };
        if let Some(element) = &self.element {
            let scroll = element.element().scroll_top();
            element.set_value(&value);
            let caret = change.start + diff::utf16_len(&change.insert);
            element.set_selection(caret, caret, None);
            element.element().set_scroll_top(scroll);
        }
        self.known = value;
        true
    }
}
