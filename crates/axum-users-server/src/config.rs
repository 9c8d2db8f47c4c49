//! Configuration, declared once in [`Settings`]: each field is a TOML key, an `AXUM_USERS_*`
//! variable and a flag, and its doc comment is its `--help`. The TOML file gives the defaults,
//! the environment overrides it and flags override both. Every value is checked once at
//! start-up; a bad one stops the server with a message naming its key and its variable.

// The doc comments of `Settings` are `--help` text (`<dir>`, `[default: ...]`), not rustdoc.
#![allow(rustdoc::invalid_html_tags, rustdoc::broken_intra_doc_links)]

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum_users::{Argon2Params, Secret};
use clap::{ArgMatches, Args, FromArgMatches};
use serde::{Deserialize, Deserializer};

use crate::oauth::ProviderConfig;

/// Every setting of the server. Field name: TOML key; `env`: variable; `long`: flag.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[command(next_help_heading = "Settings (flag, AXUM_USERS_* variable or key of the TOML file)")]
pub(crate) struct Settings {
    /// Address to listen on; port 0 picks a free port (the log says which) [default: 127.0.0.1:8000]
    #[arg(long, global = true, env = "AXUM_USERS_BIND", value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Address of a second listener that serves only GET /metrics (Prometheus text), without a
    /// token: keep it on a private interface [default: off]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_METRICS_BIND",
        value_name = "ADDR"
    )]
    metrics_bind: Option<SocketAddr>,
    /// Bearer token (at least 32 bytes) that opens GET /metrics on the main address [default: off]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    metrics_token: Option<SecretValue>,
    /// Database: sqlite://path, sqlite::memory:, postgres://… or mysql://… [default: sqlite://axum-users.db]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<ServiceUrl>,
    /// Connections in the database pool of this node [default: 10]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_DATABASE_MAX_CONNECTIONS",
        value_name = "N"
    )]
    database_max_connections: Option<u32>,
    /// Longest wait for the database, then 503 (fractions allowed) [default: 5]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_DATABASE_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    database_timeout_seconds: Option<f64>,
    /// true: database tokens at /auth/db [default: false]
    #[arg(long, global = true, env = "AXUM_USERS_DB_TOKENS", value_name = "BOOL")]
    db_tokens: Option<bool>,
    /// Lifetime of database tokens, 0 = until logout [default: 3600]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_DB_TOKEN_LIFETIME_SECONDS",
        value_name = "S"
    )]
    db_token_lifetime_seconds: Option<u64>,
    /// redis:// URL: Redis tokens at /auth/redis [default: off]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REDIS_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    redis_url: Option<ServiceUrl>,
    /// Lifetime (TTL) of Redis tokens, 0 = until logout [default: 3600]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REDIS_TOKEN_LIFETIME_SECONDS",
        value_name = "S"
    )]
    redis_token_lifetime_seconds: Option<u64>,
    /// Prefix of the Redis keys [default: axum_users_token:]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REDIS_KEY_PREFIX",
        value_name = "PREFIX"
    )]
    redis_key_prefix: Option<String>,
    /// Longest wait for Redis, then 503 [default: 2]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REDIS_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    redis_timeout_seconds: Option<f64>,
    /// Signing secret, at least 32 bytes (default with a SQLite file: generated and kept beside
    /// it; required otherwise, the same on every node)
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    secret: Option<SecretValue>,
    /// Earlier secrets, comma-separated: tokens they signed are still accepted (rotation)
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PREVIOUS_SECRETS",
        value_name = "SECRETS",
        hide_env_values = true
    )]
    previous_secrets: Option<List<SecretValue>>,
    /// log (links with the token redacted) | log+tokens (development only) | file:<dir> |
    /// smtp://[user:pass@]host:port | smtp+starttls://… | smtps://… [default: log]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_MAILER",
        value_name = "MAILER",
        hide_env_values = true
    )]
    mailer: Option<MailerConfig>,
    /// Sender address of mail [default: axum-users <no-reply@localhost>]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_MAIL_FROM",
        value_name = "ADDRESS"
    )]
    mail_from: Option<String>,
    /// Base URL of the links in mail (reset, verify, e-mail change) [default: the hosted pages, <public_url><ui_prefix>, when they are on; else http://<bind>]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_FRONTEND_URL",
        value_name = "URL"
    )]
    frontend_url: Option<String>,
    /// Public base URL of the API (OAuth callbacks; required with an OAuth provider)
    #[arg(long, global = true, env = "AXUM_USERS_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Secure attribute of the auth cookie [default: true]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_COOKIE_SECURE",
        value_name = "BOOL"
    )]
    cookie_secure: Option<bool>,
    /// Lifetime of auth tokens [default: 3600]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_JWT_LIFETIME_SECONDS",
        value_name = "S"
    )]
    jwt_lifetime_seconds: Option<u64>,
    /// Shortest password accepted [default: 8]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PASSWORD_MIN_LENGTH",
        value_name = "N"
    )]
    pub(crate) password_min_length: Option<usize>,
    /// true: FastAPI Users' client-visible behaviour where axum-users is stricter [default: false]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_STRICT_COMPAT",
        value_name = "BOOL"
    )]
    strict_compat: Option<bool>,
    /// true: POST /auth/register also mails the verification token [default: false]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_SEND_VERIFICATION_ON_REGISTER",
        value_name = "BOOL"
    )]
    send_verification_on_register: Option<bool>,
    /// confirm: a change of one's own e-mail waits for a link mailed to the new address;
    /// immediate: FastAPI Users' [default: confirm; immediate with strict_compat]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_EMAIL_CHANGE",
        value_name = "MODE"
    )]
    email_change: Option<axum_users::EmailChange>,
    /// false: JWTs are stateless (logout and revocation cannot reach them) [default: true]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_JWT_REVOCABLE",
        value_name = "BOOL"
    )]
    jwt_revocable: Option<bool>,
    /// Until this RFC 3339 time (at most 90 days ahead), accept the JWTs a FastAPI Users app
    /// issued with the same secret (no `sid`): they cannot be revoked one by one; see
    /// docs/migrating-from-fastapi-users.md [default: refused]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_ACCEPT_FASTAPI_USERS_JWT_UNTIL",
        value_name = "TIME"
    )]
    accept_fastapi_users_jwt_until: Option<String>,
    /// false: sign-ins issue no refresh token [default: true]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REFRESH_TOKENS",
        value_name = "BOOL"
    )]
    refresh_tokens: Option<bool>,
    /// Lifetime of a session and its refresh tokens, absolute [default: 2592000]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REFRESH_LIFETIME_SECONDS",
        value_name = "S"
    )]
    refresh_lifetime_seconds: Option<u64>,
    /// How long a rotated-out refresh token still succeeds (two tabs), at most 60 [default: 10]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_REFRESH_REUSE_GRACE_SECONDS",
        value_name = "S"
    )]
    refresh_reuse_grace_seconds: Option<u64>,
    /// Interval of the removal of expired sessions and tokens; 0: never [default: 3600]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PRUNE_INTERVAL_SECONDS",
        value_name = "S"
    )]
    prune_interval_seconds: Option<u64>,
    /// Days the audit log keeps an event (pruned with the expired sessions); 0: forever
    /// [default: 90]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_AUDIT_RETENTION_DAYS",
        value_name = "DAYS"
    )]
    audit_retention_days: Option<u64>,
    /// Origins, comma-separated, besides the public URL's own, that may send cookie-authenticated
    /// state-changing requests
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_TRUSTED_ORIGINS",
        value_name = "ORIGINS"
    )]
    trusted_origins: Option<List<String>>,
    /// Origins, comma-separated, besides the public URL's own, whose passkey ceremonies are
    /// accepted (passkeys are on when the public URL's host is a domain name)
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PASSKEY_ORIGINS",
        value_name = "ORIGINS"
    )]
    passkey_origins: Option<List<String>>,
    /// true: the hosted sign-in pages under ui_prefix (sign in, sign up, reset, verify, account) [default: true]
    #[arg(long, global = true, env = "AXUM_USERS_UI", value_name = "BOOL")]
    ui: Option<bool>,
    /// Path prefix of the hosted pages [default: /ui]
    #[arg(long, global = true, env = "AXUM_USERS_UI_PREFIX", value_name = "PATH")]
    ui_prefix: Option<String>,
    /// Origins, comma-separated, a return_to of the pages may send the browser to after a sign-in
    /// (the pages' own paths are always allowed)
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_UI_RETURN_TO",
        value_name = "ORIGINS"
    )]
    ui_return_to: Option<List<String>>,
    /// Longest password accepted, in code points after NFKC (at least 64) [default: 1024]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PASSWORD_MAX_LENGTH",
        value_name = "N"
    )]
    pub(crate) password_max_length: Option<usize>,
    /// false: accept the passwords of the embedded common-password list [default: true]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PASSWORD_BLOCKLIST",
        value_name = "BOOL"
    )]
    pub(crate) password_blocklist: Option<bool>,
    /// false: accept passwords containing the user's e-mail address or a part of it [default: true]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_PASSWORD_EMAIL_CHECK",
        value_name = "BOOL"
    )]
    pub(crate) password_email_check: Option<bool>,
    /// Name of the service, which no password may contain [default: none]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_SERVICE_NAME",
        value_name = "NAME"
    )]
    pub(crate) service_name: Option<String>,
    /// URL of a k-anonymity range API of breached passwords (Pwned Passwords style) [default: off]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_BREACHED_PASSWORDS_URL",
        value_name = "URL"
    )]
    pub(crate) breached_passwords_url: Option<String>,
    /// Breaches a password must appear in to be refused [default: 1]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_BREACHED_PASSWORDS_THRESHOLD",
        value_name = "N"
    )]
    pub(crate) breached_passwords_threshold: Option<u64>,
    /// Longest wait for the breached-password API, then the password is accepted [default: 2]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_BREACHED_PASSWORDS_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    pub(crate) breached_passwords_timeout_seconds: Option<f64>,
    /// Failed sign-ins of one account, from any IP, before it is throttled; 0 = off [default: 10]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_LOGIN_MAX_FAILURES",
        value_name = "N"
    )]
    pub(crate) login_max_failures: Option<u32>,
    /// Window of those failures; throttled sign-ins get 429 until it has passed [default: 900]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_LOGIN_FAILURE_WINDOW_SECONDS",
        value_name = "S"
    )]
    pub(crate) login_failure_window_seconds: Option<u64>,
    /// At most one reset or verify mail per address per this long; 0 = off [default: 60]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_MAIL_COOLDOWN_SECONDS",
        value_name = "S"
    )]
    pub(crate) mail_cooldown_seconds: Option<u64>,
    /// Forgot-password and request-verify-token answer this long after they start, once the mail is written, for every address alike; 1 to 10000 [default: 500]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_MAIL_ANSWER_FLOOR_MS",
        value_name = "MS"
    )]
    pub(crate) mail_answer_floor_ms: Option<u64>,
    /// Proxies (CIDRs, comma-separated) whose forwarded header names the client [default: none]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_TRUSTED_PROXIES",
        value_name = "CIDRS"
    )]
    pub(crate) trusted_proxies: Option<List<crate::abuse::NetValue>>,
    /// The one header the trusted proxies write: x-forwarded-for or forwarded (the other is ignored) [default: x-forwarded-for]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_FORWARDED_HEADER",
        value_name = "HEADER"
    )]
    pub(crate) forwarded_header: Option<String>,
    #[command(flatten)]
    pub(crate) rate_limits: crate::abuse::RateLimitSettings,
    #[command(flatten)]
    argon2: Argon2Settings,
    #[command(flatten)]
    server: ServerSettings,
    #[command(flatten)]
    mail: crate::mail_config::MailKeys,
    #[command(flatten)]
    webhook: crate::webhooks::WebhookKeys,
    /// Webhook endpoints (`[[webhooks]]`, TOML only: a table per endpoint).
    #[arg(skip)]
    webhooks: Vec<crate::webhooks::EndpointTable>,
    /// OAuth providers by name (`[oauth.<name>]`, TOML only: a table per provider).
    #[arg(skip)]
    oauth: BTreeMap<String, ProviderConfig>,
}

/// The `[argon2]` table.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Argon2Settings {
    /// Argon2id memory per hash, KiB [default: 19456]
    #[arg(
        id = "argon2.memory_kib",
        long = "argon2-memory-kib",
        global = true,
        env = "AXUM_USERS_ARGON2_MEMORY_KIB",
        value_name = "KIB"
    )]
    memory_kib: Option<u32>,
    /// Argon2id passes [default: 2]
    #[arg(
        id = "argon2.iterations",
        long = "argon2-iterations",
        global = true,
        env = "AXUM_USERS_ARGON2_ITERATIONS",
        value_name = "N"
    )]
    iterations: Option<u32>,
    /// Argon2id lanes [default: 1]
    #[arg(
        id = "argon2.parallelism",
        long = "argon2-parallelism",
        global = true,
        env = "AXUM_USERS_ARGON2_PARALLELISM",
        value_name = "N"
    )]
    parallelism: Option<u32>,
}

/// The `[server]` table: limits of the HTTP server.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ServerSettings {
    /// Longest wait for a request's headers (also the idle time of a kept-alive connection),
    /// then the connection is closed [default: 10]
    #[arg(
        id = "server.header_timeout_seconds",
        long = "server-header-timeout-seconds",
        global = true,
        env = "AXUM_USERS_SERVER_HEADER_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    header_timeout_seconds: Option<f64>,
    /// Longest wait for the next part of a request body, then 408 and the connection is closed [default: 30]
    #[arg(
        id = "server.body_timeout_seconds",
        long = "server-body-timeout-seconds",
        global = true,
        env = "AXUM_USERS_SERVER_BODY_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    body_timeout_seconds: Option<f64>,
    /// Longest time from a request's headers to its response, then 408 [default: 60]
    #[arg(
        id = "server.request_timeout_seconds",
        long = "server-request-timeout-seconds",
        global = true,
        env = "AXUM_USERS_SERVER_REQUEST_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    request_timeout_seconds: Option<f64>,
    /// Most connections served at once; more wait in the listen backlog [default: 1024]
    #[arg(
        id = "server.max_connections",
        long = "server-max-connections",
        global = true,
        env = "AXUM_USERS_SERVER_MAX_CONNECTIONS",
        value_name = "N"
    )]
    max_connections: Option<usize>,
}

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MailerConfig {
    /// Each message is logged with its token replaced by `[redacted]`; with `tokens`, in full.
    Log {
        /// The tokens are logged (local development only).
        tokens: bool,
    },
    /// One `.eml` file per message in this folder.
    File(PathBuf),
    /// An SMTP relay (password redacted in `Debug`).
    Smtp(axum_users_mail::SmtpUrl),
}

impl FromStr for MailerConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "log" => return Ok(Self::Log { tokens: false }),
            "log+tokens" => return Ok(Self::Log { tokens: true }),
            _ => {}
        }
        if text.starts_with("smtp") {
            return text.parse().map(Self::Smtp).map_err(|e| e.to_string());
        }
        match text.strip_prefix("file:").filter(|d| !d.is_empty()) {
            Some(dir) => Ok(Self::File(PathBuf::from(dir))),
            None => Err("use `log`, `log+tokens`, `file:<dir>` or an smtp:// URL".into()),
        }
    }
}

/// A secret setting: redacted in `Debug`, parsed from text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretValue(Secret);

impl FromStr for SecretValue {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(Secret::new(text)))
    }
}

/// A comma-separated list (an array in the TOML file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct List<T>(Vec<T>);

impl<T> List<T> {
    /// The items.
    pub(crate) fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<T: FromStr> FromStr for List<T> {
    type Err = T::Err;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(T::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

impl<'de, T: FromStr> Deserialize<'de> for List<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Items {
            One(String),
            Many(Vec<String>),
        }
        let text = match Items::deserialize(deserializer)? {
            Items::One(text) => text,
            Items::Many(items) => items.join(","),
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `Deserialize` through `FromStr`, for the settings written as text.
macro_rules! deserialize_from_str {
    ($($ty:ty),*) => {$(
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}
deserialize_from_str!(MailerConfig, SecretValue, ServiceUrl);

/// A service URL that may carry a password: `Debug` and `Display` show it with the password
/// replaced, [`ServiceUrl::expose`] gives the real one.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ServiceUrl(String);

impl ServiceUrl {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for connecting.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for ServiceUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(text.trim()))
    }
}
impl fmt::Display for ServiceUrl {
    /// `scheme://user:[redacted]@host/...`: the password never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let Some(start) = url.find("://").map(|i| i + 3) else {
            return f.write_str(url);
        };
        let authority_end = url[start..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| start + i);
        match url[start..authority_end].rfind('@') {
            Some(at) => {
                let userinfo = &url[start..start + at];
                let user = userinfo.split(':').next().unwrap_or_default();
                let hidden = if userinfo.contains(':') {
                    ":[redacted]"
                } else {
                    ""
                };
                write!(f, "{}{user}{hidden}{}", &url[..start], &url[start + at..])
            }
            None => f.write_str(url),
        }
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The Redis strategy's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisConfig {
    /// `redis://...`.
    pub(crate) url: ServiceUrl,
    /// Lifetime of Redis tokens (TTL); `None`: until logout.
    pub(crate) token_lifetime: Option<Duration>,
    /// Prefix of the keys.
    pub(crate) key_prefix: String,
    /// Longest wait for Redis per call.
    pub(crate) timeout: Duration,
}

/// Time and connection limits of the HTTP server (the `[server]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerLimits {
    /// Longest wait for a request's headers, and the idle time of a kept-alive connection.
    pub(crate) header_timeout: Duration,
    /// Longest wait for the next part of a request body.
    pub(crate) body_timeout: Duration,
    /// Longest time from a request's headers to its response.
    pub(crate) request_timeout: Duration,
    /// Most connections served at once.
    pub(crate) max_connections: usize,
}

/// The server's configuration, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Address to listen on.
    pub(crate) bind: SocketAddr,
    /// Prometheus metrics, when enabled.
    pub(crate) metrics: MetricsConfig,
    /// Database URL (`sqlite:`, `postgres:`, `mysql:`).
    pub(crate) database_url: ServiceUrl,
    /// Most connections to the database.
    pub(crate) database_max_connections: u32,
    /// Longest wait for the database per call.
    pub(crate) database_timeout: Duration,
    /// Lifetime of database tokens (the `/auth/db` backend), when it is enabled; `None` inside
    /// `Some`: until logout.
    pub(crate) db_tokens: Option<Option<Duration>>,
    /// The `/auth/redis` backend, when configured.
    pub(crate) redis: Option<RedisConfig>,
    /// Signing secret; `None` means: generate one and keep it beside the SQLite database.
    pub(crate) secret: Option<Secret>,
    /// Earlier secrets whose tokens are still accepted.
    pub(crate) previous_secrets: Vec<Secret>,
    /// Where mail goes.
    pub(crate) mailer: MailerConfig,
    /// Sender of mail.
    pub(crate) mail_from: String,
    /// The front end the reset and verify links point at.
    pub(crate) frontend_url: String,
    /// `Secure` attribute of the auth cookie.
    pub(crate) cookie_secure: bool,
    /// Lifetime of auth JWTs, seconds.
    pub(crate) jwt_lifetime_seconds: u64,
    /// Argon2id parameters.
    pub(crate) argon2: Argon2Params,
    /// FastAPI Users' client-visible behaviour where the library is stricter.
    pub(crate) strict_compat: bool,
    /// `POST /auth/register` also mails the verification token.
    pub(crate) send_verification_on_register: bool,
    /// Confirm (through a link to the new address) or immediate.
    pub(crate) email_change: axum_users::EmailChange,
    /// Revocable JWTs, refresh tokens and their lifetimes.
    pub(crate) sessions: axum_users::SessionSettings,
    /// How often expired sessions and tokens are removed (`None`: never).
    pub(crate) prune_interval: Option<Duration>,
    /// How long the audit log keeps an event (`None`: forever).
    pub(crate) audit_retention: Option<Duration>,
    /// Origins besides the public URL's own trusted with cookie-authenticated changes.
    pub(crate) trusted_origins: Vec<String>,
    /// The passkeys' relying party: the public URL's host and origin, with these extra
    /// origins (`None`: no public URL with a domain name, passkeys off).
    pub(crate) passkeys: Option<axum_users::PasskeySettings>,
    /// The hosted pages: their prefix (`/ui`), when they are on.
    pub(crate) ui_prefix: Option<String>,
    /// Origins a `return_to` of the pages may name.
    pub(crate) ui_return_to: Vec<String>,
    /// The public base URL of the API (OAuth callback URLs are made from it).
    pub(crate) public_url: Option<String>,
    /// Time and connection limits of the HTTP server.
    pub(crate) limits: ServerLimits,
    /// OAuth providers by name (`[oauth.<name>]`).
    pub(crate) oauth: BTreeMap<String, ProviderConfig>,
    /// Rate limits, login throttle, mail cooldown, password policy, breached passwords.
    pub(crate) abuse: crate::abuse::AbuseConfig,
    /// SMTP details, templates and links of mail (`[mail]`).
    pub(crate) mail: crate::mail_config::MailSettings,
    /// Webhook endpoints and their delivery (`[webhook]`, `[[webhooks]]`).
    pub(crate) webhooks: crate::webhooks::WebhookSettings,
}

/// Where `GET /metrics` is served (off when both are unset).
#[derive(Debug, Clone, Default)]
pub(crate) struct MetricsConfig {
    /// A listener of its own, without a token.
    pub(crate) bind: Option<SocketAddr>,
    /// The bearer token that opens `/metrics` on the main address.
    pub(crate) token: Option<Secret>,
}

impl MetricsConfig {
    /// Whether metrics are collected at all.
    pub(crate) fn enabled(&self) -> bool {
        self.bind.is_some() || self.token.is_some()
    }
}

/// The settings as a clap command: flags, variables and help.
pub(crate) fn settings_command() -> clap::Command {
    Settings::augment_args(clap::Command::new("axum-users-server"))
}

/// `key (AXUM_USERS_KEY)`: how messages name a setting.
pub(crate) fn key(id: &str) -> String {
    let command = settings_command();
    let env = command
        .get_arguments()
        .find(|arg| arg.get_id() == id)
        .and_then(|arg| arg.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{id} ({env})"),
        None => id.to_owned(),
    }
}

/// Rewrites clap's complaint about a setting's value into one naming its key and variable
/// (clap names only the flag, though the value usually comes from the environment).
pub(crate) fn explain_clap_error(error: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        error.kind(),
        ErrorKind::ValueValidation | ErrorKind::InvalidValue
    ) {
        return None;
    }
    let Some(ContextValue::String(flag)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let flag = flag.split_whitespace().next().unwrap_or_default();
    let command = settings_command();
    let arg = command.get_arguments().find(|arg| {
        arg.get_long()
            .is_some_and(|long| flag == format!("--{long}"))
    })?;
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if !arg.is_hide_env_values_set() => {
            format!(" `{value}`")
        }
        _ => String::new(),
    };
    let reason = std::error::Error::source(error)
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    Some(format!(
        "invalid value for {}:{value}{reason}",
        key(arg.get_id().as_str())
    ))
}

impl Config {
    /// Loads the configuration: the TOML `file` (or `axum-users.toml` when present), overridden
    /// by the settings in `overlay` (the environment and flags, as clap matched them). `env`
    /// gives the OAuth client secrets, whose variable names depend on the provider names.
    ///
    /// # Errors
    /// A message naming the key whose value is wrong.
    pub(crate) fn load(
        file: Option<&Path>,
        overlay: &ArgMatches,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut settings = match file {
            Some(path) => read_file(path)?,
            None if Path::new("axum-users.toml").exists() => {
                read_file(Path::new("axum-users.toml"))?
            }
            None => Settings::default(),
        };
        settings
            .update_from_arg_matches(overlay)
            .context("cannot read the settings of the environment and flags")?;
        Self::from_settings(settings, env)
    }

    /// Checks every setting and fills in the defaults.
    fn from_settings(s: Settings, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let abuse = crate::abuse::AbuseConfig::from_settings(&s)?;
        let bind = s
            .bind
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8000)));
        let database_url = s
            .database_url
            .unwrap_or_else(|| ServiceUrl::new("sqlite://axum-users.db"));
        if axum_users_sqlx::Dialect::of_url(database_url.expose()).is_none() {
            bail!(
                "invalid value for {}: `{database_url}`; use a sqlite:, postgres: or mysql: URL",
                key("database_url")
            );
        }
        let secret = s.secret.map(|s| s.0);
        let previous_secrets: Vec<Secret> = s
            .previous_secrets
            .map(|l| l.0.into_iter().map(|s| s.0).collect())
            .unwrap_or_default();
        for (id, value) in secret
            .iter()
            .map(|s| ("secret", s))
            .chain(previous_secrets.iter().map(|s| ("previous_secrets", s)))
        {
            if value.expose().len() < 32 {
                bail!(
                    "invalid value for {}: a secret must be at least 32 bytes long",
                    key(id)
                );
            }
        }
        let frontend_set = s.frontend_url.is_some();
        let frontend_url = s
            .frontend_url
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        check_http(&frontend_url, "frontend_url")?;
        let public_url = s.public_url.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url {
            check_http(url, "public_url")?;
        }
        let trusted_origins: Vec<String> = s
            .trusted_origins
            .map(|l| l.0)
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        for origin in &trusted_origins {
            check_origin(origin, "trusted_origins")?;
        }
        let passkey_origins = s.passkey_origins.map(|l| l.0).unwrap_or_default();
        for origin in &passkey_origins {
            check_origin(origin, "passkey_origins")?;
        }
        let passkeys = passkey_settings(public_url.as_deref(), &passkey_origins)?;
        let redis = match s.redis_url {
            Some(url) if !url.expose().is_empty() => {
                if !["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|scheme| url.expose().starts_with(scheme))
                {
                    bail!(
                        "invalid value for {}: `{url}`; use a redis:// URL",
                        key("redis_url")
                    );
                }
                Some(RedisConfig {
                    url,
                    token_lifetime: lifetime(s.redis_token_lifetime_seconds),
                    key_prefix: s
                        .redis_key_prefix
                        .unwrap_or_else(|| "axum_users_token:".into()),
                    timeout: seconds(s.redis_timeout_seconds, 2.0, "redis_timeout_seconds")?,
                })
            }
            _ => None,
        };
        let database_max_connections = s.database_max_connections.unwrap_or(10);
        at_least_one(database_max_connections as u64, "database_max_connections")?;
        let jwt_lifetime_seconds = s.jwt_lifetime_seconds.unwrap_or(3600);
        at_least_one(jwt_lifetime_seconds, "jwt_lifetime_seconds")?;
        let refresh_lifetime = s.refresh_lifetime_seconds.unwrap_or(30 * 24 * 3600);
        at_least_one(refresh_lifetime, "refresh_lifetime_seconds")?;
        let reuse_grace = s.refresh_reuse_grace_seconds.unwrap_or(10);
        if reuse_grace > axum_users::MAX_REUSE_GRACE.as_secs() {
            bail!(
                "invalid value for {}: `{reuse_grace}` must be at most {} seconds (a longer \
                 window lets a copied refresh token be used unnoticed)",
                key("refresh_reuse_grace_seconds"),
                axum_users::MAX_REUSE_GRACE.as_secs()
            );
        }
        let sessions = axum_users::SessionSettings::default()
            .with_jwt_revocable(s.jwt_revocable.unwrap_or(true))
            .with_refresh_tokens(s.refresh_tokens.unwrap_or(true))
            .with_fastapi_users_jwt_until(
                s.accept_fastapi_users_jwt_until
                    .as_deref()
                    .map(|t| {
                        crate::import::jwt_window_end(t, axum_users::now_unix()).map_err(|e| {
                            anyhow::anyhow!(
                                "invalid value for {}: {e}",
                                key("accept_fastapi_users_jwt_until")
                            )
                        })
                    })
                    .transpose()?,
            )
            .with_refresh_lifetime(Duration::from_secs(refresh_lifetime))
            .with_reuse_grace(Duration::from_secs(reuse_grace));
        let defaults = Argon2Params::default();
        let argon2 = Argon2Params {
            memory_kib: s.argon2.memory_kib.unwrap_or(defaults.memory_kib),
            iterations: s.argon2.iterations.unwrap_or(defaults.iterations),
            parallelism: s.argon2.parallelism.unwrap_or(defaults.parallelism),
        };
        argon2
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid value for argon2 (AXUM_USERS_ARGON2_*): {e}"))?;
        let limits = ServerLimits {
            header_timeout: seconds(
                s.server.header_timeout_seconds,
                10.0,
                "server.header_timeout_seconds",
            )?,
            body_timeout: seconds(
                s.server.body_timeout_seconds,
                30.0,
                "server.body_timeout_seconds",
            )?,
            request_timeout: seconds(
                s.server.request_timeout_seconds,
                60.0,
                "server.request_timeout_seconds",
            )?,
            max_connections: s.server.max_connections.unwrap_or(1024),
        };
        at_least_one(limits.max_connections as u64, "server.max_connections")?;
        crate::oauth::validate(&s.oauth, env)?;
        let smtp = match &s.mailer {
            Some(MailerConfig::Smtp(url)) => Some(url),
            _ => None,
        };
        let ui_prefix = match s.ui.unwrap_or(true) {
            true => Some(check_ui_prefix(s.ui_prefix.as_deref().unwrap_or("/ui"))?),
            false => None,
        };
        let ui_return_to: Vec<String> = s
            .ui_return_to
            .map(|l| l.0)
            .unwrap_or_default()
            .into_iter()
            .map(|o| o.trim_end_matches('/').to_owned())
            .collect();
        for origin in &ui_return_to {
            check_origin(origin, "ui_return_to")?;
        }
        // The mailed links: the front end's when one is configured, else the hosted pages'
        // (under the public URL) when they are on, else the server's own address.
        let links = match (frontend_set, &ui_prefix) {
            (false, Some(prefix)) => format!(
                "{}{prefix}",
                public_url
                    .clone()
                    .unwrap_or_else(|| format!("http://{bind}"))
            ),
            _ => frontend_url.clone(),
        };
        let mail = crate::mail_config::MailSettings::resolve(
            s.mail.clone(),
            smtp,
            s.mail_from.is_some(),
            &links,
        )?;
        if !s.oauth.is_empty() && public_url.is_none() {
            bail!(
                "missing {}: an OAuth provider is configured, and its callback URL must not \
                 follow the request's Host header; set the API's public base URL",
                key("public_url")
            );
        }
        let metrics = MetricsConfig {
            bind: s.metrics_bind,
            token: s.metrics_token.map(|t| t.0),
        };
        if let Some(token) = &metrics.token
            && token.expose().len() < 32
        {
            bail!(
                "invalid value for {}: the token must be at least 32 bytes",
                key("metrics_token")
            );
        }
        if metrics.bind.is_some_and(|m| m == bind && bind.port() != 0) {
            bail!(
                "invalid value for {}: it must differ from {}",
                key("metrics_bind"),
                key("bind")
            );
        }
        Ok(Config {
            abuse,
            bind,
            metrics,
            database_url,
            database_max_connections,
            database_timeout: seconds(s.database_timeout_seconds, 5.0, "database_timeout_seconds")?,
            db_tokens: s
                .db_tokens
                .unwrap_or(false)
                .then_some(lifetime(s.db_token_lifetime_seconds)),
            redis,
            secret,
            previous_secrets,
            mailer: s.mailer.unwrap_or(MailerConfig::Log { tokens: false }),
            mail_from: s
                .mail_from
                .unwrap_or_else(|| "axum-users <no-reply@localhost>".into()),
            frontend_url,
            cookie_secure: s.cookie_secure.unwrap_or(true),
            jwt_lifetime_seconds,
            argon2,
            strict_compat: s.strict_compat.unwrap_or(false),
            send_verification_on_register: s.send_verification_on_register.unwrap_or(false),
            email_change: s.email_change.unwrap_or(if s.strict_compat == Some(true) {
                axum_users::EmailChange::Immediate
            } else {
                axum_users::EmailChange::Confirm
            }),
            sessions,
            prune_interval: Some(Duration::from_secs(
                s.prune_interval_seconds.unwrap_or(3600),
            ))
            .filter(|d| !d.is_zero()),
            audit_retention: Some(Duration::from_secs(
                s.audit_retention_days.unwrap_or(90).saturating_mul(86_400),
            ))
            .filter(|d| !d.is_zero()),
            trusted_origins,
            passkeys,
            ui_prefix,
            ui_return_to,
            public_url,
            limits,
            oauth: s.oauth,
            mail,
            webhooks: crate::webhooks::WebhookSettings::resolve(s.webhook, s.webhooks)?,
        })
    }

    /// The file holding the generated secret: beside the SQLite database, `<name>.secret`.
    pub(crate) fn secret_file(&self) -> Option<PathBuf> {
        let path = sqlite_path(self.database_url.expose())?;
        Some(path.with_extension("secret"))
    }
}

/// The file of a `sqlite:` URL, or `None` for an in-memory database.
pub(crate) fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

/// A token lifetime in seconds: 3600 when unset, 0 for "until logout".
fn lifetime(seconds: Option<u64>) -> Option<Duration> {
    Some(Duration::from_secs(seconds.unwrap_or(3600))).filter(|d| !d.is_zero())
}

/// A timeout in (fractional) seconds, between 1 ms and one hour.
fn seconds(value: Option<f64>, default: f64, id: &str) -> Result<Duration> {
    let value = value.unwrap_or(default);
    if !(0.001..=3600.0).contains(&value) {
        bail!(
            "invalid value for {}: `{value}` must be between 0.001 and 3600 seconds",
            key(id)
        );
    }
    Ok(Duration::from_secs_f64(value))
}

fn at_least_one(value: u64, id: &str) -> Result<()> {
    if value == 0 {
        bail!("invalid value for {}: must be at least 1", key(id));
    }
    Ok(())
}

fn check_http(url: &str, id: &str) -> Result<()> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!(
            "invalid value for {}: `{url}` must start with http:// or https://",
            key(id)
        );
    }
    Ok(())
}

/// An origin is `scheme://host[:port]`, nothing after it: a browser's `Origin` header.
/// Passkeys' relying party from the public URL: none without one, or when its host is an IP
/// address (an RP id must be a domain; said once in the log), and extra origins only with one.
fn passkey_settings(
    public_url: Option<&str>,
    extra: &[String],
) -> Result<Option<axum_users::PasskeySettings>> {
    let settings = match public_url.map(axum_users::PasskeySettings::for_public_url) {
        Some(Ok(settings)) => settings,
        Some(Err(error)) => {
            tracing::warn!(%error, "passkeys are off");
            if !extra.is_empty() {
                bail!("invalid value for {}: {error}", key("passkey_origins"));
            }
            return Ok(None);
        }
        None if extra.is_empty() => return Ok(None),
        None => bail!(
            "{} needs {} (the relying party is its host)",
            key("passkey_origins"),
            key("public_url")
        ),
    };
    extra
        .iter()
        .try_fold(settings, |settings, origin| {
            settings
                .with_extra_origin(origin)
                .map_err(|e| anyhow::anyhow!("invalid value for {}: {e}", key("passkey_origins")))
        })
        .map(Some)
}

fn check_origin(origin: &str, id: &str) -> Result<()> {
    let parsed = url::Url::parse(origin).ok();
    let same = parsed.as_ref().is_some_and(|url| {
        matches!(url.scheme(), "http" | "https")
            && url.origin().ascii_serialization() == origin.trim_end_matches('/')
    });
    if !same {
        bail!(
            "invalid value for {}: `{origin}` is not an origin like https://app.example.com",
            key(id)
        );
    }
    Ok(())
}

/// The pages' prefix: `/` and path characters, no trailing `/`.
fn check_ui_prefix(prefix: &str) -> Result<String> {
    let trimmed = prefix.trim_end_matches('/');
    let valid = trimmed.starts_with('/')
        && !trimmed.contains("//")
        && trimmed
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
    let taken = [
        "/auth",
        "/users",
        "/docs",
        "/openapi.json",
        "/health",
        "/ready",
    ]
    .iter()
    .any(|p| trimmed == *p || trimmed.starts_with(&format!("{p}/")));
    if !valid || taken {
        bail!(
            "invalid value for {}: `{prefix}`; use a path like /ui that the API does not use",
            key("ui_prefix")
        );
    }
    Ok(trimmed.to_owned())
}

/// Reads the TOML file; an error names the key (`argon2.memory_kib: invalid type ...`).
fn read_file(path: &Path) -> Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let invalid = || format!("invalid config file {}", path.display());
    let deserializer = toml::Deserializer::parse(&text).with_context(invalid)?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner()).context(invalid())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads with `vars` as the environment (given to clap as the flags of those variables, so
    /// that the test process's own environment cannot leak in).
    fn load_with(file: Option<&Path>, vars: &[(&str, &str)]) -> Result<Config> {
        let command = settings_command();
        let mut argv = vec!["axum-users-server".to_owned()];
        for (var, value) in vars {
            let arg = command
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == *var))
                .unwrap_or_else(|| panic!("{var} is not declared"));
            argv.push(format!("--{}={value}", arg.get_long().unwrap()));
        }
        let matches = command
            .mut_args(|a| a.env(None::<&str>))
            .try_get_matches_from(argv)
            .map_err(|e| anyhow::anyhow!(explain_clap_error(&e).unwrap_or(e.to_string())))?;
        Config::load(file, &matches, &|_| None)
    }

    fn load(vars: &[(&str, &str)]) -> Result<Config> {
        load_with(None, vars)
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = load(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url.expose(), "sqlite://axum-users.db");
        assert_eq!(c.database_timeout, Duration::from_secs(5));
        assert_eq!(c.db_tokens, None);
        assert_eq!(c.redis, None);
        assert_eq!(c.mailer, MailerConfig::Log { tokens: false });
        assert!(c.cookie_secure);
        assert_eq!(c.argon2, Argon2Params::default());
        assert_eq!(c.secret_file().unwrap(), PathBuf::from("axum-users.secret"));
    }

    #[test]
    fn environment_is_read() {
        let c = load(&[
            ("AXUM_USERS_MAILER", "file:/tmp/mail"),
            ("AXUM_USERS_COOKIE_SECURE", "false"),
            ("AXUM_USERS_ARGON2_MEMORY_KIB", "1024"),
        ])
        .unwrap();
        assert_eq!(c.mailer, MailerConfig::File("/tmp/mail".into()));
        assert!(!c.cookie_secure);
        assert_eq!(c.argon2.memory_kib, 1024);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (var, value) in [
            ("AXUM_USERS_BIND", "nowhere"),
            ("AXUM_USERS_COOKIE_SECURE", "maybe"),
            ("AXUM_USERS_ARGON2_PARALLELISM", "0"),
            ("AXUM_USERS_MAILER", "pigeon"),
            ("AXUM_USERS_SECRET", "short"),
            ("AXUM_USERS_JWT_LIFETIME_SECONDS", "-1"),
            ("AXUM_USERS_DATABASE_URL", "oracle://db/users"),
            ("AXUM_USERS_DATABASE_TIMEOUT_SECONDS", "0"),
            ("AXUM_USERS_DATABASE_MAX_CONNECTIONS", "0"),
            ("AXUM_USERS_DB_TOKENS", "yes please"),
            ("AXUM_USERS_REDIS_URL", "http://cache"),
            ("AXUM_USERS_REFRESH_REUSE_GRACE_SECONDS", "61"),
        ] {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.contains(var) || err.contains("AXUM_USERS_ARGON2"),
                "{var}: {err}"
            );
        }
    }

    #[test]
    fn databases_and_token_backends_are_configured() {
        let c = load(&[
            (
                "AXUM_USERS_DATABASE_URL",
                "postgres://app:hunter2@db:5432/users",
            ),
            ("AXUM_USERS_DATABASE_TIMEOUT_SECONDS", "1.5"),
            ("AXUM_USERS_DB_TOKENS", "true"),
            ("AXUM_USERS_DB_TOKEN_LIFETIME_SECONDS", "0"),
            ("AXUM_USERS_REDIS_URL", "redis://:s3cret@cache:6379/2"),
            ("AXUM_USERS_REDIS_TOKEN_LIFETIME_SECONDS", "60"),
        ])
        .unwrap();
        assert_eq!(c.database_timeout, Duration::from_millis(1500));
        assert_eq!(c.db_tokens, Some(None), "0: until logout");
        let redis = c.redis.clone().unwrap();
        assert_eq!(redis.token_lifetime, Some(Duration::from_secs(60)));
        assert_eq!(redis.key_prefix, "axum_users_token:");
        assert_eq!(
            c.secret_file(),
            None,
            "no generated secret beside a server database"
        );
        let shown = format!("{c:?} {} {}", c.database_url, redis.url);
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(
            shown.contains("postgres://app:[redacted]@db:5432/users"),
            "{shown}"
        );
        assert_eq!(
            c.database_url.expose(),
            "postgres://app:hunter2@db:5432/users"
        );
        for scheme in ["postgresql://h/d", "mysql://root@h/d", "mariadb://root@h/d"] {
            load(&[("AXUM_USERS_DATABASE_URL", scheme)]).unwrap();
        }
    }

    #[test]
    fn toml_file_is_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\n[argon2]\niterations = 3\n",
        )
        .unwrap();
        let c = load_with(Some(&path), &[]).unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.argon2.iterations, 3);
        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        assert!(load_with(Some(&path), &[]).is_err());
        std::fs::write(&path, "[server]\nmax_connections = \"many\"\n").unwrap();
        let err = format!("{:#}", load_with(Some(&path), &[]).unwrap_err());
        assert!(
            err.contains("server.max_connections: ") && err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn new_settings_are_read() {
        let old = "an-old-secret-of-at-least-32-bytes-000";
        let c = load(&[
            ("AXUM_USERS_STRICT_COMPAT", "true"),
            (
                "AXUM_USERS_TRUSTED_ORIGINS",
                "https://app.example.com, http://localhost:3000/",
            ),
            ("AXUM_USERS_PREVIOUS_SECRETS", old),
            ("AXUM_USERS_MAILER", "log+tokens"),
            ("AXUM_USERS_SERVER_HEADER_TIMEOUT_SECONDS", "0.5"),
            ("AXUM_USERS_SERVER_MAX_CONNECTIONS", "3"),
            ("AXUM_USERS_SEND_VERIFICATION_ON_REGISTER", "true"),
        ])
        .unwrap();
        assert!(c.strict_compat);
        assert!(c.send_verification_on_register);
        assert_eq!(
            c.trusted_origins,
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(c.previous_secrets, [Secret::new(old)]);
        assert!(
            !format!("{c:?}").contains(old),
            "previous secrets are redacted"
        );
        assert_eq!(c.mailer, MailerConfig::Log { tokens: true });
        assert_eq!(c.limits.header_timeout, Duration::from_millis(500));
        assert_eq!(c.limits.body_timeout, Duration::from_secs(30));
        assert_eq!(c.limits.request_timeout, Duration::from_secs(60));
        assert_eq!(c.limits.max_connections, 3);
        let c = load(&[]).unwrap();
        assert!(!c.strict_compat && c.trusted_origins.is_empty() && c.previous_secrets.is_empty());
        assert!(
            !c.send_verification_on_register,
            "off by default, as the reference"
        );
        assert_eq!(c.limits.header_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.max_connections, 1024);
    }

    #[test]
    fn new_bad_values_name_their_key() {
        for (var, value) in [
            ("AXUM_USERS_STRICT_COMPAT", "perhaps"),
            (
                "AXUM_USERS_TRUSTED_ORIGINS",
                "https://app.example.com/login",
            ),
            ("AXUM_USERS_TRUSTED_ORIGINS", "app.example.com"),
            ("AXUM_USERS_PREVIOUS_SECRETS", "short"),
            ("AXUM_USERS_SERVER_HEADER_TIMEOUT_SECONDS", "0"),
            ("AXUM_USERS_SERVER_BODY_TIMEOUT_SECONDS", "soon"),
            ("AXUM_USERS_SERVER_REQUEST_TIMEOUT_SECONDS", "7200"),
            ("AXUM_USERS_SERVER_MAX_CONNECTIONS", "0"),
            ("AXUM_USERS_PUBLIC_URL", "api.example.com"),
        ] {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
        let err = load(&[("AXUM_USERS_PREVIOUS_SECRETS", "short-secret")])
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("short-secret"),
            "a secret is never echoed: {err}"
        );
    }

    #[test]
    fn the_environment_overrides_the_file_and_flags_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "bind = \"127.0.0.1:9000\"\nmail_from = \"file@example.com\"\n\
             trusted_origins = [\"https://a.example.com\"]\n[server]\nmax_connections = 5\n",
        )
        .unwrap();
        let c = load_with(Some(&path), &[("AXUM_USERS_BIND", "127.0.0.1:9001")]).unwrap();
        assert_eq!(c.bind.port(), 9001, "the environment wins");
        assert_eq!(c.mail_from, "file@example.com", "the file gives the rest");
        assert_eq!(c.limits.max_connections, 5);
        assert_eq!(c.trusted_origins, ["https://a.example.com"]);

        let matches = settings_command()
            .mut_args(|a| a.env(None::<&str>))
            .try_get_matches_from(["x", "--bind", "127.0.0.1:9002"])
            .unwrap();
        let c = Config::load(Some(&path), &matches, &|_| None).unwrap();
        assert_eq!(c.bind.port(), 9002);
    }

    #[test]
    fn metrics_are_off_by_default_and_a_short_token_is_refused() {
        let c = load(&[]).unwrap();
        assert!(!c.metrics.enabled());
        let err = load(&[("AXUM_USERS_METRICS_TOKEN", "short")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics_token (AXUM_USERS_METRICS_TOKEN)") && err.contains("32 bytes"),
            "{err}"
        );
        assert!(!err.contains("short"), "the token is not echoed: {err}");
        let c = load(&[("AXUM_USERS_METRICS_TOKEN", &"t".repeat(32))]).unwrap();
        assert!(c.metrics.enabled() && c.metrics.bind.is_none());
        let err = load(&[
            ("AXUM_USERS_BIND", "127.0.0.1:9100"),
            ("AXUM_USERS_METRICS_BIND", "127.0.0.1:9100"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("metrics_bind (AXUM_USERS_METRICS_BIND)"),
            "{err}"
        );
    }

    #[test]
    fn oauth_needs_a_public_url_and_a_known_kind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let provider = "[oauth.gh]\nkind = \"github\"\nclient_id = \"a\"\nclient_secret = \"b\"\n";
        std::fs::write(&path, provider).unwrap();
        let err = load_with(Some(&path), &[]).unwrap_err().to_string();
        assert!(
            err.contains("missing public_url (AXUM_USERS_PUBLIC_URL)"),
            "{err}"
        );
        load_with(
            Some(&path),
            &[("AXUM_USERS_PUBLIC_URL", "https://api.example.com")],
        )
        .unwrap();
        std::fs::write(&path, provider.replace("github", "myspace")).unwrap();
        let err = format!("{:#}", load_with(Some(&path), &[]).unwrap_err());
        assert!(err.contains("oauth.gh.kind"), "{err}");
    }

    #[test]
    fn abuse_settings_are_read_and_bad_ones_name_their_key() {
        use axum_users::{LimitedRoute, Rule};
        let c = load(&[]).unwrap();
        assert!(c.abuse.rate_limits.enabled);
        assert_eq!(c.abuse.login_throttle.max_failures, 10);
        assert_eq!(c.abuse.mail_cooldown, Duration::from_secs(60));
        assert_eq!(c.abuse.mail_answer_floor, Duration::from_millis(500));
        assert_eq!(c.abuse.password_policy.min_length, 8);
        assert_eq!(c.abuse.password_policy.max_length, 1024);
        let c = load(&[
            ("AXUM_USERS_RATE_LIMITS", "false"),
            ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", "5/30"),
            ("AXUM_USERS_RATE_LIMITS_OAUTH_PER_IP", "off"),
            ("AXUM_USERS_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/32"),
            ("AXUM_USERS_LOGIN_MAX_FAILURES", "4"),
            ("AXUM_USERS_PASSWORD_MIN_LENGTH", "15"),
            ("AXUM_USERS_MAIL_ANSWER_FLOOR_MS", "2000"),
        ])
        .unwrap();
        assert_eq!(c.abuse.mail_answer_floor, Duration::from_secs(2));
        let limits = &c.abuse.rate_limits;
        assert!(!limits.enabled);
        assert_eq!(
            limits.route(LimitedRoute::Login).per_ip,
            Some(Rule::per_seconds(5, 30))
        );
        assert_eq!(limits.route(LimitedRoute::OAuth).per_ip, None);
        assert_eq!(c.abuse.trusted_proxies.len(), 2);
        assert_eq!(c.abuse.login_throttle.max_failures, 4);
        assert_eq!(c.abuse.password_policy.min_length, 15);
        for (var, value) in [
            ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", "often"),
            ("AXUM_USERS_TRUSTED_PROXIES", "10.0.0.0/40"),
            ("AXUM_USERS_PASSWORD_MAX_LENGTH", "63"),
            ("AXUM_USERS_LOGIN_FAILURE_WINDOW_SECONDS", "0"),
            ("AXUM_USERS_BREACHED_PASSWORDS_URL", "ftp://range"),
            ("AXUM_USERS_RATE_LIMITS", "sometimes"),
            ("AXUM_USERS_MAIL_ANSWER_FLOOR_MS", "0"),
            ("AXUM_USERS_MAIL_ANSWER_FLOOR_MS", "60000"),
        ] {
            let err = load(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }
}
