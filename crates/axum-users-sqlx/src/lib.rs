//! # axum-users-sqlx
//!
//! sqlx stores for `axum-users` on SQLite (the embedded default), PostgreSQL and MySQL/MariaDB,
//! chosen at run time by the URL scheme. Queries are built at run time (no `DATABASE_URL` at
//! build time), written once for every database, and the schema comes as embedded migrations.
//! The cargo features `sqlite`, `postgres` and `mysql` (all on by default) pick the drivers
//! compiled in; `tls` adds rustls for PostgreSQL and MySQL connections.
//!
//! ```no_run
//! # async fn run() -> Result<(), sqlx::Error> {
//! use axum_users_sqlx::SqlStore;
//!
//! // or "postgres://app@db.internal/app", "mysql://app@db.internal/app"
//! let store: SqlStore = SqlStore::connect("sqlite://app.db").await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! One type, [`SqlStore<Id, F>`], serves every database: `Id` is `uuid::Uuid` (the default,
//! kept as text) or `i64` (assigned by the database), `F` the application's
//! [`axum_users::UserFields`]. The custom fields are kept in one column, `users.fields`, as
//! the JSON of `F` (serde): adding or removing a field with `#[serde(default)]` needs no
//! migration, and a row written before a field existed reads with its default. They are not
//! columns of their own, so the database cannot index or constrain them; an application that
//! queries by a field keeps it in a table of its own keyed by the user id.
//!
//! E-mail addresses are unique case-insensitively, enforced by the database (a unique
//! constraint on the lower-cased address), so concurrent registrations cannot both succeed.
//! A database that cannot be reached, or does not answer within [`StoreOptions::timeout`],
//! gives [`axum_users::StoreError::Unavailable`] (503 from the API).

mod db;
mod error;
mod id;
mod schema;
mod sessions;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::{SqlPool, StoreOptions};
pub use id::{Dialect, IdValue, SqlId};
#[allow(deprecated)]
pub use store::{ImportUser, Imported, SqlStore, SqliteStore, WebhookOutbox};

/// The README's library example, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
