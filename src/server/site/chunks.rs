//! Which wasm chunks a page preloads.
//!
//! The front end is built split (`cargo leptos build --split`): the editor's and the view
//! page's code are lazy routes (`crate::app::EditorRoute`, `crate::app::ViewerRoute`), cut off
//! the main wasm into chunks that the page loads before it hydrates. The build's manifest maps
//! each split point to the chunks it needs. A document page's shell links those for
//! preloading, so the browser fetches them beside the main wasm rather than once the main wasm
//! has run and asked for them.
//!
//! Leptos can add these links itself, but it looks the manifest up from a reactive owner it
//! does not hold at that moment, so a page got them or not depending on which page its thread
//! had rendered last. The shell is given no manifest to look up (see `crate::app::shell`); the
//! links come from here, from the route alone.

/// The split build's manifest: each split point and the chunks it needs.
pub(super) type SplitManifest = std::collections::HashMap<String, Vec<String>>;

/// The wasm chunks a page at `path` loads besides the main wasm, for its shell to preload.
pub fn chunk_preloads(path: &str) -> crate::app::ChunkPreloads {
    crate::app::ChunkPreloads(chunks_for(path, super::files::split_manifest()))
}

/// The manifest as read from `text`; none (nothing to preload) if there is no text or it does
/// not read, which is logged.
pub(super) fn read_split_manifest(text: Option<&str>) -> SplitManifest {
    match text.map(serde_json::from_str::<SplitManifest>) {
        Some(Ok(manifest)) => manifest,
        Some(Err(error)) => {
            tracing::error!(%error, "the split-wasm manifest does not read; pages load their chunks without preloading");
            SplitManifest::new()
        }
        None => SplitManifest::new(),
    }
}

/// The split point of the route at `path`, as the build names it: after the route's type
/// (`EditorRoute` → `__editor_route_view_{hash}`). Renaming a route type without changing this
/// drops its preloads (the pages still work, a little later); the end-to-end tests of the split
/// and of the release executable check that document pages preload their chunk.
fn split_point(path: &str) -> Option<&'static str> {
    // A document's address is exactly one segment after the prefix; anything longer is a
    // page that is not found, which loads no editor.
    let one_segment = |rest: &str| !rest.is_empty() && !rest.contains('/');
    if path.strip_prefix("/d/").is_some_and(one_segment) {
        Some("__editor_route_view_")
    } else if path.strip_prefix("/v/").is_some_and(one_segment) {
        Some("__viewer_route_view_")
    } else {
        None
    }
}

/// The chunks `manifest` lists for the split point of the route at `path`, each once.
fn chunks_for(path: &str, manifest: &SplitManifest) -> Vec<String> {
    let Some(split) = split_point(path) else {
        return Vec::new();
    };
    let mut chunks: Vec<String> = manifest
        .iter()
        .filter(|(point, _)| point.starts_with(split))
        .flat_map(|(_, chunks)| chunks.iter().cloned())
        .collect();
    chunks.sort();
    chunks.dedup();
    chunks
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
        for other in [
            "/",
            "/new",
            "/d",
            "/d/",
            "/d/a/b",
            "/d/abc/raw",
            "/v/",
            "/v/a/b",
            "/dx/abc",
            "/v",
            "/nothing/d/abc",
        ] {
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
