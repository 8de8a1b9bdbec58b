//! The HTTP side: health, new documents, malformed links, server-rendered pages (hostile
//! documents included), security headers and the render cap.
#![cfg(feature = "ssr")]

mod common;
mod net;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Peer, TestServer, ONE_AT_A_TIME};
use scraper::{Html, Selector};
use tandem::doc_id::DocId;

async fn get(server: &TestServer, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let request = Request::get(path).body(Body::empty()).unwrap();
    let (status, headers, body) = server.answer(request).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn health_answers_ok() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let (status, _, body) = get(&server, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "ok");
}

#[tokio::test]
async fn new_redirects_to_a_fresh_random_document() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let response = net::get(server.addr, "/new").await;
    assert_eq!(response.status, StatusCode::SEE_OTHER);
    let first = response.headers["location"].to_str().unwrap().to_string();
    let id = first.strip_prefix("/d/").expect("redirects to /d/{id}");
    DocId::parse(id).expect("a well-formed id");
    let again = net::get(server.addr, "/new").await;
    assert_ne!(
        again.headers["location"].to_str().unwrap(),
        first,
        "every new document is new"
    );
}

#[tokio::test]
async fn a_malformed_document_link_is_a_400_page() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    for path in [
        "/d/short",
        "/d/AAAAAAAAAAAAAAAAAAAA%2F",
        "/d/AAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let (status, _, body) = get(&server, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(body.contains("not a document link"), "{path}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_document_opens_empty() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let (status, _, body) = get(&server, &format!("/d/{}", server.new_doc().await)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("data-testid=\"source\""), "{body}");
    assert!(body.contains("Untitled · Tandem"), "{body}");
}

#[tokio::test]
async fn the_page_is_server_rendered_with_the_current_text_and_safe_preview() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let mut peer = Peer::join(&server, &id).await;
    peer.insert(
        0,
        "# Hello there\n\n<script>alert('x')</script> and [link](javascript:alert(1))",
    )
    .await;
    // Wait until the server has it: a second peer sees it.
    let mut check = Peer::join(&server, &id).await;
    check
        .pump_until("the text", |p, _| p.text().starts_with("# Hello"))
        .await;

    let (status, _, body) = get(&server, &format!("/d/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // The source, escaped inside the textarea.
    assert!(body.contains("# Hello there"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
        "{body}"
    );
    // The preview, rendered.
    assert!(body.contains("<h1>Hello there</h1>"), "{body}");
    assert!(!body.contains("<script>alert"), "{body}");
    assert!(!body.contains("href=\"javascript"), "{body}");
}

/// A title and a text written to break out of every place the page puts them.
const HOSTILE_TITLE: &str =
    "</title><script>alert(document.domain)</script>\"'><img src=x onerror=alert(7)>&amp;";
const HOSTILE_CONTENT: &str = "# Hostile\n\n\
<img src=x onerror=alert(1)>\n\n\
<script>alert(2)</script>\n\n\
[click](javascript:alert(3)) and [web](https://example.com/)\n\n\
</textarea><img src=x onerror=alert(4)>\n\n\
<!-- </script><script>alert(5)</script> -->\n\n\
</title><svg onload=alert(6)></svg>\n\n\
`</script>` and \"quotes\" and <!--";

/// A fresh document holding `title` and `content` (see [`common::write_title_and_text`]).
async fn write_document(server: &TestServer, title: &str, content: &str) -> DocId {
    let id = server.new_doc().await;
    common::write_title_and_text(server, &id, title, content).await;
    id
}

fn select<'a>(page: &'a Html, selector: &str) -> Vec<scraper::ElementRef<'a>> {
    page.select(&Selector::parse(selector).unwrap()).collect()
}

/// The nonce of the page's Content Security Policy.
fn csp_nonce(headers: &axum::http::HeaderMap) -> String {
    let policy = headers["content-security-policy"].to_str().unwrap();
    let start = policy.find("'nonce-").expect("a nonce in the policy") + "'nonce-".len();
    policy[start..].split('\'').next().unwrap().to_string()
}

#[tokio::test]
async fn hostile_titles_and_text_are_shown_as_text_on_the_server_rendered_page() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = write_document(&server, HOSTILE_TITLE, HOSTILE_CONTENT).await;
    let benign = write_document(&server, "Plain", "Plain text").await;

    let response = net::get(server.addr, &format!("/d/{id}")).await;
    assert_eq!(response.status, StatusCode::OK);
    let html = &response.body;
    let page = Html::parse_document(html);

    // Nothing the document says became an element or an attribute.
    for injected in [
        "img",
        "svg",
        "[onerror]",
        "[onload]",
        "a[href^='javascript']",
        "title ~ script:not([nonce])",
        "body script:not([nonce])",
    ] {
        assert!(select(&page, injected).is_empty(), "{injected} in {html}");
    }
    // Exactly the scripts a benign page has, every one carrying the policy's nonce and none
    // holding a `<` that could close it or open a comment inside it.
    let benign_page =
        Html::parse_document(&net::get(server.addr, &format!("/d/{benign}")).await.body);
    let scripts = select(&page, "script");
    assert_eq!(
        scripts.len(),
        select(&benign_page, "script").len(),
        "{html}"
    );
    assert_eq!(html.matches("<script").count(), scripts.len(), "{html}");
    let nonce = csp_nonce(&response.headers);
    for script in &scripts {
        assert_eq!(script.value().attr("nonce"), Some(nonce.as_str()), "{html}");
        let code = script.inner_html();
        assert!(!code.contains('<'), "a script holds '<': {code}");
    }

    // Each place shows exactly what was written.
    let titles = select(&page, "title");
    assert_eq!(titles.len(), 1, "{html}");
    assert_eq!(
        titles[0].text().collect::<String>(),
        format!("{HOSTILE_TITLE} · Tandem")
    );
    let title_input = select(&page, "input[data-testid=title]");
    assert_eq!(title_input[0].value().attr("value"), Some(HOSTILE_TITLE));
    let source = select(&page, "textarea[data-testid=source]");
    assert_eq!(source.len(), 1, "{html}");
    assert_eq!(source[0].text().collect::<String>(), HOSTILE_CONTENT);
    let preview = &select(&page, "article[data-testid=preview]")[0];
    let shown = preview.text().collect::<String>();
    for raw in [
        "<img src=x onerror=alert(1)>",
        "<script>alert(2)</script>",
        "</textarea><img src=x onerror=alert(4)>",
        "</title><svg onload=alert(6)></svg>",
    ] {
        assert!(shown.contains(raw), "{raw} not shown as text in {shown}");
    }
    let links = select(&page, "article[data-testid=preview] a");
    assert_eq!(links.len(), 2, "{html}");
    assert_eq!(links[0].value().attr("href"), Some("#"));
    for link in links {
        assert_eq!(
            link.value().attr("rel"),
            Some("noopener noreferrer nofollow ugc")
        );
    }
    // The hydration data carries the same text, escaped for a script.
    assert!(
        html.contains(r"\\u003c/title>\\u003cscript>alert(document.domain)"),
        "{html}"
    );
}

#[tokio::test]
async fn pages_carry_a_strict_policy_whose_nonce_is_fresh_and_matches_their_scripts() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = server.new_doc().await;
    let first = net::get(server.addr, &format!("/d/{id}")).await;
    let second = net::get(server.addr, &format!("/d/{id}")).await;
    assert_eq!(first.status, StatusCode::OK);
    let nonce = csp_nonce(&first.headers);
    assert!(nonce.len() >= 22, "{nonce}");
    assert_ne!(nonce, csp_nonce(&second.headers), "a nonce is used once");

    let policy = first.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        &format!("script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'") as &str,
        "default-src 'self'",
        "style-src-elem 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: https: http:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{directive} missing from {policy}"
        );
    }
    assert!(!policy.contains(" 'unsafe-eval'"), "{policy}");
    assert_eq!(
        policy.matches("'unsafe-inline'").count(),
        1,
        "style attributes only"
    );
    for (name, value) in [
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(first.headers[name], value, "{name}");
    }

    // What the policy would block does not occur: every script has the nonce, no <style>
    // elements, no event-handler attributes.
    let page = Html::parse_document(&first.body);
    let scripts = select(&page, "script");
    assert!(!scripts.is_empty());
    assert!(scripts
        .iter()
        .all(|s| s.value().attr("nonce") == Some(nonce.as_str())));
    assert!(select(&page, "style").is_empty(), "{}", first.body);
    let handlers = page
        .root_element()
        .descendants()
        .filter_map(scraper::ElementRef::wrap)
        .flat_map(|e| {
            e.value()
                .attrs()
                .map(|(name, _)| name.to_string())
                .collect::<Vec<_>>()
        })
        .filter(|name| name.starts_with("on"))
        .collect::<Vec<_>>();
    assert!(handlers.is_empty(), "{handlers:?}");

    // Every other response is marked too; the home page and the not-found page get a nonce of
    // their own.
    for path in ["/", "/nowhere"] {
        let response = net::get(server.addr, path).await;
        let nonce = csp_nonce(&response.headers);
        let page = Html::parse_document(&response.body);
        assert!(
            select(&page, "script")
                .iter()
                .all(|s| s.value().attr("nonce") == Some(nonce.as_str())),
            "{path}"
        );
    }
    for path in ["/healthz", "/d/short", "/new"] {
        let response = net::get(server.addr, path).await;
        assert_eq!(response.headers["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(
            response.headers["x-content-type-options"], "nosniff",
            "{path}"
        );
        assert_eq!(response.headers["x-frame-options"], "DENY", "{path}");
        assert!(
            response.headers.contains_key("content-security-policy"),
            "{path}"
        );
    }
    let health = net::get(server.addr, "/healthz").await;
    assert!(health.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
}

#[tokio::test]
async fn remote_images_can_be_turned_off() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(|c| c.no_remote_images = true).await;
    let response = net::get(server.addr, &format!("/d/{}", server.new_doc().await)).await;
    let policy = response.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("img-src 'self' data:;"), "{policy}");
    assert!(!policy.contains("https:"), "{policy}");
}

/// The heartbeat period in a rendered page's data, as the page will read it.
fn heartbeat_in(page: &str) -> u32 {
    let at = page
        .find("heartbeat_ms")
        .expect("the page says its heartbeat")
        + "heartbeat_ms".len();
    let digits: String = page[at..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

#[tokio::test]
async fn the_page_is_told_the_configured_heartbeat() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let page = net::get(server.addr, &format!("/d/{}", server.new_doc().await)).await;
    assert_eq!(heartbeat_in(&page.body), 15_000);
    drop(server);
    let server = TestServer::start_with(|c| c.heartbeat_ms = 250).await;
    let page = net::get(server.addr, &format!("/d/{}", server.new_doc().await)).await;
    assert_eq!(heartbeat_in(&page.body), 250);
}

#[tokio::test]
async fn document_pages_beyond_the_render_cap_are_answered_503() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start_with(|c| c.max_concurrent_renders = 2).await;
    let id = server.new_doc().await;
    // Two renders in progress: the test holds their permits.
    let busy = server
        .state
        .renders
        .clone()
        .try_acquire_many_owned(2)
        .unwrap();
    let refused = net::get(server.addr, &format!("/d/{id}")).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(refused.headers["x-frame-options"], "DENY");
    // Loading a document through its server function is a render too.
    let refused = net::get(server.addr, "/api/load_document").await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    // Other pages are not held back.
    assert_eq!(net::get(server.addr, "/").await.status, StatusCode::OK);
    assert_eq!(
        net::get(server.addr, "/healthz").await.status,
        StatusCode::OK
    );
    drop(busy);
    assert_eq!(
        net::get(server.addr, &format!("/d/{id}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.state.renders.available_permits(),
        2,
        "a finished render gives its permit back"
    );
}

/// `GET /d/{id}/raw` gives the Markdown as written, as a file and never as a page; with
/// `?download` it is an attachment whose name keeps only safe characters of the title.
#[tokio::test]
async fn the_raw_markdown_is_served_as_text_and_downloads_under_a_safe_name() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = write_document(&server, HOSTILE_TITLE, HOSTILE_CONTENT).await;
    let (status, headers, body) = get(&server, &format!("/d/{id}/raw")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, HOSTILE_CONTENT);
    assert_eq!(headers["content-type"], "text/markdown; charset=utf-8");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(headers.get("content-disposition").is_none());

    let (status, headers, body) = get(&server, &format!("/d/{id}/raw?download")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, HOSTILE_CONTENT);
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"title-script-alert-document.domain-script-img src-x onerror-alert-7-amp.md\""
    );

    // Unknown documents are empty; malformed ids are refused.
    let (status, _, body) = get(&server, &format!("/d/{}/raw", server.new_doc().await)).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, ""));
    let (status, _, _) = get(&server, "/d/short/raw").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// `GET /d/{id}/html` is the document as one standalone page: rendered by the safe renderer,
/// no script anywhere, its own policy forbidding scripts, named after the title.
#[tokio::test]
async fn the_standalone_html_download_carries_no_script() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    let id = write_document(&server, HOSTILE_TITLE, HOSTILE_CONTENT).await;
    let (status, headers, body) = get(&server, &format!("/d/{id}/html")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .ends_with(".html\""));
    let page = Html::parse_document(&body);
    assert!(select(&page, "script").is_empty(), "{body}");
    // Whatever the text holds stayed text: no element carries a handler or a script link.
    for element in select(&page, "*") {
        for (name, value) in element.value().attrs() {
            assert!(!name.starts_with("on"), "{name}={value}");
            assert!(
                !value.trim_start().starts_with("javascript:"),
                "{name}={value}"
            );
        }
    }
    let title = select(&page, "title");
    assert_eq!(title.len(), 1);
    assert_eq!(title[0].text().collect::<String>(), HOSTILE_TITLE);
    let policy = select(&page, "meta[http-equiv=Content-Security-Policy]");
    assert!(policy[0]
        .value()
        .attr("content")
        .unwrap()
        .starts_with("default-src 'none'"));
    assert_eq!(select(&page, "h1")[0].text().collect::<String>(), "Hostile");
}

/// A client that sends its request head a little at a time and never finishes is cut off once
/// the header time runs out (at its default), and everyone else is served meanwhile.
#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_off() {
    use tandem::server::serving::HEADER_READ_TIMEOUT;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let mut slow = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert_eq!(net::get(server.addr, "/healthz").await.status, 200);
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(
        HEADER_READ_TIMEOUT + std::time::Duration::from_secs(15),
        slow.read_to_end(&mut answer),
    )
    .await;
    assert!(
        ended.is_ok(),
        "the connection was held past the header time"
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "an unfinished request was answered"
    );
}

/// At its default (30 a minute), one address makes its allowance of documents and is then
/// answered 429 with Retry-After, without a row being written; the documents it made open.
#[tokio::test]
async fn making_documents_in_a_loop_is_refused_after_the_allowance() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let server = TestServer::start().await;
    assert_eq!(server.state.config.max_new_documents_per_minute, 30);
    let mut made = Vec::new();
    let mut refused = None;
    for _ in 0..100 {
        let response = net::get(server.addr, "/new").await;
        if response.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
        assert_eq!(response.status, StatusCode::SEE_OTHER);
        made.push(response.headers["location"].to_str().unwrap().to_string());
    }
    let refused = refused.expect("the loop is stopped");
    assert_eq!(made.len(), 30, "the allowance, all at once");
    assert_eq!(refused.headers["retry-after"], "60");
    let documents = server.state.store.document_count().unwrap();
    assert_eq!(documents, 30, "a refused request writes nothing");
    for _ in 0..20 {
        assert_eq!(
            net::get(server.addr, "/new").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    assert_eq!(server.state.store.document_count().unwrap(), 30);
    // What was made opens, and the limit is on making documents, not on opening them.
    let token = DocId::parse(made[29].strip_prefix("/d/").unwrap()).unwrap();
    let mut editor = Peer::join(&server, &token).await;
    editor.insert(0, "made").await;
    assert_eq!(net::get(server.addr, &made[0]).await.status, StatusCode::OK);
}
