//! Builds the server from its configuration: the store, the secret, the routes.

use std::path::Path;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_users::{
    AuthBackend, AxumUsers, CookieSettings, DatabaseStrategy, Secret, StoreError, Transport,
};
use axum_users_redis::{RedisOptions, RedisStrategy};
use axum_users_sqlx::{SqlStore, StoreOptions};
use http::StatusCode;
use serde_json::json;

use crate::config::Config;
use crate::hooks::ServerHooks;
use crate::mailer::Mailer;
use crate::openapi;

/// The store the server runs on (SQLite, PostgreSQL or MySQL, by the URL).
pub(crate) type Store = SqlStore;
/// The Redis token strategy, when configured.
pub(crate) type Redis = RedisStrategy<uuid::Uuid>;
/// The configured user management.
pub(crate) type Users = AxumUsers<Store, ServerHooks>;

/// Opens the database and applies pending migrations.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub(crate) async fn open_store(config: &Config) -> Result<Store> {
    let options = StoreOptions::default()
        .with_max_connections(config.database_max_connections)
        .with_timeout(config.database_timeout);
    let store = Store::connect_with(config.database_url.expose(), options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {} (check AXUM_USERS_DATABASE_URL)",
                config.database_url
            )
        })?;
    let applied = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    if applied > 0 {
        tracing::info!(applied, "database schema migrated");
    }
    Ok(store)
}

/// The configured secret, or the one kept beside the SQLite database (generated once).
///
/// # Errors
/// When no secret is configured and none can be kept.
pub(crate) fn resolve_secret(config: &Config) -> Result<Secret> {
    if let Some(secret) = &config.secret {
        return Ok(secret.clone());
    }
    let path = config.secret_file().context(
        "set AXUM_USERS_SECRET: it is required with an in-memory SQLite, PostgreSQL or MySQL \
         database (every node of a deployment must share it)",
    )?;
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Secret::new(secret.trim()));
    }
    let secret = axum_users::random_token(48);
    write_private(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "no AXUM_USERS_SECRET set: generated one and kept it in this file; production must set its own"
    );
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// The Redis strategy, when configured. It connects lazily: the server starts while Redis is
/// down, and `/ready` says so.
///
/// # Errors
/// When the URL is malformed.
pub(crate) fn redis(config: &Config) -> Result<Option<Redis>> {
    let Some(redis) = &config.redis else {
        return Ok(None);
    };
    let options = RedisOptions::default()
        .with_key_prefix(redis.key_prefix.clone())
        .with_lifetime(redis.token_lifetime)
        .with_timeout(redis.timeout);
    let strategy = Redis::connect(redis.url.expose(), options).with_context(|| {
        format!(
            "invalid Redis URL {} (check AXUM_USERS_REDIS_URL)",
            redis.url
        )
    })?;
    Ok(Some(strategy))
}

/// User management over `store` as configured: the `jwt` and `cookie` backends, then `db`
/// (database tokens) and `redis` when enabled, all Bearer.
///
/// # Errors
/// When the configuration is refused by the library.
pub(crate) fn users(
    config: &Config,
    store: Store,
    redis: Option<Redis>,
    secret: Secret,
    oauth: Vec<axum_users::OAuthClient>,
) -> Result<Users> {
    let hooks = ServerHooks {
        mailer: Mailer::new(config.mailer.clone(), config.mail_from.clone()),
        frontend_url: config.frontend_url.clone(),
        password_min_length: config.password_min_length,
    };
    let mut builder = AxumUsers::builder(store.clone(), secret);
    if let Some(lifetime) = config.db_tokens {
        let strategy = DatabaseStrategy::new(store, lifetime);
        builder = builder.backend(AuthBackend::new("db", bearer("db"), strategy));
    }
    if let Some(redis) = redis {
        builder = builder.backend(AuthBackend::new("redis", bearer("redis"), redis));
    }
    if let Some(url) = &config.public_url {
        builder = builder.public_url(url.clone());
    }
    for client in oauth {
        builder = builder.oauth(client);
    }
    builder
        .hooks(hooks)
        .argon2(config.argon2)
        .jwt_lifetime(std::time::Duration::from_secs(config.jwt_lifetime_seconds))
        .cookie(CookieSettings::auth().with_secure(config.cookie_secure))
        .build()
        .context("invalid user-management configuration")
}

fn bearer(backend: &str) -> Transport {
    Transport::Bearer {
        token_url: format!("auth/{backend}/login"),
    }
}

/// What `/ready` checks.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) store: Store,
    pub(crate) redis: Option<Redis>,
}

/// The whole HTTP application.
pub(crate) fn router(users: &Users, services: Services) -> Router {
    Router::new()
        .merge(users.router())
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready).with_state(services))
        .merge(openapi::routes(users))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"detail": "Method Not Allowed"})),
            )
        })
}

/// 200 when the database (and Redis, when configured) answer; else 503, naming which does not.
async fn ready(State(services): State<Services>) -> Response {
    let redis = async {
        match &services.redis {
            Some(redis) => Some(redis.ping().await),
            None => None,
        }
    };
    let (database, redis) = tokio::join!(services.store.ping(), redis);
    let mut body = json!({"status": "ok", "database": state("database", &database)});
    let mut ok = database.is_ok();
    if let Some(redis) = redis {
        body["redis"] = state("redis", &redis).into();
        ok &= redis.is_ok();
    }
    if ok {
        return Json(body).into_response();
    }
    body["status"] = "unavailable".into();
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

fn state(service: &str, result: &Result<(), StoreError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(service, error = %e, "readiness check failed");
            "unavailable"
        }
    }
}
