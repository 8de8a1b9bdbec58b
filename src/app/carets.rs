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

/// The overlay's HTML for `text` with `carets` drawn in it.
pub fn overlay_html(text: &str, carets: &[RemoteCaret]) -> String {
    let units: Vec<u16> = text.encode_utf16().collect();
    let len = units.len() as u32;
    let mut bounds: Vec<u32> = vec![0, len];
    for caret in carets {
        bounds.push(caret.anchor.min(len));
        bounds.push(caret.head.min(len));
    }
    bounds.sort_unstable();
    bounds.dedup();

    let mut html = String::with_capacity(text.len() + 256 * carets.len());
    for window in bounds.windows(2) {
        let (start, end) = (window[0], window[1]);
        push_carets_at(&mut html, start, carets, len);
        let active: Vec<&RemoteCaret> = carets
            .iter()
            .filter(|c| {
                c.anchor.min(c.head).min(len) <= start && start < c.anchor.max(c.head).min(len)
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
        escape_into(
            &mut html,
            &String::from_utf16_lossy(&units[start as usize..end as usize]),
        );
        for _ in &active {
            html.push_str("</span>");
        }
    }
    push_carets_at(&mut html, len, carets, len);
    // A text ending in a newline shows an empty last line in the textarea; keep it here too.
    html.push('\u{200b}');
    html
}

fn push_carets_at(html: &mut String, at: u32, carets: &[RemoteCaret], len: u32) {
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
            if html[..=i].ends_with("</span></span>") && in_label > 0 {
                in_label -= 1;
            }
        }
        out
    }

    #[test]
    fn the_text_itself_is_unchanged_and_escaped() {
        let html = overlay_html("a <b> & c\n", &[]);
        assert_eq!(html, "a &lt;b&gt; &amp; c\n\u{200b}");
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
    fn offsets_past_the_end_are_clamped() {
        let html = overlay_html("ab", &[caret(1, 1, 99)]);
        assert!(html.contains(r#"data-offset="2""#), "{html}");
    }
}
