//! The editor page: title, connection status, Share, the Markdown source and its preview.
//!
//! The source is a plain `<textarea>`: the browser does the typing, selection, IME and undo,
//! and the client binding turns each change into yrs operations. Its text is written as the
//! element's inner HTML so the server's page carries it verbatim (a leading newline is doubled,
//! because an HTML parser drops the first newline after `<textarea>`).

use super::document::{load_document, DocSnapshot};
use super::history::HistoryPanel;
use super::live::{self, Access, PeerBadge, SaveState, SessionParts, Status, ViewMode};
use super::notices::{EndedBanner, LoadFailure, NotALink};
use super::peers::PeerList;
use super::share_dialog::ShareDialog;
use super::toolbar::Toolbar;
use crate::doc_id::DocId;
use crate::markdown;
use crate::protocol::presence::{User, PALETTE};
use crate::reconnect::Ending;
use leptos::html::{Div, Input, Textarea};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn EditorPage() -> impl IntoView {
    let params = use_params_map();
    let raw = params.read_untracked().get("id").unwrap_or_default();
    match DocId::parse(&raw) {
        Ok(id) => view! { <Editor id/> }.into_any(),
        Err(error) => view! { <NotALink error/> }.into_any(),
    }
}

#[component]
fn Editor(id: DocId) -> impl IntoView {
    let key = id.to_string();
    let snapshot = Resource::new(move || key.clone(), load_document);
    view! {
        <Suspense fallback=|| view! { <main class="notice"><p>"Opening…"</p></main> }>
            {
                let id = id.clone();
                move || {
                    let id = id.clone();
                    Suspend::new(async move {
                        match snapshot.await {
                            Ok(snapshot) => view! { <Workspace id snapshot/> }.into_any(),
                            Err(error) => view! { <LoadFailure error/> }.into_any(),
                        }
                    })
                }
            }
        </Suspense>
    }
}

#[component]
fn Workspace(id: DocId, snapshot: DocSnapshot) -> impl IntoView {
    let source = NodeRef::<Textarea>::new();
    let title_input = NodeRef::<Input>::new();
    let content = RwSignal::new(snapshot.content.clone());
    let title_text = RwSignal::new(snapshot.title.clone());
    let status = RwSignal::new(Status::Connecting);
    let save = RwSignal::new(SaveState::Saved);
    let error = RwSignal::new(None::<String>);
    let peers = RwSignal::new(Vec::<PeerBadge>::new());
    let retry_in = RwSignal::new(None::<u32>);
    let me = RwSignal::new(User::default());
    let carets = NodeRef::<Div>::new();
    // The server's rendering; the session patches it as the source changes (see
    // `client::session::display`), not a signal, so no keystroke renders the whole of it again.
    let preview_html = markdown::render(&snapshot.content);
    let ended = RwSignal::new(None::<Ending>);
    let share_token = id.clone();
    // Split until the browser's remembered choice is read, after hydration.
    let view_mode = RwSignal::new(ViewMode::Split);
    Effect::new(move |_| {
        if let Some(mode) = live::remembered_view_mode() {
            view_mode.set(mode);
        }
    });
    // The document id is the link's own, already parsed: safe in an attribute.
    let download_md = format!("/d/{}/raw?download", id.as_str());
    let download_html = format!("/d/{}/html", id.as_str());
    let history_open = RwSignal::new(false);
    let history_id = id.clone();

    let parts = SessionParts {
        id,
        access: Access::Edit,
        snapshot: snapshot.clone(),
        source,
        title: title_input,
        content,
        title_text,
        status,
        save,
        error,
        retry_in,
        peers,
        me,
        carets,
        ended,
    };
    // The fields take typing only once the session holds them. Before that (the server's page,
    // while the editor's code loads) a keystroke would change a field nothing reads, and the
    // session would then show the document over it: the text would be gone without a word.
    let bound = RwSignal::new(false);
    Effect::new(move |_| {
        if source.get().is_some() && title_input.get().is_some() && !bound.get_untracked() {
            live::attach_session(parts.clone());
            bound.set(true);
        }
    });

    let page_title = super::document_page_title(&snapshot.title, title_text);
    let source_html = textarea_inner_html(&snapshot.content);

    view! {
        <Title text=page_title/>
        <div class="editor" data-bound=move || bound.get().to_string()>
            <header class="editor-header">
                <a class="brand small" href="/" rel="external">"Tandem"</a>
                <input
                    class="title-input"
                    node_ref=title_input
                    value=snapshot.title.clone()
                    placeholder="Untitled"
                    aria-label="Title"
                    autocomplete="off"
                    data-testid="title"
                    readonly=move || !bound.get() || ended.get().is_some()
                />
                <PeerList peers/>
                <details class="profile" data-testid="profile">
                    <summary class="button">"You"</summary>
                    <div class="profile-panel">
                        <label>
                            "Your name"
                            <input
                                data-testid="my-name"
                                maxlength="40"
                                prop:value=move || me.read().name.clone()
                                on:input=move |ev| me.update(|u| u.name = event_target_value(&ev))
                            />
                        </label>
                        <div class="swatches" role="group" aria-label="Your colour">
                            {PALETTE
                                .iter()
                                .map(|color| {
                                    let color = color.to_string();
                                    let pick = color.clone();
                                    let current = color.clone();
                                    view! {
                                        <button
                                            class="swatch"
                                            data-testid="swatch"
                                            data-color=color.clone()
                                            aria-label=format!("Colour {color}")
                                            aria-pressed=move || (me.read().color == current).to_string()
                                            style=format!("--swatch:{color}")
                                            on:click=move |_| me.update(|u| {
                                                u.color = pick.clone();
                                                u.color_light = Some(format!("{pick}33"));
                                            })
                                        ></button>
                                    }
                                })
                                .collect_view()}
                        </div>
                    </div>
                </details>
                <span class="status" data-status=move || status.get().key() data-testid="status" role="status">
                    {move || match (status.get(), retry_in.get()) {
                        (Status::Offline, Some(seconds)) => {
                            format!("{}. Reconnecting in {seconds} s…", status.get().label())
                        }
                        (status, _) => status.label().to_string(),
                    }}
                </span>
                <span
                    class="saved"
                    data-saved=move || save.get().key()
                    data-testid="saved"
                    hidden=move || status.get() != Status::Live
                >
                    {move || save.get().label()}
                </span>
                <button
                    type="button"
                    class="button"
                    data-testid="history-button"
                    aria-expanded=move || history_open.get().to_string()
                    on:click=move |_| history_open.update(|open| *open = !*open)
                >
                    "History"
                </button>
                <a class="button" data-testid="download-md" href=download_md download="">
                    "Download .md"
                </a>
                <a class="button" data-testid="download-html" href=download_html download="">
                    "Download .html"
                </a>
                <ShareDialog token=share_token ended save/>
            </header>
            <EndedBanner ended/>
            <Show when=move || error.read().is_some()>
                <p class="error-banner" role="alert" data-testid="error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
            <Toolbar source content view_mode/>
            <HistoryPanel
                id=history_id
                open=history_open
                content=content
            />
            <div class="panes" data-view=move || view_mode.get().key()>
                <div class="source-wrap">
                    <textarea
                        class="source"
                        node_ref=source
                        inner_html=source_html
                        spellcheck="false"
                        autocomplete="off"
                        aria-label="Markdown source"
                        placeholder="Write Markdown here…"
                        data-testid="source"
                        readonly=move || !bound.get() || ended.get().is_some()
                    ></textarea>
                    <div class="carets" node_ref=carets aria-hidden="true" data-testid="carets"></div>
                </div>
                <article class="preview" data-testid="preview" inner_html=preview_html></article>
            </div>
        </div>
    }
}

/// The text of a `<textarea>` as HTML: escaped, and with a newline in front that the HTML
/// parser removes, so that a document starting with a newline keeps it.
fn textarea_inner_html(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 16);
    html.push('\n');
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            c => html.push(c),
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use super::textarea_inner_html;

    #[test]
    fn textarea_html_is_escaped_and_keeps_leading_newlines() {
        assert_eq!(
            textarea_inner_html("</textarea><b>&"),
            "\n&lt;/textarea&gt;&lt;b&gt;&amp;"
        );
        assert_eq!(textarea_inner_html("\nx"), "\n\nx");
    }
}
