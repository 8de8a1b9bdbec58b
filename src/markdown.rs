//! Markdown to HTML for the live preview, the same code on the server and in the browser.
//!
//! The preview is inserted as HTML, so whatever a collaborator types must never run in another
//! person's browser. Rather than sanitising HTML after the fact, the event stream is made safe
//! before it is written: raw HTML (block and inline) becomes escaped text, and link and image
//! targets whose scheme is not on a short allow-list are replaced by `#`. pulldown-cmark escapes
//! everything else it writes.
//!
//! Links are written here rather than by pulldown-cmark, to mark them
//! `rel="noopener noreferrer nofollow ugc"`: a followed link neither hands the new page this
//! one nor tells it where the reader came from (the address of a document is its key), and
//! search engines give it no credit.

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd};
use pulldown_cmark_escape::{escape_href, escape_html};

/// The `rel` of every link in the preview.
pub const LINK_REL: &str = "noopener noreferrer nofollow ugc";

/// The Markdown the preview understands: CommonMark with tables, strikethrough, task lists
/// and footnotes.
const OPTIONS: Options = Options::ENABLE_TABLES
    .union(Options::ENABLE_STRIKETHROUGH)
    .union(Options::ENABLE_TASKLISTS)
    .union(Options::ENABLE_FOOTNOTES);

/// Renders Markdown source to HTML that is safe to insert into the page, with tickable task
/// boxes (the editor's preview).
pub fn render(source: &str) -> String {
    render_blocks(source, true).concat()
}

/// Renders Markdown source like [`render`], with task boxes that only show whether the task
/// is done (the view page, where nothing may be changed).
pub fn render_read_only(source: &str) -> String {
    render_blocks(source, false).concat()
}

/// The HTML of each top-level block of `source` (a paragraph, a heading, a whole list, a
/// table…), in order; together they are [`render`]'s HTML (or [`render_read_only`]'s).
///
/// The browser's preview replaces only the blocks that changed since it last showed the
/// document, so a block's HTML depends on nothing outside it but what Markdown itself shares
/// across a document: link reference definitions and footnote numbers. That is why task boxes
/// carry no position in the source (see [`task_markers`]).
pub fn render_blocks(source: &str, tickable: bool) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut pending: Vec<Event<'_>> = Vec::new();
    let mut depth = 0usize;
    let mut footnotes = FootnoteNumbers::default();
    let mut in_image = 0usize;
    for event in Parser::new_ext(source, OPTIONS) {
        let ends_block = match &event {
            Event::Start(_) => {
                depth += 1;
                false
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                depth == 0
            }
            _ => depth == 0,
        };
        match &event {
            Event::Start(Tag::Image { .. }) => in_image += 1,
            Event::End(TagEnd::Image) => in_image = in_image.saturating_sub(1),
            _ => {}
        }
        pending.push(match event {
            Event::TaskListMarker(done) => Event::InlineHtml(task_box(tickable, done).into()),
            Event::FootnoteReference(name) => footnotes.reference(&name, in_image > 0),
            Event::Start(Tag::FootnoteDefinition(name)) => footnotes.definition(&name),
            other => make_safe(other),
        });
        if ends_block {
            let mut html = String::new();
            html::push_html(&mut html, pending.drain(..));
            blocks.push(html);
        }
    }
    if !pending.is_empty() {
        let mut html = String::new();
        html::push_html(&mut html, pending.drain(..));
        blocks.push(html);
    }
    blocks
}

/// Footnotes are numbered in the order they are first referred to, across the whole document,
/// as pulldown-cmark's writer numbers them; written here because each block has a writer of
/// its own.
#[derive(Default)]
struct FootnoteNumbers {
    numbers: std::collections::HashMap<String, usize>,
}

impl FootnoteNumbers {
    fn number(&mut self, name: &str) -> usize {
        let next = self.numbers.len() + 1;
        *self.numbers.entry(name.to_string()).or_insert(next)
    }

    /// A reference: a linked superscript number, or just `[n]` inside an image's alt text.
    fn reference(&mut self, name: &str, in_image: bool) -> Event<'static> {
        let number = self.number(name);
        if in_image {
            return Event::Text(format!("[{number}]").into());
        }
        let mut html = String::from("<sup class=\"footnote-reference\"><a href=\"#");
        let _ = escape_html(&mut html, name);
        html.push_str(&format!("\">{number}</a></sup>"));
        Event::InlineHtml(html.into())
    }

    /// The opening of a definition; pulldown-cmark's writer closes it.
    fn definition(&mut self, name: &str) -> Event<'static> {
        let mut html = String::from("<div class=\"footnote-definition\" id=\"");
        let _ = escape_html(&mut html, name);
        let number = self.number(name);
        html.push_str(&format!(
            "\"><sup class=\"footnote-definition-label\">{number}</sup>"
        ));
        Event::InlineHtml(html.into())
    }
}

/// The checkbox of a task list item. A tickable one is the n-th `input.task` of the preview and
/// stands for the n-th of [`task_markers`]; one that is not is disabled.
fn task_box(tickable: bool, done: bool) -> &'static str {
    match (tickable, done) {
        (true, true) => "<input type=\"checkbox\" class=\"task\" aria-label=\"Done\" checked=\"\"/>",
        (true, false) => "<input type=\"checkbox\" class=\"task\" aria-label=\"Done\"/>",
        (false, true) => "<input type=\"checkbox\" class=\"task\" disabled=\"\" aria-label=\"Done\" checked=\"\"/>",
        (false, false) => "<input type=\"checkbox\" class=\"task\" disabled=\"\" aria-label=\"Done\"/>",
    }
}

/// Where each task's `[ ]` starts in `source`, in UTF-16 units (the unit of the source field),
/// in the order the preview shows their boxes: ticking the n-th box edits the source there.
pub fn task_markers(source: &str) -> Vec<u32> {
    let mut offsets = Utf16Offsets::new(source);
    Parser::new_ext(source, OPTIONS)
        .into_offset_iter()
        .filter(|(event, _)| matches!(event, Event::TaskListMarker(_)))
        .map(|(_, range)| offsets.at(range.start) as u32)
        .collect()
}

/// Converts byte offsets into `text`, asked in increasing order, to UTF-16 offsets in one pass.
struct Utf16Offsets<'a> {
    text: &'a str,
    byte: usize,
    units: usize,
}

impl<'a> Utf16Offsets<'a> {
    fn new(text: &'a str) -> Self {
        Utf16Offsets {
            text,
            byte: 0,
            units: 0,
        }
    }

    fn at(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            // Out of order: count from the start again.
            self.byte = 0;
            self.units = 0;
        }
        let end = byte.min(self.text.len());
        if let Some(between) = self.text.get(self.byte..end) {
            self.units += between.encode_utf16().count();
            self.byte = end;
        }
        self.units
    }
}

fn make_safe(event: Event<'_>) -> Event<'_> {
    match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id: _,
        }) => Event::InlineHtml(link_start(link_type, safe_url(dest_url), &title).into()),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    }
}

/// The opening `<a>` of a link to `url` (already made safe); pulldown-cmark writes its end.
fn link_start(link_type: LinkType, url: CowStr<'_>, title: &str) -> String {
    let mut html = String::from("<a href=\"");
    if link_type == LinkType::Email && url.as_ref() != "#" {
        html.push_str("mailto:");
    }
    // Writing into a String cannot fail.
    let _ = escape_href(&mut html, &url);
    html.push('"');
    if !title.is_empty() {
        html.push_str(" title=\"");
        let _ = escape_html(&mut html, title);
        html.push('"');
    }
    html.push_str(" rel=\"");
    html.push_str(LINK_REL);
    html.push_str("\">");
    html
}

/// Keeps relative URLs and those with a known-safe scheme; anything else becomes `#`.
///
/// Browsers ignore ASCII whitespace and control characters inside a scheme
/// (`java\tscript:` runs), so they are dropped before the scheme is read.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let cleaned: String = url
        .chars()
        .filter(|c| !c.is_ascii_whitespace() && !c.is_control())
        .take(64)
        .collect::<String>()
        .to_ascii_lowercase();
    let scheme_end = cleaned.find(':');
    let path_start = cleaned.find(['/', '?', '#']).unwrap_or(usize::MAX);
    match scheme_end {
        // A colon after the first '/', '?' or '#' is part of a relative URL, not a scheme.
        Some(end) if end < path_start => {
            let scheme = &cleaned[..end];
            if matches!(scheme, "http" | "https" | "mailto") {
                url
            } else {
                CowStr::Borrowed("#")
            }
        }
        _ => url,
    }
}

#[cfg(test)]
mod tests {
    use super::{render, render_blocks, render_read_only, task_markers};

    #[test]
    fn read_only_task_boxes_are_disabled() {
        let html = render_read_only("- [ ] a\n- [x] b\n");
        assert_eq!(html.matches(r#"disabled="""#).count(), 2, "{html}");
        assert_eq!(html.matches(r#"checked="""#).count(), 1, "{html}");
    }

    #[test]
    fn task_markers_are_where_the_boxes_brackets_are_in_utf16_units() {
        let source = "- [ ] one\n- [x] 😀 two\n- [ ] three";
        // Counted in UTF-16 units: the emoji is two of them (and four bytes).
        assert_eq!(task_markers(source), vec![2, 12, 25]);
        let html = render(source);
        assert_eq!(html.matches(r#"class="task""#).count(), 3, "{html}");
        assert!(!html.contains("disabled"), "{html}");
        // A task inside a quote counts like any other, in the order shown.
        assert_eq!(task_markers("> - [ ] q\n\n- [x] r\n"), vec![4, 13]);
    }

    #[test]
    fn blocks_are_the_whole_rendering_and_depend_only_on_themselves() {
        let source =
            "# T\n\npara *a*\n\n- x\n- y\n\n---\n\n| a |\n|---|\n| b |\n\n```\ncode\n```\n";
        let blocks = render_blocks(source, true);
        assert_eq!(blocks.len(), 6, "{blocks:?}");
        assert_eq!(blocks.concat(), render(source));
        // A change inside one block changes that block's HTML only.
        let edited = render_blocks(&source.replace("para", "para more"), true);
        let differing = blocks.iter().zip(&edited).filter(|(a, b)| a != b).count();
        assert_eq!((edited.len(), differing), (6, 1));
        // A block added in front leaves the others' HTML as it was, task boxes included.
        let tasks = "- [ ] one\n\nend\n";
        let before = render_blocks(tasks, true);
        let after = render_blocks(&format!("new\n\n{tasks}"), true);
        assert_eq!(&after[1..], &before[..]);
    }

    #[test]
    fn footnotes_are_numbered_across_blocks_as_pulldown_cmark_numbers_them() {
        let source = "a[^x] b[^y]\n\nc[^x]\n\n[^y]: why\n\n[^x]: ex\n\n![alt[^y]](/i.png)\n";
        let mut expected = String::new();
        let events = pulldown_cmark::Parser::new_ext(source, super::OPTIONS);
        pulldown_cmark::html::push_html(&mut expected, events);
        let ours = render(source);
        assert_eq!(ours, expected);
        assert!(ours.contains(r##"<a href="#x">1</a>"##), "{ours}");
        assert!(
            ours.contains(r#"id="y"><sup class="footnote-definition-label">2</sup>"#),
            "{ours}"
        );
    }

    #[test]
    fn footnote_names_are_text_wherever_they_are_written() {
        let source = "a[^\"><script>x</script>] b\n\n[^\"><script>x</script>]: note\n";
        for html in [render(source), render_blocks(source, false).concat()] {
            assert!(!html.contains("<script"), "{html}");
            assert!(html.contains("&quot;&gt;&lt;script&gt;"), "{html}");
        }
    }

    #[test]
    fn renders_common_markdown() {
        let html = render("# Title\n\nSome *emphasis* and `code`.\n\n- a\n- b\n");
        assert!(html.contains("<h1>Title</h1>"));
        assert!(html.contains("<em>emphasis</em>"));
        assert!(html.contains("<code>code</code>"));
        assert!(html.contains("<li>a</li>"));
    }

    #[test]
    fn raw_html_is_escaped() {
        let html = render("<script>alert(1)</script>\n\ntext <img src=x onerror=alert(1)> more");
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
    }

    #[test]
    fn dangerous_link_schemes_are_neutralised() {
        for src in [
            "[x](javascript:alert(1))",
            "[x](JavaScript:alert(1))",
            "[x](<java\tscript:alert(1)>)",
            "[x](vbscript:msgbox)",
            "[x](data:text/html;base64,PHNjcmlwdD4=)",
            "![x](javascript:alert(1))",
            "<javascript:alert(1)>",
        ] {
            let html = render(src);
            let targets = attribute_values(&html, "href=\"")
                .chain(attribute_values(&html, "src=\""))
                .collect::<Vec<_>>();
            assert!(!targets.is_empty(), "{src} -> {html}");
            assert!(targets.iter().all(|t| *t == "#"), "{src} -> {html}");
        }
    }

    fn attribute_values<'a>(html: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> {
        html.split(prefix)
            .skip(1)
            .map(|rest| rest.split('"').next().unwrap_or(""))
    }

    #[test]
    fn every_link_is_marked_noopener_noreferrer_nofollow_ugc() {
        for (src, href) in [
            (
                "[a](https://example.com/x?y=1&z=\"2\")",
                "https://example.com/x?y=1&amp;z=%222%22",
            ),
            ("<https://example.com>", "https://example.com"),
            ("<someone@example.com>", "mailto:someone@example.com"),
            ("[a][r]\n\n[r]: /d/abc", "/d/abc"),
            ("[x](javascript:alert(1))", "#"),
        ] {
            let html = render(src);
            let expected = format!("<a href=\"{href}\" rel=\"noopener noreferrer nofollow ugc\">");
            assert!(html.contains(&expected), "{src} -> {html}");
            assert_eq!(
                html.matches("<a ").count(),
                html.matches("</a>").count(),
                "{html}"
            );
        }
        let titled = render("[a](/x \"a \\\"quoted\\\" <title>\")");
        assert!(
            titled.contains(r#"<a href="/x" title="a &quot;quoted&quot; &lt;title&gt;" rel="noopener noreferrer nofollow ugc">a</a>"#),
            "{titled}"
        );
    }

    #[test]
    fn safe_links_are_kept() {
        assert!(
            render("[a](https://example.com/x?y=1)").contains("href=\"https://example.com/x?y=1\"")
        );
        assert!(render("[a](/d/abc)").contains("href=\"/d/abc\""));
        assert!(render("[a](#section)").contains("href=\"#section\""));
        assert!(render("[a](notes/a:b)").contains("href=\"notes/a:b\""));
        assert!(render("[a](mailto:x@example.com)").contains("href=\"mailto:x@example.com\""));
    }
}
