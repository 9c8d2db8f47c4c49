//! The columns the store needs, found by name in the entities it is given.
//!
//! Finding them once, when the store is built, turns an entity that renamed or dropped one
//! into a start-up error that names it, instead of a failure on the first request.

use sea_orm::{ColumnTrait, ColumnType, EntityTrait, IdenStatic, Iterable};

use crate::{MfaEntities, SetupError};

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

columns!(
    /// The TOTP factor entity's columns.
    TotpColumns { user_id, sealed_secret, confirmed, last_step, created_at }
);

columns!(
    /// The recovery code entity's columns.
    RecoveryColumns { code_hash, user_id }
);

columns!(
    /// The pending second-factor sign-in entity's columns.
    ChallengeColumns { token_hash, user_id, backend, method, expires_at, failures }
);

/// The columns of the three second-factor entities.
pub(crate) struct MfaColumns<M: MfaEntities> {
    pub(crate) totp: TotpColumns<M::Totp>,
    pub(crate) codes: RecoveryColumns<M::RecoveryCode>,
    pub(crate) challenges: ChallengeColumns<M::Challenge>,
}

impl<M: MfaEntities> Clone for MfaColumns<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: MfaEntities> Copy for MfaColumns<M> {}

impl<M: MfaEntities> MfaColumns<M> {
    /// Every column of the three, by name.
    pub(crate) fn find() -> Result<Self, SetupError> {
        Ok(Self {
            totp: TotpColumns::find()?,
            codes: RecoveryColumns::find()?,
            challenges: ChallengeColumns::find()?,
        })
    }
}

/// The user entity's times, which the users directory needs: `created_at`, `updated_at` and
/// `last_login_at`, each a BIGINT (`i64`, the last an `Option<i64>`).
pub(crate) struct TimeColumns<E: EntityTrait> {
    pub(crate) created_at: E::Column,
    pub(crate) updated_at: E::Column,
    pub(crate) last_login_at: E::Column,
}

impl<E: EntityTrait> Clone for TimeColumns<E> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<E: EntityTrait> Copy for TimeColumns<E> {}

impl<E: EntityTrait> TimeColumns<E> {
    /// The three columns when the entity has all of them as BIGINTs; `None` otherwise (an
    /// application's entity from before them, or with columns of those names of its own
    /// kind): the store then keeps no times and has no directory.
    pub(crate) fn find_optional() -> Option<Self> {
        let unix = |name: &'static str| {
            let column = find::<E>(name).ok()?;
            matches!(column.def().get_column_type(), ColumnType::BigInteger).then_some(column)
        };
        Some(Self {
            created_at: unix("created_at")?,
            updated_at: unix("updated_at")?,
            last_login_at: unix("last_login_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity;

    #[test]
    fn the_times_are_found_only_when_all_three_are_there() {
        assert!(TimeColumns::<entity::user::Entity>::find_optional().is_some());
        assert!(TimeColumns::<entity::integer::user::Entity>::find_optional().is_some());
        assert!(
            TimeColumns::<entity::session::Entity>::find_optional().is_none(),
            "`created_at` alone is no directory"
        );
    }
}
