#!/usr/bin/env bash
# Installs what is missing, builds Tandem for release and serves it on http://127.0.0.1:3000
# with its SQLite store in ./data. Extra arguments go to the server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
echo "==> building (release)"
# The browser build first: the server build embeds what it produced (build.rs).
cargo leptos build --release --frontend-only
cargo leptos build --release --server-only
echo "==> starting Tandem on http://127.0.0.1:3000 (Ctrl-C stops it)"
exec target/release/tandem "$@"
