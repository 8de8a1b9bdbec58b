//! This person's own changes on the editor page: typing taken into the replica, formatting
//! commands, undo and redo, and restoring a version. Each becomes an update sent like typing.
//! On the view page none of it changes anything: its fields are unbound (nothing is typed, so
//! there is nothing to take in), and it has no keys, toolbar or History wired to the rest.

use super::*;

impl Session {
    /// Takes in the fields' edits still waiting (see [`fields::edit_soon`]).
    pub(super) fn flush_edits(&mut self) {
        if std::mem::take(&mut self.content_edit_pending) {
            self.local_edit(Field::Content);
        }
        if std::mem::take(&mut self.title_edit_pending) {
            self.local_edit(Field::Title);
        }
    }

    pub(super) fn local_edit(&mut self, field: Field) {
        let update = match field {
            Field::Content => self.content.local_change(&self.doc),
            Field::Title => self.title.local_change(&self.doc),
        };
        let Some(update) = update else { return };
        self.history.after_change();
        self.changed_here();
        self.show_field(field);
        self.parts.save.set(SaveState::Saving);
        self.send_change(Message::Sync(SyncMessage::Update(update)));
    }

    /// Turns the document back into `title` and `content` (a version from the History), as one
    /// step this person can undo: each field changes by one splice, sent like typing.
    pub(super) fn restore(&mut self, title: &str, content: &str) {
        if self.composing {
            return;
        }
        self.flush_edits();
        self.history.break_group();
        if self.content.text() != content {
            self.content.type_value(content);
            self.local_edit(Field::Content);
        }
        if self.title.text() != title {
            self.title.type_value(title);
            self.local_edit(Field::Title);
        }
        self.history.break_group();
    }

    /// Applies a formatting command to the source at its selection, as a step of its own.
    pub(super) fn command(&mut self, command: Command) {
        if self.composing {
            return;
        }
        self.flush_edits();
        let (start, end) = self.content.selection().unwrap_or((0, 0));
        let edited = formatting::apply(command, self.content.text(), start, end);
        self.apply_edited(edited);
    }

    /// Applies this person's formatting edits to the source (a step of its own for undo) and
    /// sends them like any edit.
    pub(super) fn apply_edited(&mut self, edited: formatting::Edited) {
        if edited.ops.is_empty() {
            return;
        }
        self.history.break_group();
        let update = self
            .content
            .apply_own_ops(&self.doc, &edited.ops, (edited.start, edited.end));
        self.history.break_group();
        self.history.after_change();
        self.changed_here();
        self.show_field(Field::Content);
        self.parts.save.set(SaveState::Saving);
        self.send_change(Message::Sync(SyncMessage::Update(update)));
    }

    /// Takes back (or redoes) this person's last step, shows it with the caret where it
    /// happened, and sends it like any edit.
    pub(super) fn step(&mut self, direction: Direction) {
        if self.composing {
            return;
        }
        self.flush_edits();
        let Some(update) = self.history.step(direction) else {
            return;
        };
        self.changed_here();
        if self.content.show_own_change(&self.doc) {
            self.show_field(Field::Content);
        }
        if self.title.show_own_change(&self.doc) {
            self.show_field(Field::Title);
        }
        self.send_change(Message::Sync(SyncMessage::Update(update)));
    }
}
