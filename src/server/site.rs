//! The site's static files: the wasm, its JavaScript, the stylesheet and `public/`.
//!
//! A release server built after its front end carries them inside the executable (see
//! `build.rs`) and serves them from memory through memory-serve: brotli or gzip as the client
//! accepts, an ETag on each, and `Cache-Control: no-cache`, so a browser revalidates (a 304 when
//! nothing changed) and never runs an old script against a newer server. Otherwise the files
//! are read from `target/site` (or `LEPTOS_SITE_ROOT`) by the router's fallback, as Leptos does.

use super::AppState;
use axum::Router;

/// `router` with the embedded site's routes, when there is one.
#[cfg(embedded_site)]
pub fn with_site(router: Router<AppState>) -> Router<AppState> {
    use memory_serve::CacheControl;
    let site = memory_serve::load!()
        .index_file(None)
        .cache_control(CacheControl::NoCache)
        .html_cache_control(CacheControl::NoCache)
        .into_router();
    router.merge(site)
}

/// `router` as it is: the fallback reads the site from disk.
#[cfg(not(embedded_site))]
pub fn with_site(router: Router<AppState>) -> Router<AppState> {
    router
}

/// Whether this executable carries its site.
pub const EMBEDDED: bool = cfg!(embedded_site);
