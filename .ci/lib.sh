# Shared helpers of .ci/run and .ci/suites/*.sh: start (or install) the services the suites need.
# Each function is idempotent: it does nothing when the service already answers.

step() { printf '\n==> %s\n' "$*"; }

wait_for() { # wait_for NAME COMMAND...: retry for up to 30 s
    local name=$1; shift
    for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
    echo "error: $name did not come up" >&2; return 1
}

apt_install() {
    [ -n "${APT_UPDATED:-}" ] || { apt-get update -qq; APT_UPDATED=1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_openssl_dev() { # OpenSSL's headers and pkg-config: webauthn-rs (passkeys) builds openssl-sys
    command -v pkg-config >/dev/null && pkg-config --exists openssl && return 0
    apt_install libssl-dev pkg-config
}

ensure_node() {
    command -v node >/dev/null && command -v npm >/dev/null || apt_install nodejs npm
    node --version
}

ensure_postgres() { # exports TEST_POSTGRES_URL
    if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
        command -v pg_ctlcluster >/dev/null || apt_install postgresql
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        wait_for postgres pg_isready -h 127.0.0.1 -p 5432
    fi
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'axum_users_test'" | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE axum_users_test" >/dev/null
    export TEST_POSTGRES_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/axum_users_test}
}

ensure_mariadb() { # exports TEST_MYSQL_URL
    if ! mariadb -h 127.0.0.1 -u root -e "SELECT 1" >/dev/null 2>&1; then
        command -v mariadbd >/dev/null || apt_install mariadb-server
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=root || true
        wait_for mariadb mariadb -h 127.0.0.1 -u root -e "SELECT 1"
    fi
    mariadb -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS axum_users_test"
    export TEST_MYSQL_URL=${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/axum_users_test}
}

ensure_redis() { # exports TEST_REDIS_URL
    if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
        command -v redis-server >/dev/null || apt_install redis-server
        mkdir -p /var/lib/redis /var/log/redis
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile /var/log/redis/ci.log
        wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
    fi
    export TEST_REDIS_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379}
}

ensure_aiosmtpd() { # the SMTP server of tests/smtp/ (aiosmtpd from PyPI) and openssl for its test CA
    command -v openssl >/dev/null || apt_install openssl
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
        python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip || true
        python3 -m pip install --quiet aiosmtpd \
            || python3 -m pip install --quiet --break-system-packages aiosmtpd \
            || apt_install python3-aiosmtpd
    fi
    python3 -c "import aiosmtpd; print('aiosmtpd', aiosmtpd.__version__)"
}

ensure_python_venv() { # python3 with venv and pip, for the FastAPI Users import tests (tests/fastapi_users/)
    command -v python3 >/dev/null || apt_install python3
    local probe
    probe=$(mktemp -d)
    if ! python3 -m venv "$probe/v" >/dev/null 2>&1; then
        apt_install python3-venv || apt_install "python3.$(python3 -c 'import sys; print(sys.version_info.minor)')-venv"
    fi
    rm -rf "$probe"
    python3 -m venv --help >/dev/null
}
