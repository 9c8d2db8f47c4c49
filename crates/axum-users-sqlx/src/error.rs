//! Maps driver errors to [`StoreError`]: constraint violations, outages, the rest.

use axum_users::StoreError;
use sqlx::error::DatabaseError;

/// The name of the unique constraint on the lower-cased e-mail address, and the columns SQLite
/// names instead.
const EMAIL_CONSTRAINT: (&str, &str) = ("users_email_key_unique", "users.email_key");

/// The unique constraint on a provider account, and its columns as SQLite names them.
const PROVIDER_CONSTRAINT: (&str, &str) = (
    "oauth_accounts_provider_unique",
    "oauth_accounts.oauth_name, oauth_accounts.account_id",
);

/// A driver error as a store error: the e-mail and provider-account unique constraints become
/// [`StoreError::DuplicateEmail`] and [`StoreError::DuplicateOAuthAccount`], connection
/// trouble [`StoreError::Unavailable`].
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db)
            if db.is_unique_violation() && is_constraint(db.as_ref(), EMAIL_CONSTRAINT) =>
        {
            StoreError::DuplicateEmail
        }
        sqlx::Error::Database(db)
            if db.is_unique_violation() && is_constraint(db.as_ref(), PROVIDER_CONSTRAINT) =>
        {
            StoreError::DuplicateOAuthAccount
        }
        sqlx::Error::Database(db) if is_outage(db.as_ref()) => StoreError::Unavailable(Box::new(e)),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}

/// Whether a unique violation is the one of `(name, sqlite_columns)`. PostgreSQL names the
/// constraint; MySQL/MariaDB end the message with the key's name (`... for key
/// 'users_email_key_unique'`, MySQL 8 prefixes the table); SQLite names the columns
/// (`UNIQUE constraint failed: users.email_key`).
fn is_constraint(db: &dyn DatabaseError, (name, sqlite_columns): (&str, &str)) -> bool {
    if let Some(constraint) = db.constraint() {
        return constraint == name;
    }
    let message = db.message();
    message.ends_with(&format!("{name}'")) || message.ends_with(sqlite_columns)
}

/// Errors that say the server is going away, starting, overloaded or locked, not that the
/// statement is wrong: worth a retry later.
fn is_outage(db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    // PostgreSQL SQLSTATEs, also used by MySQL/MariaDB: 08xxx connection exceptions (MySQL
    // 1053 server shutdown and 1040 too many connections are 08S01 and 08004), 53300 too many
    // connections, 57P01-57P03 shutdown and start-up, HYT00 timeout.
    if code.starts_with("08") || matches!(&*code, "53300" | "57P01" | "57P02" | "57P03" | "HYT00") {
        return true;
    }
    // SQLite result codes (plain numbers, never five characters like a SQLSTATE):
    // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes.
    code.len() < 5 && matches!(code.parse::<i32>().map(|c| c & 0xff), Ok(5 | 6))
}
