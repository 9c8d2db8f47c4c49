//! Throw-away databases on a shared PostgreSQL or MySQL server, for tests (feature `testing`).

use std::time::Duration;

use crate::db::{Arg, Db, SqlPool, StoreOptions};
use crate::id::Dialect;

/// A database made for one test on a shared server, so that tests never see each other's
/// schema (UUID and integer ids need different tables) and can run in parallel.
#[derive(Debug)]
pub struct TempDatabase {
    /// The URL of the new database.
    pub url: String,
    name: String,
    admin: Db,
}

impl TempDatabase {
    /// Creates `axum_users_t_<random>` on the server of `server_url` (a `postgres:` or `mysql:`
    /// URL whose user may create databases).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn create(server_url: &str) -> Result<Self, sqlx::Error> {
        let options = StoreOptions::default()
            .with_max_connections(1)
            .with_timeout(Duration::from_secs(30));
        let admin = Db {
            pool: SqlPool::connect(server_url, options).await?,
            timeout: options.timeout,
        };
        let name = format!(
            "axum_users_t_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..16]
        );
        admin
            .execute(&format!("CREATE DATABASE {name}"), &[] as &[Arg])
            .await
            .map_err(|e| sqlx::Error::Configuration(e.into()))?;
        Ok(Self {
            url: with_database(server_url, &name),
            name,
            admin,
        })
    }

    /// Drops the database (PostgreSQL: also ending connections still open to it).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn drop_database(self) -> Result<(), sqlx::Error> {
        let sql = match self.admin.dialect() {
            Dialect::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        self.admin
            .execute(&sql, &[])
            .await
            .map(|_| ())
            .map_err(|e| sqlx::Error::Configuration(e.into()))
    }
}

/// `url` with its database (the path) replaced by `name`, keeping the query.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        assert_eq!(
            with_database("postgres://u@h:5432/old", "new"),
            "postgres://u@h:5432/new"
        );
        assert_eq!(with_database("mysql://root@h", "new"), "mysql://root@h/new");
        assert_eq!(
            with_database("postgres://u@h/old?sslmode=disable", "new"),
            "postgres://u@h/new?sslmode=disable"
        );
    }
}
