#!/usr/bin/env bash
# Builds the one file to deploy: target/release/tandem with the whole site (wasm, JavaScript,
# stylesheet, public/) inside it. The browser build comes first and is copied aside; the
# server build then embeds that copy (build.rs). Built at once, or from whatever target/site
# holds, the server could embed a front end that is half written or a debug one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export MEMORY_SERVE_QUIET=1
# Components return type-erased views: the wasm is 6 % smaller gzipped (fewer copies of
# Leptos's generic view code). The server is built the same way, as the debug build is.
export RUSTFLAGS="--cfg erase_components"
cargo leptos build --release --frontend-only --split

# The copy keeps the files that did not change untouched, so an unchanged front end does not
# make the server build again. TypeScript declarations are left out: no page asks for them.
stage=target/embedded-site
mkdir -p "$stage"
(cd target/site && find . -type f ! -name '*.d.ts') | while read -r file; do
  if ! cmp -s "target/site/$file" "$stage/$file"; then
    mkdir -p "$(dirname "$stage/$file")"
    cp "target/site/$file" "$stage/$file"
  fi
done
(cd "$stage" && find . -type f) | while read -r file; do
  if [[ "$file" == *.d.ts || ! -f "target/site/$file" ]]; then rm "$stage/$file"; fi
done

TANDEM_EMBED_SITE="$PWD/$stage" cargo leptos build --release --server-only --bin-features embed-site
if ! target/release/tandem --version | grep -q "site embedded"; then
  echo "target/release/tandem does not carry its site" >&2
  exit 1
fi
