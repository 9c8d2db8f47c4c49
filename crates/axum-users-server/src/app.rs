//! Builds the server from its configuration: the store, the secret, the routes.

use std::path::Path;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_users::{AxumUsers, CookieSettings, Secret, Transport};
use axum_users_sqlx::SqliteStore;
use http::StatusCode;
use serde_json::json;

use crate::config::Config;
use crate::hooks::ServerHooks;
use crate::mailer::Mailer;
use crate::openapi;

/// The store the server runs on.
pub(crate) type Store = SqliteStore;
/// The configured user management.
pub(crate) type Users = AxumUsers<Store, ServerHooks>;

/// Opens the database and applies pending migrations.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub(crate) async fn open_store(config: &Config) -> Result<Store> {
    let store = Store::connect(&config.database_url)
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
        "set AXUM_USERS_SECRET: an in-memory database has no place to keep a generated secret",
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

/// User management over `store` as configured.
///
/// # Errors
/// When the configuration is refused by the library.
pub(crate) fn users(config: &Config, store: Store, secret: Secret) -> Result<Users> {
    let hooks = ServerHooks {
        mailer: Mailer::new(config.mailer.clone(), config.mail_from.clone()),
        frontend_url: config.frontend_url.clone(),
        password_min_length: config.password_min_length,
    };
    AxumUsers::builder(store, secret)
        .hooks(hooks)
        .argon2(config.argon2)
        .jwt_lifetime(Some(config.jwt_lifetime_seconds))
        .cookie(CookieSettings::auth().with_secure(config.cookie_secure))
        .build()
        .context("invalid user-management configuration")
}

/// The whole HTTP application.
pub(crate) fn router(users: &Users, store: Store) -> Router {
    let backends: Vec<(String, bool)> = users
        .backends()
        .iter()
        .map(|b| (b.name.clone(), matches!(b.transport, Transport::Cookie(_))))
        .collect();
    let document = openapi::document(&backends);
    Router::new()
        .merge(users.router())
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready).with_state(store))
        .route(
            "/openapi.json",
            get(move || async move { Json(document.clone()) }),
        )
        .route("/docs", get(|| async { Html(openapi::DOCS_PAGE) }))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"detail": "Method Not Allowed"})),
            )
        })
}

async fn ready(State(store): State<Store>) -> Response {
    match store.ping().await {
        Ok(()) => Json(json!({"status": "ok", "database": "ok"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unavailable"})),
            )
                .into_response()
        }
    }
}
