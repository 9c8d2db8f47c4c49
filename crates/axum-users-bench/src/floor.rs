//! The floor: the least an HTTP service can do for `GET /users/me` — one axum handler, one
//! primary-key read of the `users` row with sqlx, a JSON answer — on the same database and with
//! the same pool settings as the server (SQLite in WAL mode, synchronous NORMAL, 8 connections).
//! The harness runs it in a process of its own (`axum-users-bench floor`), with its own tokio
//! runtime, so that the API's throughput reads as a ratio of it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use http::StatusCode;
use serde_json::json;
use sqlx::Row;

/// The columns `/users/me` reads (a constant: no input reaches the SQL text).
const SELECT_USER: &str = "SELECT id, email, hashed_password, is_active, is_superuser, is_verified, fields FROM users WHERE id = ";

/// A pool on SQLite or PostgreSQL.
#[derive(Clone)]
pub enum FloorPool {
    /// `sqlite:` URLs.
    Sqlite(sqlx::SqlitePool),
    /// `postgres:` URLs.
    Postgres(sqlx::PgPool),
}

impl FloorPool {
    /// Connects like the server's store does.
    ///
    /// # Errors
    /// When the database cannot be opened.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(10)
                .connect(url)
                .await?;
            return Ok(Self::Postgres(pool));
        }
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        let options = SqliteConnectOptions::from_str(url)?
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Self::Sqlite(pool))
    }

    async fn user(&self, id: &str) -> Result<Option<serde_json::Value>, sqlx::Error> {
        macro_rules! read {
            ($pool:expr, $placeholder:literal) => {{
                let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_USER}{}", $placeholder)))
                    .bind(id)
                    .fetch_optional($pool)
                    .await?;
                row.map(|r| {
                    Ok::<_, sqlx::Error>(json!({
                        "id": r.try_get::<String, _>(0)?,
                        "email": r.try_get::<String, _>(1)?,
                        "is_active": r.try_get::<bool, _>(3)?,
                        "is_superuser": r.try_get::<bool, _>(4)?,
                        "is_verified": r.try_get::<bool, _>(5)?,
                    }))
                })
                .transpose()
            }};
        }
        match self {
            Self::Sqlite(pool) => read!(pool, "?"),
            Self::Postgres(pool) => read!(pool, "$1"),
        }
    }
}

/// `GET /users/{id}`: the row as JSON, 404 when absent.
pub fn router(pool: FloorPool) -> Router {
    Router::new()
        .route("/users/{id}", get(read_user))
        .with_state(pool)
}

async fn read_user(State(pool): State<FloorPool>, Path(id): Path<String>) -> Response {
    match pool.user(&id).await {
        Ok(Some(user)) => Json(user).into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves the floor on 127.0.0.1 (a free port) and prints `floor listening on http://ADDR`.
///
/// # Errors
/// When the database cannot be opened or the port bound.
pub fn serve(database_url: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pool = FloorPool::connect(database_url)
            .await
            .with_context(|| format!("the floor cannot open {database_url}"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        eprintln!("floor listening on http://{}", listener.local_addr()?);
        axum::serve(listener, router(pool)).await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_user_row_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("f.db").display());
        let pool = FloorPool::connect(&url).await.unwrap();
        let FloorPool::Sqlite(sqlite) = &pool else {
            panic!("not sqlite")
        };
        sqlx::query(
            "CREATE TABLE users (id CHAR(36) PRIMARY KEY NOT NULL, email TEXT, hashed_password TEXT, \
             is_active BOOLEAN, is_superuser BOOLEAN, is_verified BOOLEAN, fields TEXT)",
        )
        .execute(sqlite)
        .await
        .unwrap();
        sqlx::query("INSERT INTO users VALUES ('u1', 'a@b.c', 'h', 1, 0, 0, '{}')")
            .execute(sqlite)
            .await
            .unwrap();
        let user = pool.user("u1").await.unwrap().unwrap();
        assert_eq!(user["email"], "a@b.c");
        assert_eq!(user["is_active"], true);
        assert!(pool.user("u2").await.unwrap().is_none());
    }
}
