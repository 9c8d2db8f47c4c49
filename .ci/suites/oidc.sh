#!/usr/bin/env bash
# OpenID Connect end-to-end tests against a real oidc-provider on loopback: the provider clients,
# and the sign-in / linking routes of the library.
set -euo pipefail
. .ci/lib.sh
ensure_node
npm ci --prefix tests/oidc --no-audit --no-fund
export OIDC_HARNESS_REQUIRED=1
cargo test -p axum-users-oauth --test it
cargo test -p axum-users --test it
cargo test -p axum-users-server --test it oauth
