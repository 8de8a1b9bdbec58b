//! Embeds the site into the server when asked to: `scripts/build-release.sh` builds the server
//! with the `embed-site` feature and `TANDEM_EMBED_SITE` naming a copy of what
//! `cargo leptos build --release --frontend-only` put in `target/site` (the wasm, its
//! JavaScript, the stylesheet and `public/`), and memory-serve compresses those files into the
//! executable (`cfg(embedded_site)`, served by `src/server/site.rs`). Any other build embeds
//! nothing and reads `target/site` at run time: embedding whatever happens to lie there (a
//! debug front end, or one cargo-leptos is still writing) would make an executable that says it
//! carries its site and serves a broken one.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TANDEM_EMBED_SITE");
    println!("cargo::rerun-if-env-changed=LEPTOS_OUTPUT_NAME");
    println!("cargo::rustc-check-cfg=cfg(embedded_site)");
    #[cfg(feature = "embed-site")]
    {
        let dir = std::env::var_os("TANDEM_EMBED_SITE").expect(
            "the embed-site feature needs TANDEM_EMBED_SITE, the directory of a release front \
             end (scripts/build-release.sh sets both)",
        );
        embed::site(std::path::Path::new(&dir));
    }
}

#[cfg(feature = "embed-site")]
mod embed {
    use std::path::{Path, PathBuf};

    /// Checks that `dir` holds a whole front end, names its version and embeds it.
    pub fn site(dir: &Path) {
        let dir = std::fs::canonicalize(dir)
            .unwrap_or_else(|e| panic!("TANDEM_EMBED_SITE={}: {e}", dir.display()));
        println!("cargo::rerun-if-changed={}", dir.display());
        let name = std::env::var("LEPTOS_OUTPUT_NAME").unwrap_or_else(|_| "tandem".into());
        for (file, starts) in [
            (format!("pkg/{name}.js"), &b""[..]),
            (format!("pkg/{name}.wasm"), &b"\0asm"[..]),
            (format!("pkg/{name}.css"), &b""[..]),
        ] {
            let bytes = std::fs::read(dir.join(&file)).unwrap_or_default();
            assert!(
                !bytes.is_empty() && bytes.starts_with(starts),
                "TANDEM_EMBED_SITE={}: {file} is missing, empty or not what it should be; build \
                 the front end first (scripts/build-release.sh does both in order)",
                dir.display()
            );
        }
        // The split build's map from each lazy route to the wasm chunks it needs: the server
        // names them in the page's preload links, so they load beside the main wasm.
        let manifest = dir.join("pkg/__wasm_split_manifest.json");
        let text = std::fs::read_to_string(&manifest).unwrap_or_default();
        assert!(
            text.trim_start().starts_with('{'),
            "TANDEM_EMBED_SITE={}: pkg/__wasm_split_manifest.json is missing; build the front \
             end with --split (scripts/build-release.sh does)",
            dir.display()
        );
        println!(
            "cargo::rustc-env=TANDEM_SPLIT_MANIFEST={}",
            manifest.display()
        );
        println!("cargo::rustc-env=TANDEM_SITE_VERSION={}", version(&dir));
        memory_serve::load_directory_with_embed(&dir, true);
        println!("cargo::rustc-cfg=embedded_site");
    }

    /// The first 16 hex digits of a hash of every file's path and bytes.
    fn version(dir: &Path) -> String {
        let mut files = Vec::new();
        list(dir, &mut files);
        files.sort();
        let mut hasher = blake3::Hasher::new();
        for file in &files {
            let relative = file.strip_prefix(dir).expect("listed under dir");
            hasher
                .update(relative.to_string_lossy().as_bytes())
                .update(b"\0");
            let bytes = std::fs::read(file).expect("a listed file reads");
            hasher
                .update(&(bytes.len() as u64).to_le_bytes())
                .update(&bytes);
        }
        hasher.finalize().to_hex()[..16].to_string()
    }

    fn list(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("the site directory reads") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                list(&path, files);
            } else {
                files.push(path);
            }
        }
    }
}
