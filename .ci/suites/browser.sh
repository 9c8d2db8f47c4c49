#!/usr/bin/env bash
# Swagger UI at /docs and the hosted pages at /ui in headless Chromium (tests/browser): Debian's chromium driven by
# playwright-core from npm, never a downloaded browser. The Node test starts the server binary
# itself, on a free port with SQLite in a temporary directory.
#
# The binary is the one the README's test command built; it is rebuilt only when a source is
# newer (a `cargo build -p` would resolve features differently and recompile the crates).
set -euo pipefail
. .ci/lib.sh
command -v chromium >/dev/null || apt_install chromium
ensure_node
npm ci --prefix tests/browser --no-audit --no-fund
# The pages sign in with the real OpenID provider of tests/oidc.
npm ci --prefix tests/oidc --no-audit --no-fund
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
bin="$(cd "$target_dir" && pwd)/debug/axum-users-server"  # absolute: the test runs it from a temporary folder
if [ ! -x "$bin" ] || [ -n "$(find crates Cargo.toml Cargo.lock -newer "$bin" -print -quit)" ]; then
    cargo build -p axum-users-server
fi
AXUM_USERS_BIN="$bin" BROWSER_TESTS_REQUIRED=1 OIDC_HARNESS_REQUIRED=1 node --test tests/browser/
