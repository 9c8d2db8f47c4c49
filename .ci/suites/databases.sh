#!/usr/bin/env bash
# The stores, token strategies and server against real PostgreSQL, MariaDB and Redis servers:
# the conformance suite (each test in a throw-away database), the end-to-end concurrency,
# backend and two-node tests, and the fault tests (on private PostgreSQL and Redis instances
# they start, stop and restart themselves; the shared services are never stopped).
set -euo pipefail
. .ci/lib.sh
ensure_postgres
ensure_mariadb
ensure_redis
echo "TEST_POSTGRES_URL=$TEST_POSTGRES_URL TEST_MYSQL_URL=$TEST_MYSQL_URL TEST_REDIS_URL=$TEST_REDIS_URL"
cargo test -p axum-users-sqlx -p axum-users-redis -p axum-users-server
