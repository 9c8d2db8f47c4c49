//! The SQLite store: the embedded default.

use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use axum_users::{
    AccessTokenStore, NewOAuthAccount, NewUser, OAuthAccount, OAuthAccountStore, PasswordHash,
    Secret, StoreError, User, UserFields, UserStore, email_key, now_unix,
};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use uuid::Uuid;

use crate::error::store_error;
use crate::id::{Dialect, IdValue, SqlId};
use crate::schema::migrations;

/// Users, OAuth accounts and access tokens in SQLite. `Id` is [`Uuid`] (default) or `i64`.
pub struct SqliteStore<Id = Uuid, F = axum_users::NoFields> {
    pool: SqlitePool,
    _types: PhantomData<fn() -> (Id, F)>,
}

impl<Id, F> Clone for SqliteStore<Id, F> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            _types: PhantomData,
        }
    }
}

impl<Id, F> std::fmt::Debug for SqliteStore<Id, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl<Id: SqlId, F: UserFields> SqliteStore<Id, F> {
    /// Opens (creating if missing) the database at `url`, e.g. `sqlite://axum-users.db` or
    /// `sqlite::memory:`, in WAL mode with foreign keys on.
    ///
    /// # Errors
    /// The driver's error when the URL is malformed or the file cannot be opened.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            .journal_mode(if memory {
                SqliteJournalMode::Memory
            } else {
                SqliteJournalMode::Wal
            })
            .synchronous(SqliteSynchronous::Normal);
        // An in-memory database lives in one connection.
        let max = if memory { 1 } else { 8 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(if memory { 1 } else { 0 })
            .idle_timeout(if memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool (foreign keys must be on for cascading deletes).
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            _types: PhantomData,
        }
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Creates or upgrades the schema; returns how many migrations it applied.
    ///
    /// # Errors
    /// The driver's error; a failed migration is rolled back whole.
    pub async fn migrate(&self) -> Result<usize, sqlx::Error> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS axum_users_migrations (version BIGINT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        let mut applied = 0;
        for migration in migrations::<Id>(Dialect::Sqlite) {
            let mut tx = self.pool.begin().await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM axum_users_migrations WHERE version = ?")
                    .bind(migration.version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            for statement in migration.statements {
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("INSERT INTO axum_users_migrations (version, applied_at) VALUES (?, ?)")
                .bind(migration.version)
                .bind(now_unix())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            applied += 1;
        }
        Ok(applied)
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    async fn user_where(
        &self,
        sql: &'static str,
        key: IdValue,
    ) -> Result<Option<User<Id, F>>, StoreError> {
        let query = sqlx::query(sql);
        let row = bind_id(query, key)
            .fetch_optional(&self.pool)
            .await
            .map_err(store_error)?;
        row.map(|r| user_from_row(&r)).transpose()
    }
}

type Query<'a> = sqlx::query::Query<'a, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn bind_id(query: Query<'_>, id: IdValue) -> Query<'_> {
    match id {
        IdValue::Text(s) => query.bind(s),
        IdValue::Int(i) => query.bind(i),
    }
}

fn id_from_row<Id: SqlId>(row: &SqliteRow, column: &str) -> Result<Id, StoreError> {
    let value = match row.try_get::<i64, _>(column) {
        Ok(i) => IdValue::Int(i),
        Err(_) => IdValue::Text(row.try_get::<String, _>(column).map_err(store_error)?),
    };
    Id::from_value(value)
        .ok_or_else(|| StoreError::Backend(format!("column {column} holds no valid id").into()))
}

fn user_from_row<Id: SqlId, F: UserFields>(row: &SqliteRow) -> Result<User<Id, F>, StoreError> {
    let fields: String = row.try_get("fields").map_err(store_error)?;
    Ok(User {
        id: id_from_row(row, "id")?,
        email: row.try_get("email").map_err(store_error)?,
        hashed_password: PasswordHash(row.try_get("hashed_password").map_err(store_error)?),
        is_active: row.try_get("is_active").map_err(store_error)?,
        is_superuser: row.try_get("is_superuser").map_err(store_error)?,
        is_verified: row.try_get("is_verified").map_err(store_error)?,
        fields: serde_json::from_str(&fields).map_err(|e| StoreError::Backend(Box::new(e)))?,
    })
}

fn fields_json<F: UserFields>(fields: &F) -> Result<String, StoreError> {
    serde_json::to_string(fields).map_err(|e| StoreError::Backend(Box::new(e)))
}

impl<Id: SqlId, F: UserFields> UserStore for SqliteStore<Id, F> {
    type Id = Id;
    type Fields = F;

    async fn get(&self, id: &Id) -> Result<Option<User<Id, F>>, StoreError> {
        self.user_where("SELECT id, email, hashed_password, is_active, is_superuser, is_verified, fields FROM users WHERE id = ?", id.to_value())
            .await
    }

    async fn get_by_email(&self, email: &str) -> Result<Option<User<Id, F>>, StoreError> {
        self.user_where(
            "SELECT id, email, hashed_password, is_active, is_superuser, is_verified, fields FROM users WHERE email_key = ?",
            IdValue::Text(email_key(email)),
        )
        .await
    }

    async fn create(&self, user: NewUser<Id, F>) -> Result<User<Id, F>, StoreError> {
        let key = email_key(&user.email);
        let query = sqlx::query(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, is_verified, fields) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let query = match user.id.as_ref().map(SqlId::to_value) {
            Some(id) => bind_id(query, id),
            None => query.bind(None::<i64>),
        };
        query
            .bind(&user.email)
            .bind(&key)
            .bind(&user.hashed_password.0)
            .bind(user.is_active)
            .bind(user.is_superuser)
            .bind(user.is_verified)
            .bind(fields_json(&user.fields)?)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        self.get_by_email(&user.email)
            .await?
            .ok_or_else(|| StoreError::Backend("the inserted user was not found".into()))
    }

    async fn update(&self, user: &User<Id, F>) -> Result<User<Id, F>, StoreError> {
        let query = sqlx::query(
            "UPDATE users SET email = ?, email_key = ?, hashed_password = ?, is_active = ?, is_superuser = ?, \
             is_verified = ?, fields = ? WHERE id = ?",
        )
        .bind(&user.email)
        .bind(email_key(&user.email))
        .bind(&user.hashed_password.0)
        .bind(user.is_active)
        .bind(user.is_superuser)
        .bind(user.is_verified)
        .bind(fields_json(&user.fields)?);
        bind_id(query, user.id.to_value())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(user.clone())
    }

    async fn replace_password(
        &self,
        id: &Id,
        expected: &PasswordHash,
        new: &PasswordHash,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE users SET hashed_password = ? WHERE hashed_password = ? AND id = ?",
        )
        .bind(new.0.clone())
        .bind(expected.0.clone());
        let done = bind_id(query, id.to_value())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&self, id: &Id) -> Result<bool, StoreError> {
        let query = sqlx::query("DELETE FROM users WHERE id = ?");
        let done = bind_id(query, id.to_value())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

fn oauth_from_row<Id: SqlId>(row: &SqliteRow) -> Result<OAuthAccount<Id>, StoreError> {
    Ok(OAuthAccount {
        id: id_from_row(row, "id")?,
        user_id: id_from_row(row, "user_id")?,
        oauth_name: row.try_get("oauth_name").map_err(store_error)?,
        access_token: Secret::new(
            row.try_get::<String, _>("access_token")
                .map_err(store_error)?,
        ),
        expires_at: row.try_get("expires_at").map_err(store_error)?,
        refresh_token: row
            .try_get::<Option<String>, _>("refresh_token")
            .map_err(store_error)?
            .map(Secret::new),
        account_id: row.try_get("account_id").map_err(store_error)?,
        account_email: row.try_get("account_email").map_err(store_error)?,
    })
}

impl<Id: SqlId, F: UserFields> OAuthAccountStore for SqliteStore<Id, F> {
    async fn get_by_oauth_account(
        &self,
        oauth_name: &str,
        account_id: &str,
    ) -> Result<Option<User<Id, F>>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.hashed_password, u.is_active, u.is_superuser, u.is_verified, u.fields \
             FROM users u JOIN oauth_accounts o ON o.user_id = u.id WHERE o.oauth_name = ? AND o.account_id = ?",
        )
        .bind(oauth_name.to_owned())
        .bind(account_id.to_owned())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|r| user_from_row(&r)).transpose()
    }

    async fn list_oauth_accounts(&self, user_id: &Id) -> Result<Vec<OAuthAccount<Id>>, StoreError> {
        let query = sqlx::query(
            "SELECT id, user_id, oauth_name, access_token, expires_at, refresh_token, account_id, account_email \
             FROM oauth_accounts WHERE user_id = ? ORDER BY oauth_name, account_id",
        );
        let rows = bind_id(query, user_id.to_value())
            .fetch_all(&self.pool)
            .await
            .map_err(store_error)?;
        rows.iter().map(oauth_from_row).collect()
    }

    async fn add_oauth_account(
        &self,
        user_id: &Id,
        account: NewOAuthAccount,
    ) -> Result<OAuthAccount<Id>, StoreError> {
        let query = sqlx::query(
            "INSERT INTO oauth_accounts (id, user_id, oauth_name, access_token, expires_at, refresh_token, account_id, account_email) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        );
        let query = match Id::generate().map(|id| id.to_value()) {
            Some(id) => bind_id(query, id),
            None => query.bind(None::<i64>),
        };
        bind_id(query, user_id.to_value())
            .bind(account.oauth_name.clone())
            .bind(account.access_token.expose().to_owned())
            .bind(account.expires_at)
            .bind(
                account
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose().to_owned()),
            )
            .bind(account.account_id.clone())
            .bind(account.account_email.clone())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        let row = sqlx::query(
            "SELECT id, user_id, oauth_name, access_token, expires_at, refresh_token, account_id, account_email \
             FROM oauth_accounts WHERE oauth_name = ? AND account_id = ?",
        )
        .bind(account.oauth_name)
        .bind(account.account_id)
        .fetch_one(&self.pool)
        .await
        .map_err(store_error)?;
        oauth_from_row(&row)
    }

    async fn update_oauth_account(&self, account: &OAuthAccount<Id>) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE oauth_accounts SET access_token = ?, expires_at = ?, refresh_token = ?, account_email = ? WHERE id = ?",
        )
        .bind(account.access_token.expose().to_owned())
        .bind(account.expires_at)
        .bind(account.refresh_token.as_ref().map(|t| t.expose().to_owned()))
        .bind(account.account_email.clone());
        bind_id(query, account.id.to_value())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn delete_oauth_account(
        &self,
        user_id: &Id,
        account_id: &Id,
    ) -> Result<bool, StoreError> {
        let query = bind_id(
            sqlx::query("DELETE FROM oauth_accounts WHERE id = ? AND user_id = ?"),
            account_id.to_value(),
        );
        let done = bind_id(query, user_id.to_value())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(done.rows_affected() == 1)
    }
}

impl<Id: SqlId, F: UserFields> AccessTokenStore for SqliteStore<Id, F> {
    type Id = Id;

    async fn create_token(
        &self,
        token_hash: &str,
        user_id: &Id,
        created_at: i64,
    ) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO access_tokens (token_hash, user_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash.to_owned());
        bind_id(query, user_id.to_value())
            .bind(created_at)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn find_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> Result<Option<Id>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id FROM access_tokens WHERE token_hash = ? AND created_at >= ?",
        )
        .bind(token_hash.to_owned())
        .bind(not_before.unwrap_or(i64::MIN))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(|r| id_from_row(&r, "user_id")).transpose()
    }

    async fn delete_token(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM access_tokens WHERE token_hash = ?")
            .bind(token_hash.to_owned())
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
