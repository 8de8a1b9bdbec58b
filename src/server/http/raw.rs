//! `GET /d/{id}/raw`: a document's Markdown as it is, as `text/markdown`; `GET /d/{id}/html`:
//! the document rendered as one standalone HTML file (styled, no scripts), to keep or send.
//!
//! The text is whatever people wrote, so it goes out as a plain download with
//! `X-Content-Type-Options: nosniff` (added for every response), never as HTML. With `?download`
//! it comes as an attachment named after the title, the title reduced to characters that are
//! safe in a file name and a header.

use crate::doc_id::DocId;
use crate::server::capability::Role;
use crate::server::links::Found;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Longest file name offered, before `.md`.
const MAX_FILE_STEM: usize = 80;

#[derive(serde::Deserialize)]
pub struct RawQuery {
    download: Option<String>,
}

/// The title and text of the document `raw_id` is the edit link of, or the answer refusing it:
/// 400 for a token that does not parse, 404 for one that opens nothing here (a view link is not
/// an edit link), 410 for a link of a deleted document, 503 when the document cannot be read.
async fn texts(state: &AppState, raw_id: &str) -> Result<(String, String), Response> {
    let Ok(token) = DocId::parse(raw_id) else {
        return Err((StatusCode::BAD_REQUEST, "not a document link").into_response());
    };
    let id = match state.links.find_async(token).await {
        Ok(Found::Live(capability)) if capability.role == Role::Edit => capability.doc,
        Ok(Found::Gone) => {
            return Err((StatusCode::GONE, "this document was deleted").into_response())
        }
        Ok(_) => {
            return Err((StatusCode::NOT_FOUND, "there is no document at this link").into_response())
        }
        Err(error) => {
            tracing::warn!(%error, "a link could not be looked up for download");
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                "the link could not be looked up",
            )
                .into_response());
        }
    };
    state.hub.texts(&id).await.map_err(|error| {
        tracing::warn!(doc = %crate::server::redact::doc_tag(&id), %error, "document could not be read for download");
        (StatusCode::SERVICE_UNAVAILABLE, "the document could not be read").into_response()
    })
}

pub async fn raw_markdown(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
    Query(query): Query<RawQuery>,
) -> Response {
    let (title, content) = match texts(&state, &raw_id).await {
        Ok(texts) => texts,
        Err(refusal) => return refusal,
    };
    let mut response = content.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if query.download.is_some() {
        let disposition = disposition(&title, "md");
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
    }
    response
}

/// The stylesheet of a downloaded page: readable on screen and on paper, nothing fetched.
const STANDALONE_CSS: &str = "body{max-width:46rem;margin:2rem auto;padding:0 1rem;\
font:16px/1.6 system-ui,sans-serif;color:#1f2328;background:#fff}\
pre,code{font-family:ui-monospace,monospace;background:#f6f8fa;border-radius:4px}\
pre{padding:.75rem;overflow:auto}code{padding:.1rem .3rem}\
blockquote{margin:0;padding-left:1rem;border-left:3px solid #d0d7de;color:#59636e}\
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:.3rem .6rem}\
img{max-width:100%}\
@media (prefers-color-scheme:dark){body{color:#e6edf3;background:#0d1117}\
pre,code{background:#161b22}}";

/// `GET /d/{id}/html`: the document rendered by the preview's own safe renderer into a page
/// with no scripts at all, its policy in a `<meta>` so it holds wherever the file is opened.
pub async fn standalone_html(
    State(state): State<AppState>,
    Path(raw_id): Path<String>,
) -> Response {
    let (title, content) = match texts(&state, &raw_id).await {
        Ok(texts) => texts,
        Err(refusal) => return refusal,
    };
    let images = if state.config.no_remote_images {
        "data:"
    } else {
        "https: data:"
    };
    let shown_title = if title.trim().is_empty() {
        "Untitled".to_string()
    } else {
        title.trim().to_string()
    };
    let page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src {images}\">\
<meta name=\"referrer\" content=\"no-referrer\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STANDALONE_CSS}</style></head>\n<body>\n{}\n</body></html>\n",
        crate::app::carets::escape(&shown_title),
        crate::markdown::render(&content)
    );
    let mut response = page.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let disposition = format!("attachment; filename=\"{}.html\"", file_stem(&title));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `Content-Disposition` for a download named after `title`: an ASCII name every browser
/// reads and, for a title beyond ASCII, the title itself (percent-encoded UTF-8, RFC 6266).
fn disposition(title: &str, extension: &str) -> String {
    let mut encoded = String::new();
    for c in title.trim().chars().take(MAX_FILE_STEM) {
        // Characters that mean something in a path or a header are left out of both names.
        if c.is_control() || matches!(c, '/' | '\\' | '"' | ':' | '*' | '?' | '<' | '>' | '|') {
            continue;
        }
        let mut bytes = [0u8; 4];
        for byte in c.encode_utf8(&mut bytes).bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
                encoded.push(byte as char);
            } else {
                encoded.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    let ascii = file_stem(title);
    // An ASCII title reads well enough as the plain name.
    if encoded.is_empty() || title.is_ascii() {
        format!("attachment; filename=\"{ascii}.{extension}\"")
    } else {
        format!(
            "attachment; filename=\"{ascii}.{extension}\"; filename*=UTF-8''{encoded}.{extension}"
        )
    }
}

/// A file name for `title`: letters, digits, spaces, `-`, `_` and `.` kept (ASCII only, so the
/// header needs no encoding), runs of anything else made one `-`, at most [`MAX_FILE_STEM`]
/// characters; "document" when nothing is left.
pub fn file_stem(title: &str) -> String {
    let mut stem = String::new();
    for c in title.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.') {
            stem.push(c);
        } else if !stem.ends_with('-') {
            stem.push('-');
        }
        if stem.len() >= MAX_FILE_STEM {
            break;
        }
    }
    let stem = stem.trim_matches(|c: char| c == '-' || c == '.' || c == ' ');
    if stem.is_empty() {
        "document".into()
    } else {
        stem.into()
    }
}

#[cfg(test)]
mod tests {
    use super::file_stem;

    #[test]
    fn titles_outside_ascii_are_offered_encoded_too() {
        assert_eq!(
            super::disposition("日本 notes", "md"),
            "attachment; filename=\"notes.md\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20notes.md"
        );
        assert_eq!(
            super::disposition("é\"b\r\n/c", "md"),
            "attachment; filename=\"b-c.md\"; filename*=UTF-8''%C3%A9bc.md"
        );
        assert_eq!(
            super::disposition("plain: text", "md"),
            "attachment; filename=\"plain- text.md\""
        );
        assert_eq!(
            super::disposition("", "md"),
            "attachment; filename=\"document.md\""
        );
    }

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_stem("Meeting notes 2026-11"), "Meeting notes 2026-11");
        assert_eq!(
            file_stem("\"; filename=evil.exe\r\nX: y"),
            "filename-evil.exe-X- y"
        );
        assert_eq!(file_stem("../../etc/passwd"), "etc-passwd");
        assert_eq!(file_stem("日本語"), "document");
        assert_eq!(file_stem(""), "document");
        assert_eq!(file_stem(&"a".repeat(500)).len(), 80);
    }
}
