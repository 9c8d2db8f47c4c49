//! Maps driver errors to [`StoreError`]: constraint violations, outages, the rest.

use axum_users::StoreError;

/// A driver error as a store error: the e-mail unique constraint becomes
/// [`StoreError::DuplicateEmail`], connection trouble [`StoreError::Unavailable`].
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains("email") => {
            StoreError::DuplicateEmail
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => StoreError::Unavailable(Box::new(e)),
        _ => StoreError::Backend(Box::new(e)),
    }
}
