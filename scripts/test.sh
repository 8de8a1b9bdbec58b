#!/usr/bin/env bash
# Installs what the tests need, builds Tandem and runs every test: the Rust unit and
# integration tests, then the Playwright tests in end2end/ against the real server.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
logs=$(mktemp -d)
started=$(date +%s)

# Built as the README's run command builds it; one-file.spec.ts copies it alone and runs it.
echo "==> building the one file to deploy (release, site embedded)"
bash scripts/build-release.sh

# cargo-leptos builds debug with this flag; the tests use it too, so one target directory
# serves both and nothing is compiled twice.
export RUSTFLAGS="--cfg erase_components"
# cargo-leptos compiles this into the server; the same value keeps cargo test from rebuilding
# Leptos with a different one.
export LEPTOS_OUTPUT_NAME=tandem

echo "==> building the server and the browser app (debug)"
cargo leptos build --split

echo "==> Rust tests"
cargo test --no-default-features --features ssr 2>&1 | tee "$logs/cargo.txt"
# The benchmarks are not run here (they print figures, they judge nothing), only compiled.
cargo test --no-default-features --features ssr --benches --no-run

echo "==> Playwright tests"
(cd end2end && npx playwright test) 2>&1 | tee "$logs/playwright.txt"

rust_passed=$(grep -oE 'test result: ok\. [0-9]+ passed' "$logs/cargo.txt" | awk '{s+=$4} END {print s+0}')
e2e_passed=$(grep -oE '^ *[0-9]+ passed' "$logs/playwright.txt" | awk '{s+=$1} END {print s+0}')
echo
echo "Rust: $rust_passed passed; Playwright: $e2e_passed passed; $(( $(date +%s) - started ))s after set-up"
echo "$((rust_passed + e2e_passed)) passed, 0 failed"
