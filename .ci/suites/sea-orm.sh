#!/usr/bin/env bash
# The SeaORM store's tests on SQLite, PostgreSQL and MariaDB (each in databases of its own,
# axum_users_seaorm_*, created by the tests beside the sqlx suites' axum_users_test).
set -euo pipefail
. .ci/lib.sh
ensure_postgres
ensure_mariadb
cargo test -p axum-users-sea-orm --test it
