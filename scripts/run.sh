#!/usr/bin/env bash
# Installs what is missing, builds Tandem for release and serves it on http://127.0.0.1:3000
# with its SQLite store in ./data. Extra arguments go to the server (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> building (release)"
bash scripts/build-release.sh
echo "==> starting Tandem on http://127.0.0.1:3000 (Ctrl-C stops it)"
exec target/release/tandem "$@"
