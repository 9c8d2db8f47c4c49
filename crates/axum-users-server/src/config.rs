//! Configuration: defaults, then the optional TOML file, then `AXUM_USERS_*` variables. Every
//! value is checked once at start-up; a bad one stops the server with a message naming its key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum_users::{Argon2Params, Secret};
use serde::Deserialize;

/// Where mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MailerConfig {
    /// Links are written to the log.
    Log,
    /// One `.eml` file per message in this folder.
    File(PathBuf),
}

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

/// The server's configuration, validated.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Address to listen on.
    pub(crate) bind: SocketAddr,
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
    pub argon2: Argon2Params,
    /// Shortest password accepted.
    pub(crate) password_min_length: usize,
    /// The public base URL of the API (OAuth callback URLs are made from it).
    pub(crate) public_url: Option<String>,
    /// OAuth providers by name (`[oauth.<name>]`).
    pub(crate) oauth: std::collections::BTreeMap<String, crate::oauth::ProviderConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    database_url: Option<String>,
    secret: Option<String>,
    mailer: Option<String>,
    mail_from: Option<String>,
    frontend_url: Option<String>,
    cookie_secure: Option<bool>,
    jwt_lifetime_seconds: Option<u64>,
    password_min_length: Option<usize>,
    database_max_connections: Option<u32>,
    database_timeout_seconds: Option<f64>,
    db_tokens: Option<bool>,
    db_token_lifetime_seconds: Option<u64>,
    redis_url: Option<String>,
    redis_token_lifetime_seconds: Option<u64>,
    redis_key_prefix: Option<String>,
    redis_timeout_seconds: Option<f64>,
    public_url: Option<String>,
    #[serde(default)]
    oauth: std::collections::BTreeMap<String, crate::oauth::ProviderConfig>,
    argon2: Option<FileArgon2>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileArgon2 {
    memory_kib: Option<u32>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
}

/// Every environment variable the server reads, with its meaning (shown by `--help`).
pub(crate) const ENV_HELP: &str = "\
Environment (overrides the TOML file):
  AXUM_USERS_CONFIG                path of the TOML file (default: axum-users.toml if present)
  AXUM_USERS_BIND                  address to listen on (default 127.0.0.1:8000)
  AXUM_USERS_DATABASE_URL          sqlite:, postgres: or mysql: URL (default sqlite://axum-users.db)
  AXUM_USERS_DATABASE_MAX_CONNECTIONS  database pool size (default 10)
  AXUM_USERS_DATABASE_TIMEOUT_SECONDS  longest wait for the database, then 503 (default 5)
  AXUM_USERS_DB_TOKENS             true: database tokens at /auth/db (default false)
  AXUM_USERS_DB_TOKEN_LIFETIME_SECONDS  lifetime of database tokens, 0 = until logout (default 3600)
  AXUM_USERS_REDIS_URL             redis:// URL: Redis tokens at /auth/redis (default: off)
  AXUM_USERS_REDIS_TOKEN_LIFETIME_SECONDS  lifetime (TTL) of Redis tokens, 0 = until logout (default 3600)
  AXUM_USERS_REDIS_KEY_PREFIX      prefix of the Redis keys (default axum_users_token:)
  AXUM_USERS_REDIS_TIMEOUT_SECONDS longest wait for Redis, then 503 (default 2)
  AXUM_USERS_SECRET                signing secret, >= 32 bytes (default with SQLite: generated, kept beside
                                   the database; required with PostgreSQL/MySQL, the same on every node)
  AXUM_USERS_MAILER                log | file:<dir> (default log)
  AXUM_USERS_MAIL_FROM             sender address of mail
  AXUM_USERS_FRONTEND_URL          base URL of the reset and verify links
  AXUM_USERS_COOKIE_SECURE         true | false (default true)
  AXUM_USERS_JWT_LIFETIME_SECONDS  lifetime of auth tokens (default 3600)
  AXUM_USERS_PASSWORD_MIN_LENGTH   shortest password accepted (default 8)
  AXUM_USERS_ARGON2_MEMORY_KIB     Argon2id memory (default 19456)
  AXUM_USERS_ARGON2_ITERATIONS     Argon2id passes (default 2)
  AXUM_USERS_ARGON2_PARALLELISM    Argon2id lanes (default 1)
  AXUM_USERS_LOG                   log filter, e.g. info or axum_users=debug (default info)";

impl Config {
    /// Loads the configuration from `file` (or `axum-users.toml` when present) and `env`.
    ///
    /// # Errors
    /// A message naming the key whose value is wrong.
    pub(crate) fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let path = file
            .map(Path::to_path_buf)
            .or_else(|| env("AXUM_USERS_CONFIG").map(PathBuf::from));
        let from_file = match &path {
            Some(path) => read_file(path)?,
            None if Path::new("axum-users.toml").exists() => {
                read_file(Path::new("axum-users.toml"))?
            }
            None => FileConfig::default(),
        };
        let argon = from_file.argon2.unwrap_or_default();
        let defaults = Argon2Params::default();

        let bind_text = env("AXUM_USERS_BIND")
            .or(from_file.bind)
            .unwrap_or_else(|| "127.0.0.1:8000".into());
        let bind: SocketAddr = bind_text
            .parse()
            .with_context(|| format!("invalid value for bind (AXUM_USERS_BIND): `{bind_text}` is not an address like 127.0.0.1:8000"))?;
        let database_url = env("AXUM_USERS_DATABASE_URL")
            .or(from_file.database_url)
            .unwrap_or_else(|| "sqlite://axum-users.db".into());
        let database_url = ServiceUrl::new(database_url);
        if axum_users_sqlx::Dialect::of_url(database_url.expose()).is_none() {
            bail!(
                "invalid value for database_url (AXUM_USERS_DATABASE_URL): `{database_url}`; use a sqlite:, postgres: or mysql: URL"
            );
        }
        let secret = env("AXUM_USERS_SECRET")
            .or(from_file.secret)
            .map(Secret::new);
        if let Some(secret) = &secret
            && secret.expose().len() < 32
        {
            bail!(
                "invalid value for secret (AXUM_USERS_SECRET): it must be at least 32 bytes long"
            );
        }
        let mailer_text = env("AXUM_USERS_MAILER")
            .or(from_file.mailer)
            .unwrap_or_else(|| "log".into());
        let mailer = parse_mailer(&mailer_text)?;
        let frontend_url = env("AXUM_USERS_FRONTEND_URL")
            .or(from_file.frontend_url)
            .unwrap_or_else(|| format!("http://{bind}"))
            .trim_end_matches('/')
            .to_owned();
        if !(frontend_url.starts_with("http://") || frontend_url.starts_with("https://")) {
            bail!(
                "invalid value for frontend_url (AXUM_USERS_FRONTEND_URL): `{frontend_url}` must start with http:// or https://"
            );
        }
        let redis = match env("AXUM_USERS_REDIS_URL").or(from_file.redis_url) {
            Some(url) if !url.trim().is_empty() => {
                let url = ServiceUrl::new(url.trim());
                if !["redis://", "rediss://", "redis+unix://", "unix://"]
                    .iter()
                    .any(|scheme| url.expose().starts_with(scheme))
                {
                    bail!(
                        "invalid value for redis_url (AXUM_USERS_REDIS_URL): `{url}`; use a redis:// URL"
                    );
                }
                Some(RedisConfig {
                    url,
                    token_lifetime: lifetime(
                        parse_env(
                            env,
                            "AXUM_USERS_REDIS_TOKEN_LIFETIME_SECONDS",
                            "redis_token_lifetime_seconds",
                        )?
                        .or(from_file.redis_token_lifetime_seconds),
                    ),
                    key_prefix: env("AXUM_USERS_REDIS_KEY_PREFIX")
                        .or(from_file.redis_key_prefix)
                        .unwrap_or_else(|| "axum_users_token:".into()),
                    timeout: seconds(
                        parse_env(
                            env,
                            "AXUM_USERS_REDIS_TIMEOUT_SECONDS",
                            "redis_timeout_seconds",
                        )?
                        .or(from_file.redis_timeout_seconds),
                        2.0,
                        "redis_timeout_seconds (AXUM_USERS_REDIS_TIMEOUT_SECONDS)",
                    )?,
                })
            }
            _ => None,
        };
        let db_tokens = parse_env(env, "AXUM_USERS_DB_TOKENS", "db_tokens")?
            .or(from_file.db_tokens)
            .unwrap_or(false);
        let db_token_lifetime = lifetime(
            parse_env(
                env,
                "AXUM_USERS_DB_TOKEN_LIFETIME_SECONDS",
                "db_token_lifetime_seconds",
            )?
            .or(from_file.db_token_lifetime_seconds),
        );
        let database_max_connections: u32 = parse_env(
            env,
            "AXUM_USERS_DATABASE_MAX_CONNECTIONS",
            "database_max_connections",
        )?
        .or(from_file.database_max_connections)
        .unwrap_or(10);
        if database_max_connections == 0 {
            bail!(
                "invalid value for database_max_connections (AXUM_USERS_DATABASE_MAX_CONNECTIONS): must be at least 1"
            );
        }
        let public_url = env("AXUM_USERS_PUBLIC_URL")
            .or(from_file.public_url)
            .map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            bail!(
                "invalid value for public_url (AXUM_USERS_PUBLIC_URL): `{url}` must start with http:// or https://"
            );
        }
        crate::oauth::validate(&from_file.oauth, env)?;
        let config = Config {
            public_url,
            oauth: from_file.oauth,
            bind,
            database_url,
            database_max_connections,
            database_timeout: seconds(
                parse_env(
                    env,
                    "AXUM_USERS_DATABASE_TIMEOUT_SECONDS",
                    "database_timeout_seconds",
                )?
                .or(from_file.database_timeout_seconds),
                5.0,
                "database_timeout_seconds (AXUM_USERS_DATABASE_TIMEOUT_SECONDS)",
            )?,
            db_tokens: db_tokens.then_some(db_token_lifetime),
            redis,
            secret,
            mailer,
            mail_from: env("AXUM_USERS_MAIL_FROM")
                .or(from_file.mail_from)
                .unwrap_or_else(|| "axum-users <no-reply@localhost>".into()),
            frontend_url,
            cookie_secure: parse_env(env, "AXUM_USERS_COOKIE_SECURE", "cookie_secure")?
                .or(from_file.cookie_secure)
                .unwrap_or(true),
            jwt_lifetime_seconds: parse_env(
                env,
                "AXUM_USERS_JWT_LIFETIME_SECONDS",
                "jwt_lifetime_seconds",
            )?
            .or(from_file.jwt_lifetime_seconds)
            .unwrap_or(3600),
            password_min_length: parse_env(
                env,
                "AXUM_USERS_PASSWORD_MIN_LENGTH",
                "password_min_length",
            )?
            .or(from_file.password_min_length)
            .unwrap_or(8),
            argon2: Argon2Params {
                memory_kib: parse_env(env, "AXUM_USERS_ARGON2_MEMORY_KIB", "argon2.memory_kib")?
                    .or(argon.memory_kib)
                    .unwrap_or(defaults.memory_kib),
                iterations: parse_env(env, "AXUM_USERS_ARGON2_ITERATIONS", "argon2.iterations")?
                    .or(argon.iterations)
                    .unwrap_or(defaults.iterations),
                parallelism: parse_env(env, "AXUM_USERS_ARGON2_PARALLELISM", "argon2.parallelism")?
                    .or(argon.parallelism)
                    .unwrap_or(defaults.parallelism),
            },
        };
        config
            .argon2
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid value for argon2 (AXUM_USERS_ARGON2_*): {e}"))?;
        if config.jwt_lifetime_seconds == 0 {
            bail!(
                "invalid value for jwt_lifetime_seconds (AXUM_USERS_JWT_LIFETIME_SECONDS): must be at least 1"
            );
        }
        Ok(config)
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
fn seconds(value: Option<f64>, default: f64, key: &str) -> Result<Duration> {
    let value = value.unwrap_or(default);
    if !(0.001..=3600.0).contains(&value) {
        bail!("invalid value for {key}: `{value}` must be between 0.001 and 3600 seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn parse_mailer(text: &str) -> Result<MailerConfig> {
    if text == "log" {
        return Ok(MailerConfig::Log);
    }
    if let Some(dir) = text.strip_prefix("file:").filter(|d| !d.is_empty()) {
        return Ok(MailerConfig::File(PathBuf::from(dir)));
    }
    bail!("invalid value for mailer (AXUM_USERS_MAILER): `{text}`; use `log` or `file:<dir>`")
}

fn parse_env<T: std::str::FromStr>(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    key: &str,
) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    let Some(text) = env(var) else {
        return Ok(None);
    };
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| anyhow::anyhow!("invalid value for {key} ({var}): `{text}`: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load(None, &|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_configuration() {
        let c = load(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url.expose(), "sqlite://axum-users.db");
        assert_eq!(c.database_timeout, Duration::from_secs(5));
        assert_eq!(c.db_tokens, None);
        assert_eq!(c.redis, None);
        assert_eq!(c.mailer, MailerConfig::Log);
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
        let c = Config::load(Some(&path), &|_| None).unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.argon2.iterations, 3);
        std::fs::write(&path, "bnd = \"x\"\n").unwrap();
        assert!(Config::load(Some(&path), &|_| None).is_err());
    }
}
