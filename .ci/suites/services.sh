#!/usr/bin/env bash
# Every suite that needs a service, run for real: the stores' conformance suites, the server's
# concurrency, backend, two-node and fault tests on PostgreSQL, MariaDB and Redis (each test in
# databases of its own; the fault tests start, stop and restart private instances and never
# touch the shared ones), the SeaORM store on all three databases, and the OAuth flows against
# a real oidc-provider on loopback, and mail through a real SMTP server on loopback (aiosmtpd), and the import of databases written
# by the real FastAPI Users 15 (pip-installed into a venv by the test).
#
# It is the README's test command again with the services' URLs set, so it reuses the build of
# the first step: selecting packages with -p would resolve features differently and recompile.
set -euo pipefail
. .ci/lib.sh
ensure_postgres
ensure_mariadb
ensure_redis
ensure_node
ensure_aiosmtpd
ensure_python_venv
npm ci --prefix tests/oidc --no-audit --no-fund
export OIDC_HARNESS_REQUIRED=1 SMTP_HARNESS_REQUIRED=1 FASTAPI_USERS_IMPORT_REQUIRED=1
echo "TEST_POSTGRES_URL=$TEST_POSTGRES_URL TEST_MYSQL_URL=$TEST_MYSQL_URL TEST_REDIS_URL=$TEST_REDIS_URL OIDC_HARNESS_REQUIRED=1 SMTP_HARNESS_REQUIRED=1 FASTAPI_USERS_IMPORT_REQUIRED=1"
cargo test --workspace
