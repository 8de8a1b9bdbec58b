//! The editor's Share dialog: the edit and view links to copy, resetting them, deleting the
//! document.
//!
//! The links are asked of the server when the dialog opens, not rendered into the page: the
//! page is the editor's, and a view link is only for whoever chooses to share it. They are shown
//! as full addresses, since that is what people paste elsewhere. The dialog is a modal
//! `<dialog>`: the browser keeps the focus inside it, Escape closes it, and the focus goes back
//! to the Share button.

use super::live::{self, SaveState};
use super::share::{delete_document, reset_links, share_links, DocumentLinks};
use crate::doc_id::DocId;
use crate::reconnect::Ending;
use leptos::html::Dialog;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// One of the two links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    Edit,
    View,
}

/// The Share button and its dialog, for the document the editor opened by the edit link
/// `token`. Deleting sets `ended`, which the page shows (and which stops its session).
/// `save` says whether this page's changes are stored: the edit link is not reset before
/// they are, since the page then moves to the new link and the changes it still holds are kept
/// (offline) under the old one.
#[component]
pub fn ShareDialog(
    token: DocId,
    ended: RwSignal<Option<Ending>>,
    save: RwSignal<SaveState>,
) -> impl IntoView {
    let dialog = NodeRef::<Dialog>::new();
    // The server's answer, once it has come; `origin` turns its paths into addresses.
    let links = RwSignal::new(None::<DocumentLinks>);
    let origin = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let done = RwSignal::new(None::<&'static str>);
    let copied = RwSignal::new(None::<Which>);
    let reset_edit = RwSignal::new(false);
    let reset_view = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let confirming = RwSignal::new(false);
    let token = StoredValue::new(token.to_string());

    let open = move |_| {
        origin.set(live::page_origin());
        problem.set(None);
        done.set(None);
        copied.set(None);
        if let Some(dialog) = dialog.get() {
            let _ = dialog.show_modal();
        }
        spawn_local(async move {
            match share_links(token.get_value()).await {
                Ok(shown) => links.set(Some(shown)),
                Err(error) => problem.set(Some(format!("The links could not be read: {error}"))),
            }
        });
    };
    // The page's own link is the edit link of a document made before links had roles, which
    // the server does not keep (it answers `None` until the link is reset).
    let address = move |which: Which| {
        links.with(|links| {
            let links = links.as_ref()?;
            let path = match which {
                Which::Edit => links
                    .edit
                    .clone()
                    .unwrap_or_else(|| format!("/d/{}", token.get_value())),
                Which::View => links.view.clone()?,
            };
            Some(format!("{}{path}", origin.get()))
        })
    };
    let copy = move |which: Which| {
        let Some(text) = address(which) else { return };
        copied.set(None);
        live::copy_text(text, move |ok| {
            if ok {
                copied.set(Some(which));
            } else {
                problem.set(Some(
                    "The browser did not let the page use the clipboard.".into(),
                ));
            }
        });
    };
    let reset = move |_| {
        let (edit, view) = (reset_edit.get_untracked(), reset_view.get_untracked());
        if !(edit || view) || busy.get_untracked() {
            return;
        }
        if edit && save.get_untracked() != SaveState::Saved {
            problem.set(Some(
                "Your latest changes are still being saved. Reset the edit link once the page says Saved."
                    .into(),
            ));
            return;
        }
        busy.set(true);
        problem.set(None);
        done.set(None);
        spawn_local(async move {
            match reset_links(token.get_value(), edit, view).await {
                Ok(new) => {
                    // This page's own link opens nothing any more, and its connection is being
                    // closed: the page goes on at the new one.
                    if let (true, Some(path)) = (edit, &new.edit) {
                        live::replace_page(path);
                    }
                    links.set(Some(new));
                    copied.set(None);
                    reset_edit.set(false);
                    reset_view.set(false);
                    done.set(Some("New links made. The old ones open nothing any more."));
                }
                Err(error) => problem.set(Some(format!("The links were not reset: {error}"))),
            }
            busy.set(false);
        });
    };
    let delete = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        problem.set(None);
        spawn_local(async move {
            match delete_document(token.get_value()).await {
                Ok(()) => {
                    ended.set(Some(Ending::Deleted));
                    if let Some(dialog) = dialog.get_untracked() {
                        dialog.close();
                    }
                }
                Err(error) => problem.set(Some(format!("The document was not deleted: {error}"))),
            }
            busy.set(false);
        });
    };

    view! {
        <button
            type="button"
            class="button"
            data-testid="share-button"
            aria-haspopup="dialog"
            disabled=move || ended.get().is_some()
            on:click=open
        >
            "Share"
        </button>
        <dialog
            class="share-dialog"
            node_ref=dialog
            data-testid="share-dialog"
            aria-labelledby="share-title"
            on:close=move |_| confirming.set(false)
        >
            <h2 id="share-title">"Share"</h2>
            <LinkField
                label="Edit link"
                hint="Anyone with it can change the document, share it, reset its links and delete it."
                testid="edit-link"
                value=Signal::derive(move || address(Which::Edit))
                copied=Signal::derive(move || copied.get() == Some(Which::Edit))
                on_copy=Callback::new(move |()| copy(Which::Edit))
            />
            <LinkField
                label="View link"
                hint="Anyone with it can read the document as it is written, and nothing more."
                testid="view-link"
                value=Signal::derive(move || address(Which::View))
                copied=Signal::derive(move || copied.get() == Some(Which::View))
                on_copy=Callback::new(move |()| copy(Which::View))
            />
            <section class="share-section">
                <h3>"Reset links"</h3>
                <p class="muted">"A reset link opens nothing any more, and pages open with it are disconnected."</p>
                <label class="check">
                    <input
                        type="checkbox"
                        data-testid="reset-edit"
                        prop:checked=reset_edit
                        on:change=move |ev| reset_edit.set(event_target_checked(&ev))
                    />
                    "Edit link (this page moves to the new one)"
                </label>
                <label class="check">
                    <input
                        type="checkbox"
                        data-testid="reset-view"
                        prop:checked=reset_view
                        on:change=move |ev| reset_view.set(event_target_checked(&ev))
                    />
                    "View link"
                </label>
                <button
                    type="button"
                    class="button"
                    data-testid="reset-links"
                    disabled=move || busy.get() || !(reset_edit.get() || reset_view.get())
                    on:click=reset
                >
                    "Reset links"
                </button>
            </section>
            <section class="share-section">
                <h3>"Delete document"</h3>
                <button
                    type="button"
                    class="button danger"
                    data-testid="delete-document"
                    aria-expanded=move || confirming.get().to_string()
                    aria-controls="confirm-delete"
                    on:click=move |_| confirming.update(|shown| *shown = !*shown)
                >
                    "Delete document…"
                </button>
                <div id="confirm-delete" class="confirm" hidden=move || !confirming.get()>
                    <p>"Delete this document for everyone? Its text, its history and both links are removed. This cannot be undone."</p>
                    <button
                        type="button"
                        class="button danger"
                        data-testid="confirm-delete"
                        disabled=busy
                        on:click=delete
                    >
                        "Delete for everyone"
                    </button>
                    <button type="button" class="button" on:click=move |_| confirming.set(false)>
                        "Keep it"
                    </button>
                </div>
            </section>
            <Show when=move || problem.read().is_some()>
                <p class="share-problem" role="alert" data-testid="share-problem">
                    {move || problem.get().unwrap_or_default()}
                </p>
            </Show>
            <p class="share-done" role="status" data-testid="share-done">
                {move || done.get().unwrap_or_default()}
            </p>
            <form method="dialog" class="share-close">
                <button class="button" data-testid="share-close">"Close"</button>
            </form>
        </dialog>
    }
}

/// A link as a read-only field to select or copy, and its Copy button.
#[component]
fn LinkField(
    label: &'static str,
    hint: &'static str,
    testid: &'static str,
    value: Signal<Option<String>>,
    copied: Signal<bool>,
    on_copy: Callback<()>,
) -> impl IntoView {
    view! {
        <div class="link-field">
            <label class="link-label" for=testid>{label}</label>
            <div class="link-row">
                <input
                    type="text"
                    id=testid
                    readonly
                    data-testid=testid
                    placeholder="…"
                    prop:value=move || value.get().unwrap_or_default()
                    on:focus=|ev| {
                        // Selected whole, ready to copy by hand as well.
                        event_target::<leptos::web_sys::HtmlInputElement>(&ev).select();
                    }
                />
                <button
                    type="button"
                    class="button"
                    data-testid=format!("copy-{testid}")
                    disabled=move || value.read().is_none()
                    on:click=move |_| on_copy.run(())
                >
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
            <p class="muted link-hint">{hint}</p>
        </div>
    }
}
