//! The site's static files: the wasm, its JavaScript, the stylesheet and `public/`.
//!
//! A server built by `scripts/build-release.sh` carries them inside the executable (see
//! `build.rs`) and serves them from memory through memory-serve, brotli or gzip as the client
//! accepts, each with an ETag. Pages link them under `/site/{version}/`, where the version is a
//! hash of every embedded file computed at build time: a new build means new addresses, so
//! those answers are `immutable` and a returning browser asks for nothing. The same files stay
//! at their plain addresses (`/pkg/tandem.js`, `/favicon.svg`) with `no-cache`.
//!
//! Across a redeploy, a page rendered by the previous build may still ask for its files under
//! the previous version: it is redirected to the current files, never cached, rather than left
//! without its script. Whatever under `/site/` is not found is `no-store` too, so no cache keeps
//! a missing file.
//!
//! Any other build reads the files from `target/site` (or `LEPTOS_SITE_ROOT`) at run time, as
//! Leptos does, and pages link them at their plain addresses.

use super::AppState;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos::IntoView;

/// Where pages find the site's files: `""` (the plain addresses) or `/site/{version}`.
pub fn asset_root() -> &'static str {
    files::ROOT
}

/// `router` with the site's files and, for any path nothing else answers, the app's "not
/// found" page rendered by `shell` after `context`.
pub fn with_site<IV: IntoView + 'static>(
    router: Router<AppState>,
    context: fn(),
    shell: fn(LeptosOptions) -> IV,
) -> Router<AppState> {
    files::with_site(router, context, shell)
}

/// The wasm chunks a page at `path` loads besides the main wasm, for its shell to preload: the
/// browser then fetches them beside the main wasm rather than once it has run and asked.
///
/// Leptos can add these links itself, but it looks up the split manifest from a reactive
/// owner it does not hold at that moment, so a page got them or not depending on which page
/// the thread had rendered last. Here the links come from the route alone.
pub fn chunk_preloads(path: &str) -> crate::app::ChunkPreloads {
    crate::app::ChunkPreloads(chunks_for(path, files::split_manifest()))
}

/// The chunks `manifest` lists for the split point of the route at `path`. The build names a
/// route's split point after its type (`EditorRoute` → `__editor_route_view_{hash}`).
fn chunks_for(path: &str, manifest: &SplitManifest) -> Vec<String> {
    let route = if path.starts_with("/d/") {
        "__editor_route_view_"
    } else if path.starts_with("/v/") {
        "__viewer_route_view_"
    } else {
        return Vec::new();
    };
    let mut chunks: Vec<String> = manifest
        .iter()
        .filter(|(split, _)| split.starts_with(route))
        .flat_map(|(_, chunks)| chunks.iter().cloned())
        .collect();
    chunks.sort();
    chunks.dedup();
    chunks
}

/// The split build's manifest: each lazy route's split point and the chunks it needs.
type SplitManifest = std::collections::HashMap<String, Vec<String>>;

/// The manifest as read from `text`; a build without one splits nothing.
fn read_split_manifest(text: Option<&str>) -> SplitManifest {
    match text.map(serde_json::from_str::<SplitManifest>) {
        Some(Ok(manifest)) => manifest,
        Some(Err(error)) => {
            tracing::error!(%error, "the split-wasm manifest does not read; pages load their chunks without preloading");
            SplitManifest::new()
        }
        None => SplitManifest::new(),
    }
}

/// Whether this executable carries its site.
pub const EMBEDDED: bool = cfg!(embedded_site);

/// The name cargo-leptos gave the script, the wasm and the stylesheet.
const OUTPUT_NAME: &str = match option_env!("LEPTOS_OUTPUT_NAME") {
    Some(name) => name,
    None => "tandem",
};

/// The Leptos site settings.
///
/// An executable that carries its site takes nothing from the environment: its files have the
/// names they were built with, and a `LEPTOS_*` variable left over from elsewhere must not send
/// pages to files it does not have. Its site root is a path that cannot be a directory
/// (`/dev/null` is a file), because Leptos still looks there for a split-wasm manifest.
///
/// Otherwise the settings come from the `LEPTOS_*` variables cargo-leptos sets at build and run
/// time, with the defaults that fit a binary run from the repository root.
pub fn options() -> LeptosOptions {
    if EMBEDDED {
        return LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root("/dev/null/site")
            .site_pkg_dir("pkg")
            .build();
    }
    let output_name_known = option_env!("LEPTOS_OUTPUT_NAME").is_some()
        || std::env::var_os("LEPTOS_OUTPUT_NAME").is_some();
    let configured = output_name_known
        .then(|| leptos::config::get_configuration(None).ok())
        .flatten()
        .map(|conf| conf.leptos_options);
    configured.unwrap_or_else(|| {
        let site_root = std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into());
        LeptosOptions::builder()
            .output_name(OUTPUT_NAME)
            .site_root(site_root)
            .build()
    })
}

/// Says at start where the site comes from, and warns when there is none to read: pages would
/// render without their script and stylesheet, and never go live.
pub fn log_source(options: &LeptosOptions) {
    if EMBEDDED {
        tracing::info!(root = asset_root(), "site embedded in this executable");
        return;
    }
    let pkg = std::path::Path::new(options.site_root.as_ref()).join(options.site_pkg_dir.as_ref());
    if pkg.is_dir() {
        tracing::info!(dir = %pkg.display(), "site read from disk");
    } else {
        tracing::warn!(
            dir = %pkg.display(),
            "no site here: pages will not load their script or stylesheet (run from the \
             repository root, set LEPTOS_SITE_ROOT, or build one file with scripts/build-release.sh)"
        );
    }
}

/// The site served from memory.
#[cfg(embedded_site)]
mod files {
    use crate::server::AppState;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Router;
    use leptos::config::LeptosOptions;
    use leptos::IntoView;
    use memory_serve::CacheControl;
    use tower_http::set_header::SetResponseHeaderLayer;

    /// `/site/{version}`, the version set by `build.rs` from the embedded files' bytes.
    pub const ROOT: &str = concat!("/site/", env!("TANDEM_SITE_VERSION"));

    /// The files a page of another build may be sent to the current copy of: what its shell
    /// links. A wasm chunk is not among them: it only fits the main wasm of its own build, and
    /// another build's would be loaded into a module it was not cut from.
    const ENTRY_FILES: [&str; 4] = [
        concat!("pkg/", env!("TANDEM_SITE_OUTPUT_NAME"), ".js"),
        concat!("pkg/", env!("TANDEM_SITE_OUTPUT_NAME"), ".wasm"),
        concat!("pkg/", env!("TANDEM_SITE_OUTPUT_NAME"), ".css"),
        "favicon.svg",
    ];

    /// The manifest embedded beside the files it names, read once.
    pub fn split_manifest() -> &'static super::SplitManifest {
        static MANIFEST: std::sync::OnceLock<super::SplitManifest> = std::sync::OnceLock::new();
        MANIFEST.get_or_init(|| {
            super::read_split_manifest(Some(include_str!(env!("TANDEM_SPLIT_MANIFEST"))))
        })
    }

    /// Builds the routes once: memory-serve leaks the decompressed and gzipped copies of every
    /// file for the life of the process, so a second call would hold them twice.
    pub fn with_site<IV: IntoView + 'static>(
        router: Router<AppState>,
        context: fn(),
        shell: fn(LeptosOptions) -> IV,
    ) -> Router<AppState> {
        let plain: Router<AppState> = memory_serve::load!()
            .index_file(None)
            .cache_control(CacheControl::NoCache)
            .html_cache_control(CacheControl::NoCache)
            .into_router();
        let immutable = HeaderValue::from_static("public, max-age=31536000, immutable");
        let no_store = HeaderValue::from_static("no-store");
        let versioned = plain.clone().layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            move |response: &Response<_>| {
                let kept =
                    response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
                Some(if kept {
                    immutable.clone()
                } else {
                    no_store.clone()
                })
            },
        ));
        router
            .merge(plain)
            .nest(ROOT, versioned)
            .route("/site/{*rest}", get(elsewhere_under_site))
            .fallback(not_found(context, shell))
    }

    /// Anything else under `/site/`: a shell's file asked for under another build's version is
    /// redirected to the current one ([`ENTRY_FILES`]); the rest is not found. Neither answer may be cached. The
    /// path is taken as it came, still percent-encoded, so the redirect names the same file.
    async fn elsewhere_under_site(uri: Uri) -> Response<Body> {
        let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let rest = uri.path().strip_prefix("/site/").unwrap_or_default();
        let current = ROOT.trim_start_matches("/site/");
        match rest.split_once('/') {
            Some((version, file)) if version != current && ENTRY_FILES.contains(&file) => {
                match HeaderValue::try_from(format!("{ROOT}/{file}")) {
                    Ok(location) => (
                        StatusCode::TEMPORARY_REDIRECT,
                        [(header::LOCATION, location), no_store],
                    )
                        .into_response(),
                    Err(_) => (StatusCode::NOT_FOUND, [no_store]).into_response(),
                }
            }
            _ => (StatusCode::NOT_FOUND, [no_store]).into_response(),
        }
    }

    /// A response on its way.
    type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;

    /// The app's "not found" page, with nothing read from disk: this executable's files are
    /// all above, and a stray `target/site` beside it must not answer for them.
    fn not_found<IV: IntoView + 'static>(
        context: fn(),
        shell: fn(LeptosOptions) -> IV,
    ) -> impl Fn(State<AppState>, Request<Body>) -> Answer + Clone + Send + Sync + 'static {
        move |State(state): State<AppState>, request| {
            let options = state.leptos.clone();
            let render = leptos_axum::render_app_to_stream_with_context(context, move || {
                shell(options.clone())
            });
            Box::pin(async move {
                let mut response = render(request).await;
                if response.status() == StatusCode::OK {
                    *response.status_mut() = StatusCode::NOT_FOUND;
                }
                response
            })
        }
    }
}

/// The site read from disk.
#[cfg(not(embedded_site))]
mod files {
    use crate::server::AppState;
    use axum::Router;
    use leptos::config::LeptosOptions;
    use leptos::IntoView;

    /// The plain addresses.
    pub const ROOT: &str = "";

    /// The manifest under the site root, read once; none if the front end was not split.
    pub fn split_manifest() -> &'static super::SplitManifest {
        static MANIFEST: std::sync::OnceLock<super::SplitManifest> = std::sync::OnceLock::new();
        MANIFEST.get_or_init(|| {
            let options = super::options();
            let path = std::path::Path::new(options.site_root.as_ref())
                .join(options.site_pkg_dir.as_ref())
                .join("__wasm_split_manifest.json");
            super::read_split_manifest(std::fs::read_to_string(path).ok().as_deref())
        })
    }

    /// Leptos' fallback: a file under the site root if there is one, the app's "not found"
    /// page otherwise.
    pub fn with_site<IV: IntoView + 'static>(
        router: Router<AppState>,
        context: fn(),
        shell: fn(LeptosOptions) -> IV,
    ) -> Router<AppState> {
        router.fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(context, shell))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> SplitManifest {
        read_split_manifest(Some(
            r#"{
                "__editor_route_view_11054704276322023579": ["chunk_3", "split___editor_route_view_11054704276322023579"],
                "__viewer_route_view_12247306844064749189": ["chunk_3", "split___viewer_route_view_12247306844064749189"]
            }"#,
        ))
    }

    #[test]
    fn a_document_page_preloads_its_own_routes_chunks_and_no_others() {
        let manifest = manifest();
        assert_eq!(
            chunks_for("/d/abc", &manifest),
            ["chunk_3", "split___editor_route_view_11054704276322023579"]
        );
        assert_eq!(
            chunks_for("/v/abc", &manifest),
            ["chunk_3", "split___viewer_route_view_12247306844064749189"]
        );
        for other in ["/", "/new", "/d", "/dx/abc", "/v", "/nothing/d/abc"] {
            assert!(chunks_for(other, &manifest).is_empty(), "{other}");
        }
    }

    #[test]
    fn a_manifest_that_does_not_read_preloads_nothing() {
        for text in [
            None,
            Some(""),
            Some("[1, 2]"),
            Some("{\"__editor_route_view_1\": 7}"),
        ] {
            let manifest = read_split_manifest(text);
            assert!(chunks_for("/d/abc", &manifest).is_empty(), "{text:?}");
        }
    }
}
