//! The pages, rendered on the server and hydrated in the browser.
//!
//! # Layout
//! - [`home`]: `/`, what Tandem is, the New document button and the recently opened documents.
//! - [`editor`]: `/d/{id}`, the title, status, source editor and live preview.
//! - [`viewer`]: `/v/{id}`, the title and the live preview only, for a view link.
//! - [`share_dialog`]: the editor's Share dialog: both links, resetting them, deleting.
//! - [`notices`]: what a page says about a link that opens nothing, a deleted document, a
//!   link reset while the page was open.
//! - [`peers`]: the header's list of who is there.
//! - [`history`]: the History panel: versions, what changed since, Restore.
//! - [`carets`]: the layer that shows other people's carets and selections.
//! - [`toolbar`]: the editor's formatting commands, counts and view modes.
//! - [`document`]: the server functions that hand a page its document's current state.
//! - [`share`]: the Share dialog's server functions.
//! - [`live`]: the seam to the browser-only client (a no-op in the server build).

pub mod carets;
pub mod document;
pub mod editor;
pub mod history;
pub mod home;
pub mod live;
pub mod notices;
pub mod peers;
pub mod share;
pub mod share_dialog;
pub mod toolbar;
pub mod viewer;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, ServerMetaContext, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{lazy_route, path, Lazy, LazyRoute, SsrMode};

/// Where the page's script, wasm, stylesheet and icon are served from: `""` for the plain
/// addresses (`/pkg/tandem.js`), or the versioned root of a server that carries its site
/// (`/site/{version}`, cached for good). The server provides it before the shell renders.
#[derive(Clone, Copy, Debug, Default)]
pub struct AssetRoot(pub &'static str);

/// The wasm chunks the page's route needs besides the main wasm (see [`EditorRoute`]), named
/// as the split build named them. The server provides them before the shell renders, which
/// links them for preloading.
#[derive(Clone, Debug, Default)]
pub struct ChunkPreloads(pub Vec<String>);

/// The HTML document around the app; only ever rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let root = use_context::<AssetRoot>().unwrap_or_default().0;
    let stylesheet = format!(
        "{root}/{}/{}.css",
        options.site_pkg_dir, options.output_name
    );
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <meta name="referrer" content="no-referrer"/>
                <link rel="icon" href=format!("{root}/favicon.svg") type="image/svg+xml"/>
                <link rel="stylesheet" id="tandem" href=stylesheet/>
                <HydrationScripts options=without_split_manifest(options) root/>
                <ChunkLinks root/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The script that loads the wasm chunks, as cargo-leptos names it when file names carry no
/// hash (they do not here: the release executable versions its files by address instead).
const SPLIT_LOADER: &str = "__wasm_split.______________________.js";

/// `options` for Leptos's `HydrationScripts`, with a site root where no split manifest can be:
/// given one, it would add its own preload links for the chunks, but only on some pages (see
/// `server::site::chunks`). [`ChunkLinks`] adds them on every page that needs them.
fn without_split_manifest(mut options: LeptosOptions) -> LeptosOptions {
    options.site_root = "/dev/null/site".into();
    options
}

/// Preload links for the route's wasm chunks and the script that loads them, so the browser
/// fetches them while the main wasm downloads. They come after the main wasm's own, which
/// runs first. `crossorigin` matches the loader's own `fetch`, so the preloaded answer is the
/// one it uses.
#[component]
fn ChunkLinks(root: &'static str) -> impl IntoView {
    let chunks = use_context::<ChunkPreloads>().unwrap_or_default().0;
    let loader = (!chunks.is_empty()).then(|| {
        view! {
            <link rel="modulepreload" href=format!("{root}/pkg/{SPLIT_LOADER}")/>
        }
    });
    let chunks = chunks
        .into_iter()
        .map(|chunk| {
            view! {
                <link rel="preload" href=format!("{root}/pkg/{chunk}.wasm") r#as="fetch" r#type="application/wasm" crossorigin="anonymous"/>
            }
        })
        .collect_view();
    view! { {chunks} {loader} }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let rendering_on_server = use_context::<ServerMetaContext>().is_some();
    let title_formatter = move |title: String| {
        if rendering_on_server {
            title_as_html(&title)
        } else {
            title
        }
    };
    view! {
        <Title text="Tandem" formatter=title_formatter/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=home::HomePage/>
                <Route path=path!("/d/:id") view={Lazy::<EditorRoute>::new()} ssr=SsrMode::Async/>
                <Route path=path!("/v/:id") view={Lazy::<ViewerRoute>::new()} ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}

/// The editor's route. Its view is a split point: the browser fetches the editor's code (the
/// replica, the socket, the Markdown renderer, the panels) only on a page that shows a
/// document, so the home page loads a fraction of the wasm.
struct EditorRoute;

#[lazy_route]
impl LazyRoute for EditorRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <editor::EditorPage/> }.into_any()
    }
}

/// The view link's route, a split point like the editor's.
struct ViewerRoute;

#[lazy_route]
impl LazyRoute for ViewerRoute {
    fn data() -> Self {
        Self
    }

    fn view(_this: Self) -> AnyView {
        view! { <viewer::ViewerPage/> }.into_any()
    }
}

/// A document page's `<title>`: the document's title, or "Untitled", then the product.
fn page_title(title: &str) -> String {
    match title.trim() {
        "" => "Untitled · Tandem".to_string(),
        title => format!("{title} · Tandem"),
    }
}

/// A document page's `<title>` text for leptos_meta: in the browser it follows `title` as it
/// changes. On the server it is the title as `loaded`: leptos_meta reads it once the body is
/// rendered, outside the render's reactive arena, where a signal would be read from whichever
/// arena the thread last held (another page's title, or a panic that cut the response off).
pub(crate) fn document_page_title(loaded: &str, title: RwSignal<String>) -> TextProp {
    if use_context::<ServerMetaContext>().is_some() {
        page_title(loaded).into()
    } else {
        (move || page_title(&title.get())).into()
    }
}

/// A title as the text of the server's `<title>` element.
///
/// Titles are whatever people type, and leptos_meta writes the server's `<title>` verbatim, so
/// a title like `</title><script>…` would end the element and start a script. Escaped, it is
/// text; the browser decodes it back to the same characters. In the browser the title is set
/// through `document.title`, which takes text, so it is left as it is there.
pub fn title_as_html(title: &str) -> String {
    let mut html = String::with_capacity(title.len());
    for c in title.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            c => html.push(c),
        }
    }
    html
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

#[cfg(test)]
mod tests {
    use super::title_as_html;

    #[test]
    fn a_title_cannot_close_its_element() {
        assert_eq!(
            title_as_html("</title><script>alert(1)</script> & co"),
            "&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"
        );
    }
}
