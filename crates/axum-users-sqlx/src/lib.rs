//! # axum-users-sqlx
//!
//! sqlx stores for `axum-users`: SQLite, the embedded default. Queries are built at run time
//! (no `DATABASE_URL` at build time) and the schema comes as embedded migrations.
//!
//! ```no_run
//! # async fn run() -> Result<(), sqlx::Error> {
//! use axum_users_sqlx::SqliteStore;
//!
//! let store: SqliteStore = SqliteStore::connect("sqlite://app.db").await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```

mod error;
mod id;
mod schema;
mod sqlite;

pub use id::{Dialect, IdValue, SqlId};
pub use sqlite::SqliteStore;

/// The README's library example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
