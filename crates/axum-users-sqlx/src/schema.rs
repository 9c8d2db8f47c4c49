//! The schema, as numbered migrations applied once each and recorded in `axum_users_migrations`.

use crate::id::{Dialect, SqlId};

/// One migration: a version and its statements.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) statements: Vec<String>,
}

/// The table that records applied migrations.
pub(crate) const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS axum_users_migrations \
     (version BIGINT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)";

/// Every migration of the schema, in order. Each dialect gets the same tables and constraints;
/// only column types differ (see [`SqlId`]). A released migration never changes: a schema
/// change is a new migration that upgrades existing databases in place.
pub(crate) fn migrations<Id: SqlId>(dialect: Dialect) -> Vec<Migration> {
    let pk = Id::primary_key_ddl(dialect);
    let fk = Id::foreign_key_ddl(dialect);
    // MySQL/MariaDB compare text case-insensitively by default: binary collation keeps
    // tokens, hashes and ids exact (the e-mail key is lower-cased by the store).
    let table = match dialect {
        Dialect::MySql => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        Dialect::Sqlite | Dialect::Postgres => "",
    };
    vec![
        Migration {
            version: 1,
            statements: vec![
                format!(
                    "CREATE TABLE users (
                    id {pk},
                    email VARCHAR(320) NOT NULL,
                    email_key VARCHAR(320) NOT NULL,
                    hashed_password VARCHAR(1024) NOT NULL,
                    is_active BOOLEAN NOT NULL,
                    is_superuser BOOLEAN NOT NULL,
                    is_verified BOOLEAN NOT NULL,
                    fields TEXT NOT NULL,
                    CONSTRAINT users_email_key_unique UNIQUE (email_key)
                ){table}"
                ),
                format!(
                    "CREATE TABLE oauth_accounts (
                    id {pk},
                    user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                    oauth_name VARCHAR(100) NOT NULL,
                    access_token TEXT NOT NULL,
                    expires_at BIGINT,
                    refresh_token TEXT,
                    account_id VARCHAR(320) NOT NULL,
                    account_email VARCHAR(320) NOT NULL,
                    CONSTRAINT oauth_accounts_provider_unique UNIQUE (oauth_name, account_id)
                ){table}"
                ),
                "CREATE INDEX oauth_accounts_user_id ON oauth_accounts (user_id)".into(),
                format!(
                    "CREATE TABLE access_tokens (
                    token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                    user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                    created_at BIGINT NOT NULL
                ){table}"
                ),
                "CREATE INDEX access_tokens_user_id ON access_tokens (user_id)".into(),
                "CREATE INDEX access_tokens_created_at ON access_tokens (created_at)".into(),
            ],
        },
        // Verification tokens are bound to the count of e-mail changes; existing users start
        // at 0, which the tokens they hold were not bound to (they carry no epoch).
        Migration {
            version: 2,
            statements: vec![
                "ALTER TABLE users ADD COLUMN email_epoch BIGINT NOT NULL DEFAULT 0".into(),
            ],
        },
        // Sessions: one row per sign-in, owning its access tokens (existing tokens belong to
        // none and keep working until logout or their lifetime) and its refresh-token hashes.
        Migration {
            version: 3,
            statements: vec![
                format!(
                    "CREATE TABLE sessions (
                    id VARCHAR(64) PRIMARY KEY NOT NULL,
                    user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                    created_at BIGINT NOT NULL,
                    last_seen_at BIGINT NOT NULL,
                    expires_at BIGINT NOT NULL,
                    ip VARCHAR(64),
                    user_agent VARCHAR(512),
                    method VARCHAR(128) NOT NULL,
                    backend VARCHAR(64) NOT NULL,
                    refresh_hash VARCHAR(64),
                    previous_refresh_hash VARCHAR(64),
                    rotated_at BIGINT
                ){table}"
                ),
                "CREATE INDEX sessions_user_id ON sessions (user_id)".into(),
                "CREATE INDEX sessions_expires_at ON sessions (expires_at)".into(),
                "CREATE INDEX sessions_refresh_hash ON sessions (refresh_hash)".into(),
                "CREATE INDEX sessions_previous_refresh_hash ON sessions (previous_refresh_hash)"
                    .into(),
                // Every refresh-token hash rotated out of a session, for as long as the session
                // lives: presenting one again is reuse (one row per refresh).
                format!(
                    "CREATE TABLE session_rotated_tokens (
                    token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                    session_id VARCHAR(64) NOT NULL REFERENCES sessions (id) ON DELETE CASCADE
                ){table}"
                ),
                "CREATE INDEX session_rotated_tokens_session_id ON session_rotated_tokens \
                 (session_id)"
                    .into(),
                "ALTER TABLE access_tokens ADD COLUMN session_id VARCHAR(64)".into(),
                "CREATE INDEX access_tokens_session_id ON access_tokens (session_id)".into(),
            ],
        },
        // The mail outbox (migration 4; 3 belongs to the sessions): messages are written here
        // before they are sent and deleted once sent. No foreign key: a message outlives its
        // user (the notice of a deletion), and the table needs nothing of the others.
        Migration {
            version: 4,
            statements: vec![
                format!(
                    "CREATE TABLE mail_outbox (
                    id VARCHAR(36) PRIMARY KEY NOT NULL,
                    recipient VARCHAR(320) NOT NULL,
                    kind VARCHAR(64) NOT NULL,
                    sealed TEXT NOT NULL,
                    status VARCHAR(16) NOT NULL,
                    attempts BIGINT NOT NULL DEFAULT 0,
                    next_attempt_at BIGINT NOT NULL,
                    locked_until BIGINT NOT NULL DEFAULT 0,
                    locked_by VARCHAR(64),
                    last_error TEXT,
                    created_at BIGINT NOT NULL
                ){table}"
                ),
                "CREATE INDEX mail_outbox_due ON mail_outbox (status, next_attempt_at)".into(),
            ],
        },
        // Second factors (migration 5): a user's TOTP factor (its secret sealed by the library),
        // their recovery codes as keyed hashes, and the sign-ins waiting for a second factor
        // (keyed hashes of their mfa tokens). All go with the user.
        Migration {
            version: 5,
            statements: vec![
                format!(
                    "CREATE TABLE mfa_totp (
                    user_id {fk} PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
                    sealed_secret VARCHAR(512) NOT NULL,
                    confirmed BOOLEAN NOT NULL,
                    last_step BIGINT,
                    created_at BIGINT NOT NULL
                ){table}"
                ),
                format!(
                    "CREATE TABLE mfa_recovery_codes (
                    code_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                    user_id {fk} REFERENCES users (id) ON DELETE CASCADE
                ){table}"
                ),
                "CREATE INDEX mfa_recovery_codes_user_id ON mfa_recovery_codes (user_id)".into(),
                format!(
                    "CREATE TABLE mfa_challenges (
                    token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                    user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                    backend VARCHAR(64) NOT NULL,
                    method VARCHAR(128) NOT NULL,
                    expires_at BIGINT NOT NULL,
                    failures BIGINT NOT NULL DEFAULT 0
                ){table}"
                ),
                "CREATE INDEX mfa_challenges_user_id ON mfa_challenges (user_id)".into(),
                "CREATE INDEX mfa_challenges_expires_at ON mfa_challenges (expires_at)".into(),
            ],
        },
        ops_migration(dialect, table),
        webhooks_migration(table),
        passkeys_migration(fk, table),
        rare_filters_migration(dialect),
    ]
}

/// The listing's filters whose matches are rare, as (index name, column, the rare value):
/// superusers, deactivated and unverified users. Filtering the listing's index walk for them
/// reads every user to find a few (1,000,000 rows for an empty page), so each has indexes of
/// its own, in both orders.
pub(crate) const RARE_FILTERS: [(&str, &str, bool); 3] = [
    ("superusers", "is_superuser", true),
    ("inactive", "is_active", false),
    ("unverified", "is_verified", false),
];

/// A boolean as a literal of the dialect: the partial indexes of [`rare_filters_migration`]
/// serve a query only when it names the value in its text, not as a bound parameter.
pub(crate) fn bool_literal(dialect: Dialect, value: bool) -> &'static str {
    match (dialect, value) {
        (Dialect::Postgres, true) => "TRUE",
        (Dialect::Postgres, false) => "FALSE",
        (_, true) => "1",
        (_, false) => "0",
    }
}

/// Migration 10 (the listing's rare filters, see [`RARE_FILTERS`]): on SQLite and PostgreSQL
/// partial indexes over the rare rows only, in creation order and in e-mail order (a few bytes
/// per superuser, not per user); MySQL has no partial index, so there each flag leads an index
/// of each order (which also serves its common value).
fn rare_filters_migration(dialect: Dialect) -> Migration {
    let statements = RARE_FILTERS
        .iter()
        .flat_map(|(name, column, rare)| match dialect {
            Dialect::Sqlite | Dialect::Postgres => {
                let only = format!("WHERE {column} = {}", bool_literal(dialect, *rare));
                [
                    format!(
                        "CREATE INDEX users_{name}_created_at ON users (created_at, id) {only}"
                    ),
                    format!("CREATE INDEX users_{name}_email ON users (email_key) {only}"),
                ]
            }
            Dialect::MySql => [
                format!("CREATE INDEX users_{name}_created_at ON users ({column}, created_at, id)"),
                format!("CREATE INDEX users_{name}_email ON users ({column}, email_key)"),
            ],
        })
        .collect();
    Migration {
        version: 10,
        statements,
    }
}

/// Migration 9 (passkeys): the registered credentials (the key of a credential, the SHA-256 of
/// its id, is unique across users) and the pending ceremonies, keyed by the keyed hash of their
/// handle, so that any node finishes what another began. A ceremony's user is text and has no
/// foreign key (a discoverable sign-in has none until it ends; ceremonies live minutes).
fn passkeys_migration(fk: &str, table: &str) -> Migration {
    Migration {
        version: 9,
        statements: vec![
            format!(
                "CREATE TABLE passkeys (
                id VARCHAR(32) PRIMARY KEY NOT NULL,
                user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                credential_key VARCHAR(64) NOT NULL,
                user_handle VARCHAR(64) NOT NULL,
                name VARCHAR(256) NOT NULL,
                passkey TEXT NOT NULL,
                sign_count BIGINT NOT NULL DEFAULT 0,
                created_at BIGINT NOT NULL,
                last_used_at BIGINT,
                CONSTRAINT passkeys_credential_key_unique UNIQUE (credential_key)
            ){table}"
            ),
            "CREATE INDEX passkeys_user_id ON passkeys (user_id, created_at)".into(),
            format!(
                "CREATE TABLE passkey_challenges (
                handle_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                kind VARCHAR(16) NOT NULL,
                user_id VARCHAR(64),
                backend VARCHAR(64) NOT NULL,
                state TEXT NOT NULL,
                expires_at BIGINT NOT NULL
            ){table}"
            ),
            "CREATE INDEX passkey_challenges_expires_at ON passkey_challenges (expires_at)".into(),
        ],
    }
}

/// Migration 6 (operations): the users' times with the listing's index, and the audit log.
/// Existing users are stamped with the time of the upgrade (their creation time is unknown)
/// and with their newest session as their last sign-in. Self-contained: it touches no table
/// of migration 5.
fn ops_migration(dialect: Dialect, table: &str) -> Migration {
    let now = match dialect {
        Dialect::Sqlite => "CAST(strftime('%s', 'now') AS INTEGER)",
        Dialect::Postgres => "CAST(EXTRACT(EPOCH FROM now()) AS BIGINT)",
        Dialect::MySql => "UNIX_TIMESTAMP()",
    };
    Migration {
        version: 6,
        statements: vec![
            "ALTER TABLE users ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0".into(),
            "ALTER TABLE users ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0".into(),
            "ALTER TABLE users ADD COLUMN last_login_at BIGINT".into(),
            format!("UPDATE users SET created_at = {now}, updated_at = {now}"),
            "UPDATE users SET last_login_at = \
             (SELECT MAX(s.created_at) FROM sessions s WHERE s.user_id = users.id)"
                .into(),
            // The listing in creation order walks this index; the e-mail order walks the
            // unique index of `email_key`.
            "CREATE INDEX users_created_at_id ON users (created_at, id)".into(),
            // No foreign keys: a record outlives its user (the deletion is itself recorded).
            format!(
                "CREATE TABLE audit_events (
                id VARCHAR(32) PRIMARY KEY NOT NULL,
                created_at BIGINT NOT NULL,
                event_type VARCHAR(64) NOT NULL,
                user_id VARCHAR(64),
                actor_id VARCHAR(64),
                ip VARCHAR(64),
                user_agent VARCHAR(256),
                outcome VARCHAR(16) NOT NULL,
                reason VARCHAR(64),
                detail VARCHAR(200)
            ){table}"
            ),
            "CREATE INDEX audit_events_created_at ON audit_events (created_at, id)".into(),
            "CREATE INDEX audit_events_user ON audit_events (user_id, created_at, id)".into(),
            "CREATE INDEX audit_events_type ON audit_events (event_type, created_at, id)".into(),
        ],
    }
}

/// Migration 8 (webhooks; 7 is the second factors'): the webhook deliveries, an outbox like the
/// mail's (the same claim and lease columns). The id is `msg_<event id>_<endpoint>`, so one
/// event is queued at most once per endpoint. No foreign key: a delivery outlives its user and
/// the audit row it was made from (pruned by age).
fn webhooks_migration(table: &str) -> Migration {
    Migration {
        version: 8,
        statements: vec![
            format!(
                "CREATE TABLE webhook_outbox (
                id VARCHAR(96) PRIMARY KEY NOT NULL,
                endpoint VARCHAR(64) NOT NULL,
                event_type VARCHAR(64) NOT NULL,
                payload TEXT NOT NULL,
                status VARCHAR(16) NOT NULL,
                attempts BIGINT NOT NULL DEFAULT 0,
                next_attempt_at BIGINT NOT NULL,
                locked_until BIGINT NOT NULL DEFAULT 0,
                locked_by VARCHAR(64),
                last_error TEXT,
                created_at BIGINT NOT NULL
            ){table}"
            ),
            "CREATE INDEX webhook_outbox_due ON webhook_outbox (status, next_attempt_at)".into(),
        ],
    }
}
