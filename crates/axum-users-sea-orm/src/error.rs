//! Errors: setting the store up, and driver errors as the core's [`StoreError`].

use axum_users::StoreError;
use sea_orm::{DbErr, SqlErr};

/// Why a store could not be set up.
#[derive(Debug, thiserror::Error)]
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
/// [`StoreError::DuplicateEmail`], connection trouble [`StoreError::Unavailable`].
pub(crate) fn store_error(e: DbErr) -> StoreError {
    if let Some(SqlErr::UniqueConstraintViolation(message)) = e.sql_err()
        && message.contains("email")
    {
        return StoreError::DuplicateEmail;
    }
    if is_outage(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
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
