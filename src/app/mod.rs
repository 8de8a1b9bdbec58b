//! The pages, rendered on the server and hydrated in the browser.
//!
//! # Layout
//! - [`home`]: `/`, what Tandem is, the New document button and the recently opened documents.
//! - [`editor`]: `/d/{id}`, the title, status, source editor and live preview.
//! - [`carets`]: the layer that shows other people's carets and selections.
//! - [`document`]: the server function that hands a page its document's current state.
//! - [`live`]: the seam to the browser-only client (a no-op in the server build).

pub mod carets;
pub mod document;
pub mod editor;
pub mod home;
pub mod live;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app; only ever rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="tandem" href="/pkg/tandem.css"/>
        <Title text="Tandem"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=home::HomePage/>
                <Route path=path!("/d/:id") view=editor::EditorPage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    view! {
        <main class="notice">
            <h1>"Page not found"</h1>
            <p><a href="/" rel="external">"Back to Tandem"</a></p>
        </main>
    }
}
