//! What the page shows of the source besides the field itself: the preview, the word counts
//! (through [`SessionParts::content`](crate::app::live::SessionParts)) and the caret layer.
//!
//! A keystroke must reach the screen within a frame whatever the document's size, so nothing
//! here works on the whole document while someone types in a large one. The preview and the
//! caret layer are patched piece by piece (see [`ShownBlocks`] and [`crate::pieces`]), so the
//! browser parses and lays out only what changed. Rendering the Markdown still reads the whole source, so in a
//! document past [`SHOW_AT_ONCE_BYTES`] the preview waits for a pause in the changes (longer
//! the larger the document), and is brought up to date at least every [`MAX_WAIT_MS`] while
//! changes keep coming.

use super::*;
use crate::app::carets::Overlay;
use crate::client::blocks::ShownBlocks;

/// Documents up to this size are shown again right after each change: rendering them takes
/// well under a millisecond.
const SHOW_AT_ONCE_BYTES: usize = 32 * 1024;
/// Past that, the preview waits for a pause of this many milliseconds per 4 KiB of source…
const PAUSE_MS_PER_4_KIB: usize = 1;
/// …at least this long…
const MIN_PAUSE_MS: usize = 60;
/// …and at most this long.
const MAX_PAUSE_MS: usize = 400;
/// The page takes the server's preview as its own this long after it starts (see
/// `adopt_preview_soon`).
const ADOPT_AFTER_MS: u32 = 1_000;
/// While changes keep coming, the preview is never older than this.
const MAX_WAIT_MS: f64 = 1_500.0;

pub(super) struct Display {
    /// The preview, once this page has found it.
    preview: Option<ShownBlocks>,
    /// The caret layer, what it last drew, and the size last given to it.
    pub(super) carets: Option<ShownBlocks>,
    pub(super) overlay: Overlay,
    pub(super) layer_size: Option<(i32, i32)>,
    /// The caret layer is to be drawn after the next paint (see `carets_after_paint`).
    carets_due: bool,
    /// The adoption of the server's preview, scheduled (dropping it cancels it).
    adopt_timer: Option<Timeout>,
    /// The preview's scheduled update (dropping it cancels it).
    timer: Option<Timeout>,
    /// When the first change the preview does not show yet came, in milliseconds since the
    /// epoch.
    due_since: Option<f64>,
}

impl Display {
    pub(super) fn new(parts: &SessionParts) -> Self {
        let preview = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector("[data-testid=preview]").ok().flatten())
            .and_then(ShownBlocks::new);
        let carets = parts
            .carets
            .get_untracked()
            .and_then(|layer| ShownBlocks::new(layer.into()));
        Display {
            preview,
            carets,
            overlay: Overlay::default(),
            layer_size: None,
            carets_due: false,
            adopt_timer: None,
            timer: None,
            due_since: None,
        }
    }

    /// Whether the preview shows an older source than the field.
    pub(super) fn preview_is_stale(&self) -> bool {
        self.due_since.is_some()
    }
}

/// How long the preview of a source `len` bytes long waits for a pause in the changes.
fn pause_for(len: usize) -> f64 {
    if len <= SHOW_AT_ONCE_BYTES {
        0.0
    } else {
        (len / 4096 * PAUSE_MS_PER_4_KIB).clamp(MIN_PAUSE_MS, MAX_PAUSE_MS) as f64
    }
}

impl Session {
    /// The source changed: the caret layer follows right after the frame that shows the change,
    /// the preview and counts soon.
    pub(super) fn source_changed(&mut self) {
        self.carets_after_paint();
        let now = js_sys::Date::now();
        let since = *self.display.due_since.get_or_insert(now);
        let delay = pause_for(self.content.text().len()).min((since + MAX_WAIT_MS - now).max(0.0));
        let weak = CURRENT.with(|current| current.borrow().clone());
        self.display.timer = Some(Timeout::new(delay as u32, move || {
            if let Some(session) = weak.upgrade() {
                session.borrow_mut().show_source();
            }
        }));
    }

    /// Redraws the caret layer once the browser has painted the frame in progress. The layer's
    /// text lies under the field's, and laying it out again right away would hold back the
    /// frame that shows this person's keystroke; a frame later, the others' carets are where
    /// they belong. Changes in between are drawn once.
    fn carets_after_paint(&mut self) {
        if std::mem::replace(&mut self.display.carets_due, true) {
            return;
        }
        let weak = CURRENT.with(|current| current.borrow().clone());
        let draw = move || {
            if let Some(session) = weak.upgrade() {
                let mut session = session.borrow_mut();
                session.display.carets_due = false;
                session.render_carets();
            }
        };
        // A task queued from the next animation frame runs once that frame is painted.
        let next_frame = Closure::once_into_js(move || Timeout::new(0, draw).forget());
        let asked = web_sys::window().map(|window| {
            window
                .request_animation_frame(next_frame.unchecked_ref())
                .is_ok()
        });
        if asked != Some(true) {
            self.display.carets_due = false;
            self.render_carets();
        }
    }

    /// Takes the server's rendering of the preview as this page's own, once the page has
    /// settled, so that the first change replaces one block of it rather than building it all
    /// again (a quarter of a second for a megabyte). Only while the source is still what the
    /// server rendered; after a change the preview has been shown by this page anyway.
    pub(super) fn adopt_preview_soon(&mut self) {
        let weak = CURRENT.with(|current| current.borrow().clone());
        self.display.adopt_timer = Some(Timeout::new(ADOPT_AFTER_MS, move || {
            let Some(session) = weak.upgrade() else {
                return;
            };
            let mut session = session.borrow_mut();
            session.display.adopt_timer = None;
            let session = &mut *session;
            if session.content.text() != session.parts.snapshot.content {
                return;
            }
            let tickable = session.editing();
            if let Some(preview) = &mut session.display.preview {
                let blocks = markdown::render_blocks(session.content.text(), tickable);
                preview.adopt(crate::pieces::gather(blocks));
                show_task_boxes_as_rendered(preview.element());
            }
        }));
    }

    /// Brings the preview and the counts up to date with the source.
    pub(super) fn show_source(&mut self) {
        self.display.timer = None;
        self.display.due_since = None;
        let text = self.content.text();
        self.parts.content.set(text.to_string());
        let tickable = self.editing();
        if let Some(preview) = &mut self.display.preview {
            preview.show(crate::pieces::gather(markdown::render_blocks(
                text, tickable,
            )));
        }
    }
}

/// Puts every task box of `preview` back to what its HTML says. A box the reader ticked
/// before the page was live changed nothing in the source; once the page keeps the server's
/// rendering rather than drawing it again, the box would go on showing that tick.
fn show_task_boxes_as_rendered(preview: &web_sys::Element) {
    let Ok(boxes) = preview.query_selector_all("input.task") else {
        return;
    };
    for i in 0..boxes.length() {
        if let Some(input) = boxes
            .item(i)
            .and_then(|node| node.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            input.set_checked(input.has_attribute("checked"));
        }
    }
}
