//! The view page, `/v/{id}`: the document's title and its rendered Markdown, following the
//! document live, and who is there. Nothing on it edits: no source, no title field, no
//! toolbar, task boxes that only show.
//!
//! It is rendered on the server like the editor, so the HTML alone shows the document, and
//! hydrates into the same session machinery with [`Access::View`] (see
//! `crate::client::session`): the replica follows the server and this page's presence is
//! sent, but never a change. The server refuses a view link's changes in any case; the page
//! simply has none to send.

use super::document::{load_view_document, DocSnapshot};
use super::live::{self, Access, PeerBadge, SaveState, SessionParts, Status};
use super::notices::{EndedBanner, LoadFailure, NotALink};
use super::peers::PeerList;
use crate::doc_id::DocId;
use crate::markdown;
use crate::protocol::presence::User;
use crate::reconnect::Ending;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn ViewerPage() -> impl IntoView {
    let params = use_params_map();
    let raw = params.read_untracked().get("id").unwrap_or_default();
    match DocId::parse(&raw) {
        Ok(id) => view! { <Viewer id/> }.into_any(),
        Err(error) => view! { <NotALink error/> }.into_any(),
    }
}

#[component]
fn Viewer(id: DocId) -> impl IntoView {
    let key = id.to_string();
    let snapshot = Resource::new(move || key.clone(), load_view_document);
    view! {
        <Suspense fallback=|| view! { <main class="notice"><p>"Opening…"</p></main> }>
            {
                let id = id.clone();
                move || {
                    let id = id.clone();
                    Suspend::new(async move {
                        match snapshot.await {
                            Ok(snapshot) => view! { <Reading id snapshot/> }.into_any(),
                            Err(error) => view! { <LoadFailure error/> }.into_any(),
                        }
                    })
                }
            }
        </Suspense>
    }
}

/// The document as a reader sees it.
#[component]
fn Reading(id: DocId, snapshot: DocSnapshot) -> impl IntoView {
    let content = RwSignal::new(snapshot.content.clone());
    let title_text = RwSignal::new(snapshot.title.clone());
    let loaded_title = snapshot.title.clone();
    let status = RwSignal::new(Status::Connecting);
    let error = RwSignal::new(None::<String>);
    let peers = RwSignal::new(Vec::<PeerBadge>::new());
    let retry_in = RwSignal::new(None::<u32>);
    let ended = RwSignal::new(None::<Ending>);
    // Patched by the session as the document changes (see `client::session::display`).
    let preview_html = markdown::render_read_only(&snapshot.content);

    let parts = SessionParts {
        id,
        access: Access::View,
        snapshot,
        source: NodeRef::new(),
        title: NodeRef::new(),
        content,
        title_text,
        status,
        save: RwSignal::new(SaveState::Saved),
        error,
        retry_in,
        peers,
        me: RwSignal::new(User::default()),
        carets: NodeRef::new(),
        ended,
    };
    // Effects run only in the browser, once the page is hydrated.
    let attached = StoredValue::new(false);
    Effect::new(move |_| {
        if !attached.get_value() {
            attached.set_value(true);
            live::attach_session(parts.clone());
        }
    });

    let shown_title = move || {
        let title = title_text.get();
        let title = title.trim();
        if title.is_empty() {
            "Untitled".to_string()
        } else {
            title.to_string()
        }
    };
    let page_title = super::document_page_title(&loaded_title, title_text);
    let status_label = move || match (status.get(), retry_in.get()) {
        // A reader has no changes of their own to keep.
        (Status::Offline, Some(seconds)) => format!("Offline. Reconnecting in {seconds} s…"),
        (Status::Offline, None) => "Offline".to_string(),
        (status, _) => status.label().to_string(),
    };

    view! {
        <Title text=page_title/>
        <div class="viewer">
            <header class="editor-header">
                <a class="brand small" href="/" rel="external">"Tandem"</a>
                <h1 class="view-title" data-testid="view-title">{shown_title}</h1>
                <span class="view-only" data-testid="view-only" title="This link shows the document; it cannot change it">
                    "View only"
                </span>
                <PeerList peers/>
                <span class="status" data-status=move || status.get().key() data-testid="status" role="status">
                    {status_label}
                </span>
            </header>
            <EndedBanner ended/>
            <Show when=move || error.read().is_some()>
                <p class="error-banner" role="alert" data-testid="error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
            <article class="preview reading" data-testid="preview" inner_html=preview_html></article>
        </div>
    }
}
