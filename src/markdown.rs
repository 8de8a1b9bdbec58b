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

use pulldown_cmark::{html, CowStr, Event, LinkType, Options, Parser, Tag};
use pulldown_cmark_escape::{escape_href, escape_html};

/// The `rel` of every link in the preview.
pub const LINK_REL: &str = "noopener noreferrer nofollow ugc";

/// Renders Markdown source to HTML that is safe to insert into the page, with tickable task
/// boxes (the editor's preview).
pub fn render(source: &str) -> String {
    render_with(source, true)
}

/// Renders Markdown source like [`render`], with task boxes that only show whether the task
/// is done (the view page, where nothing may be changed).
pub fn render_read_only(source: &str) -> String {
    render_with(source, false)
}

fn render_with(source: &str, tickable: bool) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES;
    let mut tasks = Utf16Offsets::new(source);
    let events = Parser::new_ext(source, options)
        .into_offset_iter()
        .map(move |(event, range)| match event {
            Event::TaskListMarker(done) => {
                let at = tasks.at(range.start);
                Event::InlineHtml(task_box(tickable.then_some(at), done).into())
            }
            other => make_safe(other),
        });
    let mut out = String::with_capacity(source.len() + source.len() / 2);
    html::push_html(&mut out, events);
    out
}

/// The checkbox of a task list item. A tickable one carries where its `[ ]` starts in the
/// source (in UTF-16 units, the unit of the source field), so that ticking it edits the source
/// there; without that place it is disabled.
fn task_box(at: Option<usize>, done: bool) -> String {
    let checked = if done { " checked=\"\"" } else { "" };
    match at {
        Some(at) => format!("<input type=\"checkbox\" class=\"task\" data-task-at=\"{at}\" aria-label=\"Done\"{checked}/>"),
        None => format!("<input type=\"checkbox\" class=\"task\" disabled=\"\" aria-label=\"Done\"{checked}/>"),
    }
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
    use super::{render, render_read_only};

    #[test]
    fn read_only_task_boxes_are_disabled_and_say_no_place() {
        let html = render_read_only("- [ ] a\n- [x] b\n");
        assert!(!html.contains("data-task-at"), "{html}");
        assert_eq!(html.matches(r#"disabled="""#).count(), 2, "{html}");
        assert!(html.contains(r#"checked="""#), "{html}");
    }

    #[test]
    fn task_boxes_say_where_their_marker_is() {
        let html = render("- [ ] one\n- [x] 😀 two\n- [ ] three");
        assert!(html.contains(r#"data-task-at="2""#), "{html}");
        assert!(
            html.contains(r#"data-task-at="12" aria-label="Done" checked="""#),
            "{html}"
        );
        // Counted in UTF-16 units: the emoji is two of them (and four bytes).
        assert!(html.contains(r#"data-task-at="25""#), "{html}");
        assert!(!html.contains("disabled"), "{html}");
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
