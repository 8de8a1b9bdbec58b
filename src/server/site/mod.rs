//! The site's static files: the wasm, its JavaScript, the stylesheet and `public/`.
//!
//! A server built by `scripts/build-release.sh` carries them inside the executable (see
//! `build.rs`) and serves them from memory through memory-serve, brotli or gzip as the client
//! accepts, each with an ETag. Pages link them under `/site/{version}/`, where the version is a
//! hash of every embedded file computed at build time: a new build means new addresses, so
//! those answers are `immutable` and a returning browser asks for nothing. The same files stay
//! at their plain addresses (`/pkg/tandem.js`, `/favicon.svg`) with `no-cache`.
//!
//! Across a redeploy, a page rendered by the previous build may still ask for its shell's files
//! under the previous version: it gets the current ones, never cached, rather than being left
//! without its script (the script through a module that re-exports the current one, the rest
//! redirected; see `files::elsewhere_under_site`). A wasm chunk of another build is not found:
//! it only fits the main wasm it was cut from. Whatever under `/site/` is not found is
//! `no-store` too, so no cache keeps a missing file.
//!
//! Any other build reads the files from `target/site` (or `LEPTOS_SITE_ROOT`) at run time, as
//! Leptos does, and pages link them at their plain addresses.
//!
//! [`chunks`] names the wasm chunks each page preloads.

mod chunks;

pub use chunks::chunk_preloads;

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

    /// The manifest embedded beside the files it names, read once.
    pub fn split_manifest() -> &'static super::chunks::SplitManifest {
        static MANIFEST: std::sync::OnceLock<super::chunks::SplitManifest> =
            std::sync::OnceLock::new();
        MANIFEST.get_or_init(|| {
            super::chunks::read_split_manifest(Some(include_str!(env!("TANDEM_SPLIT_MANIFEST"))))
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

    /// Anything else under `/site/`. A shell's file asked for under another build's version
    /// gets the current one: the stylesheet, the wasm and the icon by a redirect; the script
    /// by a module that re-exports the current script from its own address. Redirected, the
    /// script would run under the old address while the chunk loader imports it from the new
    /// one, and the page would hold two copies of it, one never started, and hang. The rest is
    /// not found, a wasm chunk of another build included. No answer may be cached. The path is
    /// compared as it came, still percent-encoded: only the exact names match.
    async fn elsewhere_under_site(uri: Uri) -> Response<Body> {
        let no_store = (header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let not_found = || (StatusCode::NOT_FOUND, [no_store.clone()]).into_response();
        let rest = uri.path().strip_prefix("/site/").unwrap_or_default();
        let current = ROOT.trim_start_matches("/site/");
        let Some((version, file)) = rest.split_once('/') else {
            return not_found();
        };
        if version == current {
            return not_found();
        }
        let name = super::OUTPUT_NAME;
        if file == format!("pkg/{name}.js") {
            let script = format!("{ROOT}/pkg/{name}.js");
            let module = format!(
                "// A page of another build: this build's script.\nexport * from \"{script}\";\nexport {{ default }} from \"{script}\";\n"
            );
            let javascript = HeaderValue::from_static("text/javascript; charset=utf-8");
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, javascript), no_store.clone()],
                module,
            )
                .into_response();
        }
        let redirected = [
            format!("pkg/{name}.wasm"),
            format!("pkg/{name}.css"),
            "favicon.svg".to_string(),
        ];
        if !redirected.iter().any(|entry| entry == file) {
            return not_found();
        }
        match HeaderValue::try_from(format!("{ROOT}/{file}")) {
            Ok(location) => (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location), no_store.clone()],
            )
                .into_response(),
            Err(_) => not_found(),
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
    pub fn split_manifest() -> &'static super::chunks::SplitManifest {
        static MANIFEST: std::sync::OnceLock<super::chunks::SplitManifest> =
            std::sync::OnceLock::new();
        MANIFEST.get_or_init(|| {
            let options = super::options();
            let path = std::path::Path::new(options.site_root.as_ref())
                .join(options.site_pkg_dir.as_ref())
                .join("__wasm_split_manifest.json");
            super::chunks::read_split_manifest(std::fs::read_to_string(path).ok().as_deref())
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
