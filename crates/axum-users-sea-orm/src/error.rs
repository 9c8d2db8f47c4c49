//! Errors: setting the store up, and driver errors as the core's [`StoreError`].

use axum_users::StoreError;
use sea_orm::{DbErr, SqlErr};

/// Why a store could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The database could not be reached.
    #[error("cannot connect to the database: {0}")]
    Database(#[from] DbErr),
    /// An entity lacks a column the store reads or writes by name.
    #[error("the entity of table `{table}` has no column `{column}`, which the store needs")]
    MissingColumn {
        /// The entity's table.
        table: String,
        /// The missing column.
        column: &'static str,
    },
}

/// A driver error as a store error: a unique violation that names the e-mail key becomes
/// [`StoreError::DuplicateEmail`], one that names the provider account
/// [`StoreError::DuplicateOAuthAccount`], connection trouble [`StoreError::Unavailable`].
pub(crate) fn store_error(e: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = e.sql_err()
        && let Some(duplicate) = duplicate_of(&message)
    {
        return duplicate;
    }
    if is_outage(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// Which unique constraint a violation names. PostgreSQL names the constraint, SQLite the
/// columns, MySQL/MariaDB the key after the duplicate value (`Duplicate entry '...' for key
/// '...'`), so only what follows ` for key ` is read: a value is the user's, not a name.
fn duplicate_of(message: &str) -> Option<StoreError> {
    let names = message.rsplit(" for key ").next().unwrap_or(message);
    if names.contains("email") {
        Some(StoreError::DuplicateEmail)
    } else if names.contains("oauth") || names.contains("account_id") {
        Some(StoreError::DuplicateOAuthAccount)
    } else {
        None
    }
}

fn is_outage(e: &DbErr) -> bool {
    match e {
        DbErr::Conn(_) | DbErr::ConnectionAcquire(_) => true,
        #[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(inner))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(inner)) => matches!(
            **inner,
            sea_orm::sqlx::Error::Io(_)
                | sea_orm::sqlx::Error::PoolTimedOut
                | sea_orm::sqlx::Error::PoolClosed
                | sea_orm::sqlx::Error::WorkerCrashed
                | sea_orm::sqlx::Error::Protocol(_)
        ),
        _ => false,
    }
}

/// A value that does not fit the Rust type the store expects.
pub(crate) fn bad_column(column: &str) -> StoreError {
    StoreError::Backend(
        format!("column `{column}` does not hold a value of the expected type").into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{ConnAcquireErr, RuntimeErr};

    #[test]
    fn outages_are_unavailable_and_the_rest_backend_failures() {
        let timeout = store_error(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout));
        assert!(matches!(timeout, StoreError::Unavailable(_)), "{timeout:?}");
        let refused = store_error(DbErr::Conn(RuntimeErr::Internal("refused".into())));
        assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
        let other = store_error(DbErr::Custom("boom".into()));
        assert!(matches!(other, StoreError::Backend(_)), "{other:?}");
    }

    #[test]
    fn unique_violations_are_told_apart_by_the_constraint_they_name() {
        let email = [
            r#"duplicate key value violates unique constraint "user_email_key_unique""#,
            "UNIQUE constraint failed: member.email_key",
            "Duplicate entry 'oauth-account_id@example.com' for key 'user_email_key_unique'",
        ];
        for message in email {
            assert!(
                matches!(duplicate_of(message), Some(StoreError::DuplicateEmail)),
                "{message}"
            );
        }
        let provider = [
            r#"duplicate key value violates unique constraint "oauth_account_provider_unique""#,
            "UNIQUE constraint failed: oauth_account.oauth_name, oauth_account.account_id",
            "Duplicate entry 'google-email' for key 'oauth_account_provider_unique'",
        ];
        for message in provider {
            assert!(
                matches!(
                    duplicate_of(message),
                    Some(StoreError::DuplicateOAuthAccount)
                ),
                "{message}"
            );
        }
        assert!(duplicate_of("UNIQUE constraint failed: access_token.token").is_none());
    }

    #[test]
    fn missing_columns_name_table_and_column() {
        let error = SetupError::MissingColumn {
            table: "member".into(),
            column: "email_key",
        };
        assert_eq!(
            error.to_string(),
            "the entity of table `member` has no column `email_key`, which the store needs"
        );
    }
}
