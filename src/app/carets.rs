//! Other people's carets and selections, drawn over the source editor.
//!
//! A `<textarea>` cannot hold markup, so a layer with the same box, font and wrapping lies over
//! it, showing the same text in transparent ink: only the selection backgrounds and caret bars
//! are visible, and because the text and its wrapping are identical they land exactly on the
//! right characters. This module renders that layer's HTML; the client keeps it in place.

use crate::protocol::presence::safe_color;

/// Someone's selection, resolved to offsets (UTF-16) in the current text.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteCaret {
    pub client: u64,
    pub name: String,
    pub color: String,
    pub anchor: u32,
    pub head: u32,
}

/// The overlay's HTML for `text` with `carets` drawn in it, whole: [`overlay_chunks`] joined
/// (the page draws it in chunks; the tests read it whole).
#[cfg(test)]
fn overlay_html(text: &str, carets: &[RemoteCaret]) -> String {
    overlay_chunks(text, carets).concat()
}

/// The overlay's HTML for `text` with `carets` drawn in it, as one `<div>` per chunk of whole
/// lines (cut as [`crate::pieces`] says), for the page to replace only the chunks that changed (see
/// `client::blocks`). A chunk ends at a line end, so the next begins on a new line just as the
/// text does in the field, and the lines wrap the same. A chunk is split where the text is, not
/// where someone's caret is: a chunk's HTML depends only on its own text and on the carets in
/// it, so typing in one chunk leaves the others' HTML as it was.
pub fn overlay_chunks(text: &str, carets: &[RemoteCaret]) -> Vec<String> {
    Overlay::default().chunks(text, carets)
}

/// [`overlay_chunks`] with chunks of at least `min` bytes, for tests on short texts.
#[cfg(test)]
fn overlay_chunks_of_at_least(min: usize, text: &str, carets: &[RemoteCaret]) -> Vec<String> {
    Overlay::with_min(min).chunks(text, carets)
}

/// The overlay's chunks without carets as last drawn: drawing the next text reuses those whose
/// text did not change, so a keystroke in a large document escapes and counts one chunk, not
/// the whole text.
pub struct Overlay {
    plain: Vec<PlainChunk>,
    /// The least bytes in a chunk (see [`crate::pieces`]).
    min: usize,
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay::with_min(crate::pieces::MIN_PIECE_BYTES)
    }
}

struct PlainChunk {
    text: String,
    /// Its length in UTF-16 units.
    units: u32,
    /// Its text escaped, without the `<div>` around it.
    escaped: String,
}

impl PlainChunk {
    fn new(text: &str) -> Self {
        let mut escaped = String::with_capacity(text.len() + 16);
        escape_into(&mut escaped, text);
        PlainChunk {
            text: text.to_string(),
            units: crate::protocol::diff::utf16_len(text),
            escaped,
        }
    }
}

impl Overlay {
    fn with_min(min: usize) -> Self {
        Overlay {
            plain: Vec::new(),
            min,
        }
    }

    /// [`overlay_chunks`], reusing what the last call drew.
    pub fn chunks(&mut self, text: &str, carets: &[RemoteCaret]) -> Vec<String> {
        let slices = chunks_of(text, self.min);
        self.reuse(&slices);
        let len: u32 = self.plain.iter().map(|c| c.units).sum();
        let count = self.plain.len();
        let mut out = Vec::with_capacity(count);
        let mut start = 0u32;
        for (index, chunk) in self.plain.iter().enumerate() {
            let end = start + chunk.units;
            let last = index + 1 == count;
            let mut html = String::with_capacity(chunk.escaped.len() + 16);
            html.push_str("<div>");
            let touching: Vec<&RemoteCaret> = carets
                .iter()
                .filter(|c| {
                    let (low, high) =
                        (c.anchor.min(c.head).min(len), c.anchor.max(c.head).min(len));
                    let head = c.head.min(len);
                    (start <= head && (head < end || last)) || (low < end && start < high)
                })
                .collect();
            if touching.is_empty() {
                html.push_str(&chunk.escaped);
            } else {
                push_with_carets(&mut html, &chunk.text, start, &touching, len, last);
            }
            if last {
                // A text ending in a newline shows an empty last line in the textarea; keep it here too.
                html.push('\u{200b}');
            }
            html.push_str("</div>");
            out.push(html);
            start = end;
        }
        out
    }

    /// Makes `plain` the chunks of `slices`, keeping those at both ends whose text is unchanged.
    fn reuse(&mut self, slices: &[&str]) {
        let old = &self.plain;
        let prefix = old
            .iter()
            .zip(slices)
            .take_while(|(chunk, slice)| chunk.text == **slice)
            .count();
        let room = old.len().min(slices.len()) - prefix;
        let suffix = old
            .iter()
            .rev()
            .zip(slices.iter().rev())
            .take(room)
            .take_while(|(chunk, slice)| chunk.text == **slice)
            .count();
        let mut old = std::mem::take(&mut self.plain);
        let tail = old.split_off(old.len() - suffix);
        old.truncate(prefix);
        let mut plain = old;
        plain.extend(
            slices[prefix..slices.len() - suffix]
                .iter()
                .map(|s| PlainChunk::new(s)),
        );
        plain.extend(tail);
        self.plain = plain;
    }
}

/// `text` cut into the layer's chunks of at least `min` bytes (at least one chunk, empty for
/// an empty text).
fn chunks_of(text: &str, min: usize) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(text.len() / min.max(1) + 1);
    let mut chunk_start = 0;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        at += line.len();
        if line.ends_with('\n') && crate::pieces::ends_after(line, at - chunk_start, min) {
            chunks.push(&text[chunk_start..at]);
            chunk_start = at;
        }
    }
    if chunk_start < text.len() || chunks.is_empty() {
        chunks.push(&text[chunk_start..]);
    }
    chunks
}

/// `chunk` (which starts at UTF-16 offset `start` of a text `len` long) with the selections
/// and caret bars of `carets` that fall in it.
fn push_with_carets(
    html: &mut String,
    chunk: &str,
    start: u32,
    carets: &[&RemoteCaret],
    len: u32,
    last: bool,
) {
    let units: Vec<u16> = chunk.encode_utf16().collect();
    let end = start + units.len() as u32;
    let mut bounds: Vec<u32> = vec![start, end];
    for caret in carets {
        for at in [caret.anchor.min(len), caret.head.min(len)] {
            if start < at && at < end {
                bounds.push(at);
            }
        }
    }
    bounds.sort_unstable();
    bounds.dedup();
    for window in bounds.windows(2) {
        let (from, to) = (window[0], window[1]);
        push_carets_at(html, from, carets, len);
        let active: Vec<&&RemoteCaret> = carets
            .iter()
            .filter(|c| {
                c.anchor.min(c.head).min(len) <= from && from < c.anchor.max(c.head).min(len)
            })
            .collect();
        for caret in &active {
            html.push_str(&format!(
                r#"<span class="rsel" data-client="{}" data-name="{}" style="--caret:{}">"#,
                caret.client,
                escape(&caret.name),
                color_of(caret)
            ));
        }
        let slice = &units[(from - start) as usize..(to - start) as usize];
        escape_into(html, &String::from_utf16_lossy(slice));
        for _ in &active {
            html.push_str("</span>");
        }
    }
    if last {
        push_carets_at(html, end, carets, len);
    }
}

fn push_carets_at(html: &mut String, at: u32, carets: &[&RemoteCaret], len: u32) {
    for caret in carets.iter().filter(|c| c.head.min(len) == at) {
        html.push_str(&format!(
            r#"<span class="rcaret" data-client="{}" data-name="{}" data-offset="{}" style="--caret:{}"><span class="rlabel">{}</span></span>"#,
            caret.client,
            escape(&caret.name),
            at,
            color_of(caret),
            escape(&caret.name)
        ));
    }
}

fn color_of(caret: &RemoteCaret) -> &str {
    safe_color(&caret.color).unwrap_or("#888888")
}

/// `text` as HTML character data or an attribute value (quotes escaped too).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caret(client: u64, anchor: u32, head: u32) -> RemoteCaret {
        RemoteCaret {
            client,
            name: format!("P{client}"),
            color: "#123456".into(),
            anchor,
            head,
        }
    }

    fn strip_tags(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        let mut in_label = 0;
        for (i, c) in html.char_indices() {
            if html[i..].starts_with("<span class=\"rlabel\">") {
                in_label += 1;
            }
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                _ if !in_tag && in_label == 0 => out.push(c),
                _ => {}
            }
            if html[..i + c.len_utf8()].ends_with("</span></span>") && in_label > 0 {
                in_label -= 1;
            }
        }
        out
    }

    #[test]
    fn the_text_itself_is_unchanged_and_escaped() {
        let html = overlay_html("a <b> & c\n", &[]);
        assert_eq!(html, "<div>a &lt;b&gt; &amp; c\n\u{200b}</div>");
    }

    #[test]
    fn a_selection_covers_exactly_its_characters() {
        let html = overlay_html("hello world", &[caret(1, 6, 11)]);
        let start = html.find(r#"<span class="rsel""#).unwrap();
        let inner = &html[html[start..].find('>').unwrap() + start + 1..];
        assert!(inner.starts_with("world</span>"), "{html}");
        // The caret is at the head, after the selection.
        assert!(html.contains(r#"data-offset="11""#), "{html}");
    }

    #[test]
    fn carets_sit_at_their_offsets_and_survive_hostile_names_and_colours() {
        let mut evil = caret(2, 3, 3);
        evil.name = "<img src=x onerror=alert(1)>".into();
        evil.color = "red;background:url(javascript:alert(1))".into();
        let html = overlay_html("abcdef", &[evil, caret(3, 0, 0)]);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("--caret:#888888"), "{html}");
        let at3 = html.find(r#"data-offset="3""#).unwrap();
        let text_before: String = strip_tags(&html[..at3]);
        assert_eq!(text_before, "abc");
    }

    #[test]
    fn chunks_end_at_line_ends_and_are_never_tiny() {
        assert_eq!(chunks_of("", 1), vec![""]);
        // Neither "a\n" nor "b\n" is a line whose hash marks a cut; a blank line is.
        assert_eq!(chunks_of("a\n\nb\nc", 1), vec!["a\n\n", "b\nc"]);
        assert_eq!(chunks_of("a\n\n", 1), vec!["a\n\n"]);
        // A million empty lines are a thousand chunks, not a million.
        let blank = "\n".repeat(1_000_000);
        let chunks = chunks_of(&blank, crate::pieces::MIN_PIECE_BYTES);
        assert!(chunks.len() <= 1_000, "{}", chunks.len());
        assert_eq!(chunks.concat(), blank);
        let text = "one\n\ntwo three\n\nfour\n";
        let chunks = overlay_chunks_of_at_least(5, text, &[]);
        assert_eq!(chunks.len(), 3);
        assert_eq!(strip_tags(&chunks.concat()), format!("{text}\u{200b}"));
    }

    #[test]
    fn a_selection_across_chunks_is_drawn_in_each_and_others_are_untouched() {
        let text = "one\n\ntwo\n\nthree\n\nfour";
        let chunks = |carets: &[RemoteCaret]| overlay_chunks_of_at_least(5, text, carets);
        let plain = chunks(&[]);
        // From "ne" in the first chunk to "th" in the third.
        let drawn = chunks(&[caret(1, 1, 12)]);
        assert_eq!(drawn.len(), 4);
        assert!(drawn[0].contains(r#"class="rsel""#) && drawn[1].contains(r#"class="rsel""#));
        assert!(drawn[2].contains(r#"data-offset="12""#), "{:?}", drawn[2]);
        assert_eq!(drawn[3], plain[3]);
        let selected: String = drawn
            .iter()
            .flat_map(|chunk| chunk.split(r#"<span class="rsel""#).skip(1))
            .map(|rest| {
                rest[rest.find('>').unwrap() + 1..]
                    .split("</span>")
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(selected, "ne\n\ntwo\n\nth");
        // A caret at the end of the text is drawn in the last chunk, at a chunk's start in that one.
        assert!(chunks(&[caret(2, 21, 21)])[3].contains(r#"data-offset="21""#));
        assert!(chunks(&[caret(3, 5, 5)])[1].starts_with(r#"<div><span class="rcaret""#));
    }

    #[test]
    fn drawing_again_gives_what_drawing_afresh_gives() {
        let mut overlay = Overlay::with_min(3);
        let texts = [
            "one\n\ntwo\n\nthree",
            "one\n\ntwo more\n\nthree",
            "zero\n\none\n\ntwo more\n\nthree",
            "zero\n\none\n\nthree",
            "",
            "😀\n\nx",
        ];
        for text in texts {
            for carets in [vec![], vec![caret(1, 2, 9)], vec![caret(2, 99, 99)]] {
                assert_eq!(
                    overlay.chunks(text, &carets),
                    overlay_chunks_of_at_least(3, text, &carets),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn offsets_past_the_end_are_clamped() {
        let html = overlay_html("ab", &[caret(1, 1, 99)]);
        assert!(html.contains(r#"data-offset="2""#), "{html}");
    }
}
