//! The columns the store needs, found by name in the entities it is given.
//!
//! Finding them once, when the store is built, turns an entity that renamed or dropped one
//! into a start-up error that names it, instead of a failure on the first request.

use sea_orm::{EntityTrait, IdenStatic, Iterable};

use crate::SetupError;

fn find<E: EntityTrait>(name: &'static str) -> Result<E::Column, SetupError> {
    E::Column::iter()
        .find(|column| column.as_str() == name)
        .ok_or_else(|| SetupError::MissingColumn {
            table: E::default().table_name().to_owned(),
            column: name,
        })
}

/// Declares a struct of named columns of one entity, and the function that finds them.
macro_rules! columns {
    ($(#[$doc:meta])* $name:ident { $($field:ident),+ $(,)? }) => {
        $(#[$doc])*
        pub(crate) struct $name<E: EntityTrait> {
            $(pub(crate) $field: E::Column,)+
        }

        impl<E: EntityTrait> Clone for $name<E> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<E: EntityTrait> Copy for $name<E> {}

        impl<E: EntityTrait> $name<E> {
            /// Finds every column by name.
            pub(crate) fn find() -> Result<Self, SetupError> {
                Ok(Self { $($field: find::<E>(stringify!($field))?,)+ })
            }
        }
    };
}

columns!(
    /// The user entity's columns.
    UserColumns { id, email, email_key, hashed_password, is_active, is_superuser, is_verified, email_epoch }
);

columns!(
    /// The OAuth account entity's columns.
    OAuthColumns { id, user_id, oauth_name, access_token, expires_at, refresh_token, account_id, account_email }
);

columns!(
    /// The access token entity's columns.
    TokenColumns { token, user_id, created_at, session_id }
);

columns!(
    /// The session entity's columns.
    SessionColumns {
        id, user_id, created_at, last_seen_at, expires_at, ip, user_agent, method, backend,
        refresh_hash, previous_refresh_hash, rotated_at
    }
);

columns!(
    /// The rotated refresh-token entity's columns.
    RotatedColumns { token_hash, session_id }
);
