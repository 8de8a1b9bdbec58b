//! Embeds the site (what `cargo leptos build` puts in `target/site`: the wasm, its JavaScript,
//! the stylesheet and `public/`) into the release server, so the one executable serves it all:
//! memory-serve lists and compresses the files here, and the server serves them from memory
//! (`cfg(embedded_site)`). Debug builds, and release builds with no site built yet (benchmarks),
//! embed nothing and read `target/site` from disk; the browser build has nothing to embed.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(embedded_site)");
    let server = std::env::var_os("CARGO_FEATURE_SSR").is_some();
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if !(server && release) {
        return;
    }
    let site = std::path::Path::new("target/site");
    println!("cargo::rerun-if-changed=target/site");
    if !site.join("pkg").is_dir() {
        println!(
            "cargo::warning=target/site/pkg is missing: this server reads its site from disk \
             (build the front end first for one executable: cargo leptos build --release \
             --frontend-only)"
        );
        return;
    }
    memory_serve::load_directory_with_embed(site, true);
    println!("cargo::rustc-cfg=embedded_site");
}
