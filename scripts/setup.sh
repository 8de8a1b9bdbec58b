#!/usr/bin/env bash
# Installs what building Tandem needs, skipping whatever is already there.
#   bash scripts/setup.sh          tools to build and run
#   bash scripts/setup.sh --test   also what the tests need (Chromium, Playwright, PostgreSQL, Redis)
# Safe to run again: each step checks first. Everything comes from crates.io, npm or Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs a newer Rust than 1.95
WASM_BINDGEN_VERSION=0.2.130  # must equal the wasm-bindgen crate pinned in Cargo.toml

step() { printf '\n==> %s\n' "$*"; }
export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  step "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 15-25 minutes, once)"
  # Its release profile links with fat LTO on one core; a plain optimised build is much faster.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install cargo-leptos --version "$CARGO_LEPTOS_VERSION" --locked --features no_downloads
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  step "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 10 minutes, once)"
  # Not --locked: its lock file names a yanked dependency.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# wasm-opt for release builds: Debian's binaryen produces a broken module, npm's works.
if [ ! -x tools/node_modules/.bin/wasm-opt ]; then
  step "installing binaryen (wasm-opt) from npm"
  (cd tools && npm ci --no-audit --no-fund)
fi

if [ "${1:-}" = "--test" ]; then
  if [ ! -x /usr/bin/chromium ]; then
    step "installing Debian's Chromium"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium
  fi
  if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    step "installing Debian's PostgreSQL (its programs only: the tests run private servers)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # No default cluster on port 5432, and no service started by the installation.
    $sudo_cmd mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo_cmd tee /etc/postgresql-common/createcluster.conf >/dev/null
    # policy-rc.d keeps the package from starting a service; removed however the install ends.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
      $sudo_cmd chmod 755 /usr/sbin/policy-rc.d
      trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq \
      -o Dpkg::Options::=--force-confold postgresql
    if trap -p EXIT | grep -q policy-rc.d; then
      $sudo_cmd rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    step "installing Debian's Redis (its programs only: the tests run private servers)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    # No service started by the installation (it would listen on 6379).
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
      $sudo_cmd chmod 755 /usr/sbin/policy-rc.d
      trap '$sudo_cmd rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq redis-server
    if trap -p EXIT | grep -q policy-rc.d; then
      $sudo_cmd rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  fi
  if [ ! -d end2end/node_modules/@playwright/test ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
    step "installing the end-to-end test packages"
    # Playwright's own browser download cannot work here; the tests use /usr/bin/chromium.
    (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
fi
