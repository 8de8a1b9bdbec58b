//! What a page says instead of, or above, a document it cannot show or can no longer follow:
//! a link that opens nothing, a deleted document, a link reset while the page was open.
//!
//! The editor and the view page share these, so that a person sees the same words whichever
//! link they came by.

use super::document::GONE;
use crate::reconnect::Ending;
use leptos::prelude::*;
use leptos_meta::Title;

/// The page for an address whose last part is not a link at all (it does not parse).
#[component]
pub fn NotALink(error: crate::doc_id::DocIdError) -> impl IntoView {
    view! {
        <Title text="Not a document link · Tandem"/>
        <main class="notice">
            <h1>"This is not a document link"</h1>
            <p>{format!("The address should end in a 22-character link ({error}).")}</p>
            <p><a class="button" href="/" rel="external">"Back to Tandem"</a></p>
        </main>
    }
}

/// The page for a link its document could not be loaded by: the "deleted" notice for a deleted
/// document (the server answered 410), otherwise what the server said (a link that opens
/// nothing answers 404).
#[component]
pub fn LoadFailure(error: ServerFnError) -> impl IntoView {
    if is_gone(&error) {
        return view! { <GonePage/> }.into_any();
    }
    view! {
        <Title text="Cannot be opened · Tandem"/>
        <main class="notice" data-testid="not-found">
            <h1>"This document cannot be opened"</h1>
            <p>{error.to_string()}</p>
            <p><a class="button" href="/" rel="external">"Back to Tandem"</a></p>
        </main>
    }
    .into_any()
}

/// Whether the server refused the page because its document was deleted.
fn is_gone(error: &ServerFnError) -> bool {
    matches!(error, ServerFnError::ServerError(message) if message == GONE)
}

/// The whole page for a deleted document's links.
#[component]
pub fn GonePage() -> impl IntoView {
    view! {
        <Title text="Document deleted · Tandem"/>
        <main class="notice" data-testid="gone">
            <h1>"This document was deleted"</h1>
            <p>"Its links open nothing any more: its text and its history are gone."</p>
            <p><a class="button" href="/" rel="external">"Back to Tandem"</a></p>
        </main>
    }
}

/// The banner a page shows once the server ended its session for good. The document stays on
/// screen as the page last had it (someone may want to copy what they were writing), but
/// nothing more reaches it or leaves it.
#[component]
pub fn EndedBanner(ended: RwSignal<Option<Ending>>) -> impl IntoView {
    move || {
        ended.get().map(|ending| match ending {
            Ending::LinkReset => view! {
                <p class="ended-banner" role="alert" data-testid="link-invalid">
                    <strong>"This link is no longer valid."</strong>
                    " It was reset, so this page no longer follows the document. Ask whoever shared it for the new link."
                </p>
            }
            .into_any(),
            Ending::Deleted => view! {
                <p class="ended-banner" role="alert" data-testid="gone">
                    <strong>"This document was deleted."</strong>
                    " What you see is this page's last copy; nothing is saved any more."
                </p>
            }
            .into_any(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_deleted_message_reads_as_gone() {
        assert!(is_gone(&ServerFnError::new(GONE)));
        assert!(!is_gone(&ServerFnError::new(
            "there is no document at this link"
        )));
    }
}
