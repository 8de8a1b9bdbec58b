//! Markdown formatting commands: what the toolbar and its shortcuts do to the source.
//!
//! Pure text work, so native tests reach it: a command takes the text and the selection (in
//! UTF-16 units, the unit of text fields) and returns the new text and selection. The page then
//! writes the result into the field and it travels as an ordinary local edit.

/// One formatting command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Bold,
    Italic,
    Code,
    Link,
    Heading,
    Quote,
    List,
    Checklist,
    Indent,
    Outdent,
}

impl Command {
    /// Every toolbar command, in toolbar order, with its label and its shortcut.
    pub const TOOLBAR: [(Command, &'static str, &'static str); 8] = [
        (Command::Bold, "Bold", "Ctrl+B"),
        (Command::Italic, "Italic", "Ctrl+I"),
        (Command::Heading, "Heading", "Ctrl+Alt+1"),
        (Command::List, "List", "Ctrl+Shift+8"),
        (Command::Checklist, "Checklist", "Ctrl+Shift+9"),
        (Command::Link, "Link", "Ctrl+K"),
        (Command::Code, "Code", "Ctrl+E"),
        (Command::Quote, "Quote", "Ctrl+Shift+."),
    ];

    /// A short name for attributes and test ids.
    pub fn key(self) -> &'static str {
        match self {
            Command::Bold => "bold",
            Command::Italic => "italic",
            Command::Code => "code",
            Command::Link => "link",
            Command::Heading => "heading",
            Command::Quote => "quote",
            Command::List => "list",
            Command::Checklist => "checklist",
            Command::Indent => "indent",
            Command::Outdent => "outdent",
        }
    }

    /// The command a key press asks for, if any. `key` is `KeyboardEvent.key`, `code` is
    /// `KeyboardEvent.code` (the physical key, for shifted digits and punctuation).
    pub fn for_key(
        key: &str,
        code: &str,
        ctrl_or_cmd: bool,
        shift: bool,
        alt: bool,
    ) -> Option<Command> {
        if key == "Tab" && !ctrl_or_cmd && !alt {
            return Some(if shift {
                Command::Outdent
            } else {
                Command::Indent
            });
        }
        if !ctrl_or_cmd {
            return None;
        }
        match (code, shift, alt) {
            ("KeyB", false, false) => Some(Command::Bold),
            ("KeyI", false, false) => Some(Command::Italic),
            ("KeyK", false, false) => Some(Command::Link),
            ("KeyE", false, false) => Some(Command::Code),
            ("Digit1", false, true) => Some(Command::Heading),
            ("Digit8", true, false) => Some(Command::List),
            ("Digit9", true, false) => Some(Command::Checklist),
            ("Period", true, false) => Some(Command::Quote),
            _ => None,
        }
    }
}

/// The result of a command: the whole new text, the selection to show, and the few small
/// edits that make it. The edits are what the page applies to the shared text: only the
/// markers change, and text anyone typed inside the selection (at the same moment, perhaps)
/// is never deleted and written again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edited {
    pub text: String,
    pub start: u32,
    pub end: u32,
    /// In increasing order of `at`, not overlapping, positions in the text before the command:
    /// applied from the last to the first, each leaves the earlier ones' positions valid.
    pub ops: Vec<Op>,
}

/// One edit: at `at` (UTF-16 units), remove `remove` units, then insert `insert`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    pub at: u32,
    pub remove: u32,
    pub insert: String,
}

/// An edit while it is worked out, in UTF-16 units.
struct Splice16 {
    at: usize,
    remove: usize,
    insert: Vec<u16>,
}

/// The result of applying `ops` (increasing, not overlapping) to `units`, with the final
/// selection `start..end`.
fn finish(units: &[u16], ops: Vec<Splice16>, start: usize, end: usize) -> Edited {
    let mut out = Vec::with_capacity(units.len() + 16);
    let mut copied = 0;
    for op in &ops {
        out.extend_from_slice(&units[copied..op.at]);
        out.extend_from_slice(&op.insert);
        copied = op.at + op.remove;
    }
    out.extend_from_slice(&units[copied..]);
    Edited {
        text: text_of(&out),
        start: start as u32,
        end: end.max(start) as u32,
        ops: ops
            .into_iter()
            .map(|op| Op {
                at: op.at as u32,
                remove: op.remove as u32,
                insert: text_of(&op.insert),
            })
            .collect(),
    }
}

/// Applies `command` to `text` with the selection `start..end` (UTF-16 units, clamped).
pub fn apply(command: Command, text: &str, start: u32, end: u32) -> Edited {
    let units: Vec<u16> = text.encode_utf16().collect();
    let len = units.len();
    let (start, end) = {
        let (a, b) = ((start as usize).min(len), (end as usize).min(len));
        (a.min(b), a.max(b))
    };
    match command {
        Command::Bold => wrap(&units, start, end, "**", "**", "bold"),
        Command::Italic => wrap(&units, start, end, "_", "_", "italic"),
        Command::Code => wrap(&units, start, end, "`", "`", "code"),
        Command::Link => link(&units, start, end),
        Command::Heading => prefix_lines(&units, start, end, "# "),
        Command::Quote => prefix_lines(&units, start, end, "> "),
        Command::List => prefix_lines(&units, start, end, "- "),
        Command::Checklist => prefix_lines(&units, start, end, "- [ ] "),
        Command::Indent => indent(&units, start, end, true),
        Command::Outdent => indent(&units, start, end, false),
    }
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn text_of(units: &[u16]) -> String {
    String::from_utf16_lossy(units)
}

/// Puts `before` and `after` around the selection (or around `placeholder`, selected, when
/// nothing is); removes them instead when they are already there.
fn wrap(
    units: &[u16],
    start: usize,
    end: usize,
    before: &str,
    after: &str,
    placeholder: &str,
) -> Edited {
    let (b, a) = (utf16(before), utf16(after));
    let around = start >= b.len()
        && units[start - b.len()..start] == b[..]
        && units.len() >= end + a.len()
        && units[end..end + a.len()] == a[..];
    if around && start < end {
        let ops = vec![
            Splice16 {
                at: start - b.len(),
                remove: b.len(),
                insert: Vec::new(),
            },
            Splice16 {
                at: end,
                remove: a.len(),
                insert: Vec::new(),
            },
        ];
        let s = start - b.len();
        return finish(units, ops, s, s + (end - start));
    }
    if start == end {
        let inner = utf16(placeholder);
        let mut insert = b.clone();
        insert.extend_from_slice(&inner);
        insert.extend_from_slice(&a);
        let s = start + b.len();
        let ops = vec![Splice16 {
            at: start,
            remove: 0,
            insert,
        }];
        return finish(units, ops, s, s + inner.len());
    }
    let ops = vec![
        Splice16 {
            at: start,
            remove: 0,
            insert: b.clone(),
        },
        Splice16 {
            at: end,
            remove: 0,
            insert: a,
        },
    ];
    finish(units, ops, start + b.len(), end + b.len())
}

/// `[selection](url)`, with `url` selected to be typed over.
fn link(units: &[u16], start: usize, end: usize) -> Edited {
    let url = utf16("https://");
    let mut close = utf16("](");
    close.extend_from_slice(&url);
    close.extend(utf16(")"));
    if start == end {
        let mut insert = utf16("[link");
        let url_at = start + insert.len() + 2;
        insert.extend_from_slice(&close);
        let ops = vec![Splice16 {
            at: start,
            remove: 0,
            insert,
        }];
        return finish(units, ops, url_at, url_at + url.len());
    }
    let url_at = end + 1 + 2;
    let ops = vec![
        Splice16 {
            at: start,
            remove: 0,
            insert: utf16("["),
        },
        Splice16 {
            at: end,
            remove: 0,
            insert: close,
        },
    ];
    finish(units, ops, url_at, url_at + url.len())
}

/// Where the line holding `at` starts.
fn line_start(units: &[u16], at: usize) -> usize {
    units[..at]
        .iter()
        .rposition(|&u| u == u16::from(b'\n'))
        .map_or(0, |i| i + 1)
}

/// The starts of the lines the selection touches.
fn line_starts(units: &[u16], start: usize, end: usize) -> Vec<usize> {
    let mut starts = vec![line_start(units, start)];
    for (i, &u) in units.iter().enumerate().take(end).skip(start) {
        if u == u16::from(b'\n') && i + 1 < end {
            starts.push(i + 1);
        }
    }
    starts.dedup();
    starts
}

/// Rewrites each touched line's start with `change`, which returns how many units to remove
/// there and what to put instead; the selection moves with the text.
fn edit_lines(
    units: &[u16],
    start: usize,
    end: usize,
    change: impl Fn(&[u16]) -> (usize, Vec<u16>),
) -> Edited {
    let edits: Vec<(usize, usize, Vec<u16>)> = line_starts(units, start, end)
        .into_iter()
        .map(|at| {
            let (remove, insert) = change(&units[at..]);
            (at, remove, insert)
        })
        .filter(|(_, remove, insert)| *remove > 0 || !insert.is_empty())
        .collect();
    // A position after an edit moves by its size; one inside removed text lands after what
    // replaced it.
    let moved = |pos: usize| -> usize {
        let mut shift: i64 = 0;
        for (at, remove, insert) in &edits {
            if pos >= at + remove {
                shift += insert.len() as i64 - *remove as i64;
            } else if pos > *at {
                return (*at as i64 + shift) as usize + insert.len();
            }
        }
        (pos as i64 + shift) as usize
    };
    let (new_start, new_end) = (moved(start), moved(end));
    let ops = edits
        .into_iter()
        .map(|(at, remove, insert)| Splice16 { at, remove, insert })
        .collect();
    finish(units, ops, new_start, new_end)
}

/// Adds `prefix` to every touched line, or removes it from all when every one has it.
fn prefix_lines(units: &[u16], start: usize, end: usize, prefix: &str) -> Edited {
    let p = utf16(prefix);
    let all_have = line_starts(units, start, end)
        .iter()
        .all(|&at| units[at..].starts_with(&p));
    edit_lines(units, start, end, |_| {
        if all_have {
            (p.len(), Vec::new())
        } else {
            (0, p.clone())
        }
    })
}

/// Indents every touched line by two spaces, or takes up to two leading spaces away.
fn indent(units: &[u16], start: usize, end: usize, deeper: bool) -> Edited {
    let space = u16::from(b' ');
    edit_lines(units, start, end, |line| {
        if deeper {
            (0, vec![space, space])
        } else {
            (
                line.iter().take(2).take_while(|&&u| u == space).count(),
                Vec::new(),
            )
        }
    })
}

/// Ticks or unticks the task whose `[ ]` starts at `at` (UTF-16 units); `None` when there is
/// no task marker there (the preview was drawn from another version of the text).
pub fn toggle_task(text: &str, at: u32) -> Option<Edited> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let at = at as usize;
    let marker = units.get(at..at + 3)?;
    let (open, close) = (u16::from(b'['), u16::from(b']'));
    if marker[0] != open || marker[2] != close {
        return None;
    }
    let next = match u8::try_from(marker[1]).ok()? {
        b' ' => b'x',
        b'x' | b'X' => b' ',
        _ => return None,
    };
    let ops = vec![Splice16 {
        at: at + 1,
        remove: 1,
        insert: vec![u16::from(next)],
    }];
    Some(finish(&units, ops, at + 3, at + 3))
}

/// Whether the line holding `caret` (UTF-16 units) is a list item (`-`, `*`, `+` or `1.`,
/// indented or not). Tab indents only there: elsewhere it moves the focus on, as keyboard
/// users expect.
pub fn in_list_item(text: &str, caret: u32) -> bool {
    let units: Vec<u16> = text.encode_utf16().collect();
    let at = line_start(&units, (caret as usize).min(units.len()));
    let line = String::from_utf16_lossy(&units[at..]);
    let line = line.lines().next().unwrap_or("").trim_start();
    let bullet = ["- ", "* ", "+ "].iter().any(|b| line.starts_with(b));
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    bullet || (digits > 0 && line[digits..].starts_with(". "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(command: Command, text: &str, start: u32, end: u32) -> (String, u32, u32) {
        let e = apply(command, text, start, end);
        (e.text, e.start, e.end)
    }

    #[test]
    fn bold_wraps_the_selection_and_unwraps_it_again() {
        assert_eq!(
            run(Command::Bold, "a word here", 2, 6),
            ("a **word** here".into(), 4, 8)
        );
        assert_eq!(
            run(Command::Bold, "a **word** here", 4, 8),
            ("a word here".into(), 2, 6)
        );
        // Nothing selected: a placeholder, selected to be typed over.
        assert_eq!(
            run(Command::Italic, "ab", 1, 1),
            ("a_italic_b".into(), 2, 8)
        );
        assert_eq!(run(Command::Code, "x", 0, 1), ("`x`".into(), 1, 2));
    }

    #[test]
    fn links_select_their_address() {
        assert_eq!(
            run(Command::Link, "see docs", 4, 8),
            ("see [docs](https://)".into(), 11, 19)
        );
    }

    #[test]
    fn line_commands_prefix_every_touched_line_and_toggle() {
        assert_eq!(
            run(Command::List, "one\ntwo\nthree", 1, 5),
            ("- one\n- two\nthree".into(), 3, 9)
        );
        assert_eq!(
            run(Command::List, "- one\n- two\nthree", 3, 9),
            ("one\ntwo\nthree".into(), 1, 5)
        );
        assert_eq!(
            run(Command::Heading, "title", 5, 5),
            ("# title".into(), 7, 7)
        );
        assert_eq!(run(Command::Quote, "a\nb", 2, 2), ("a\n> b".into(), 4, 4));
        assert_eq!(
            run(Command::Checklist, "task", 0, 0),
            ("- [ ] task".into(), 6, 6)
        );
    }

    #[test]
    fn tab_indents_list_items_and_shift_tab_outdents() {
        assert_eq!(
            run(Command::Indent, "- a\n- b", 5, 5),
            ("- a\n  - b".into(), 7, 7)
        );
        assert_eq!(
            run(Command::Outdent, "- a\n  - b", 7, 7),
            ("- a\n- b".into(), 5, 5)
        );
        assert_eq!(run(Command::Outdent, "x", 1, 1), ("x".into(), 1, 1));
    }

    #[test]
    fn offsets_are_utf16_and_clamped() {
        assert_eq!(run(Command::Bold, "😀 x", 3, 4), ("😀 **x**".into(), 5, 6));
        assert_eq!(
            run(Command::Bold, "ab", 10, 20),
            ("ab**bold**".into(), 4, 8)
        );
    }

    #[test]
    fn tasks_are_ticked_and_unticked_where_their_marker_is() {
        let text = "- [ ] one\n- [X] two";
        assert_eq!(toggle_task(text, 2).unwrap().text, "- [x] one\n- [X] two");
        assert_eq!(toggle_task(text, 12).unwrap().text, "- [ ] one\n- [ ] two");
        assert_eq!(toggle_task(text, 3), None);
        assert_eq!(toggle_task(text, 100), None);
    }

    /// Applies `ops` from the last to the first, as the page does to the shared text.
    fn replay(text: &str, ops: &[Op]) -> String {
        let mut units: Vec<u16> = text.encode_utf16().collect();
        for op in ops.iter().rev() {
            let at = op.at as usize;
            units.splice(at..at + op.remove as usize, op.insert.encode_utf16());
        }
        String::from_utf16_lossy(&units)
    }

    #[test]
    fn the_edits_make_the_text_and_never_rewrite_the_selection() {
        let texts = [
            "a word here",
            "one\ntwo\nthree",
            "- a\n  - b",
            "😀 x",
            "**bold**",
            "",
        ];
        let commands = [
            Command::Bold,
            Command::Italic,
            Command::Code,
            Command::Link,
            Command::Heading,
            Command::Quote,
            Command::List,
            Command::Checklist,
            Command::Indent,
            Command::Outdent,
        ];
        for text in texts {
            let len = text.encode_utf16().count() as u32;
            for command in commands {
                for (start, end) in [(0, 0), (0, len), (len / 2, len), (len.min(2), len.min(2))] {
                    let edited = apply(command, text, start, end);
                    assert_eq!(
                        replay(text, &edited.ops),
                        edited.text,
                        "{command:?} on {text:?} {start}..{end}"
                    );
                }
            }
        }
        // Bold on a selection inserts markers around it; the selected text stays as it is.
        let edited = apply(Command::Bold, "a word here", 2, 6);
        assert!(
            edited.ops.iter().all(|op| op.remove == 0),
            "{:?}",
            edited.ops
        );
        assert!(
            edited.ops.iter().all(|op| op.insert == "**"),
            "{:?}",
            edited.ops
        );
        let edited = apply(Command::List, "one\ntwo", 0, 5);
        assert_eq!(edited.ops.len(), 2);
        assert!(edited
            .ops
            .iter()
            .all(|op| op.remove == 0 && op.insert == "- "));
    }

    #[test]
    fn list_items_are_recognised() {
        assert!(in_list_item("- a", 1));
        assert!(in_list_item("x\n  * b", 4));
        assert!(in_list_item("12. twelve", 0));
        assert!(!in_list_item("plain", 2));
        assert!(!in_list_item("-dash", 2));
    }

    #[test]
    fn shortcuts_map_to_commands() {
        assert_eq!(
            Command::for_key("b", "KeyB", true, false, false),
            Some(Command::Bold)
        );
        assert_eq!(
            Command::for_key("Tab", "Tab", false, false, false),
            Some(Command::Indent)
        );
        assert_eq!(
            Command::for_key("Tab", "Tab", false, true, false),
            Some(Command::Outdent)
        );
        assert_eq!(
            Command::for_key("*", "Digit8", true, true, false),
            Some(Command::List)
        );
        assert_eq!(Command::for_key("b", "KeyB", false, false, false), None);
    }
}
