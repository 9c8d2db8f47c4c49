//! Typed extractors for the current user, for the application's own handlers.
//!
//! They need [`crate::AxumUsers::layer`] on the router. Each answers as FastAPI Users'
//! `current_user(...)` does: 401 without a valid token, 401 for an inactive user where activity
//! is required, 403 for a missing verification or superuser flag.

use axum::extract::FromRequestParts;
use http::request::Parts;
use uuid::Uuid;

use crate::auth::{AuthExtension, Requirements};
use crate::error::ApiError;
use crate::model::{NoFields, User, UserFields, UserId};

fn extension<Id: UserId, F: UserFields>(parts: &Parts) -> Result<AuthExtension<Id, F>, ApiError> {
    parts
        .extensions
        .get::<AuthExtension<Id, F>>()
        .cloned()
        .ok_or_else(|| {
            ApiError::internal(&format!(
                "no axum-users layer for users of id type `{}` and fields `{}`: add \
             `.layer(users.layer())` to the router, and write the extractor with the store's \
             types, e.g. `ActiveUser<{}, {}>`",
                std::any::type_name::<Id>(),
                std::any::type_name::<F>(),
                std::any::type_name::<Id>(),
                std::any::type_name::<F>(),
            ))
        })
}

async fn current<Id: UserId, F: UserFields>(
    parts: &Parts,
    requirements: Requirements,
) -> Result<User<Id, F>, ApiError> {
    Ok(extension::<Id, F>(parts)?
        .require(parts, requirements)
        .await?
        .user)
}

macro_rules! user_extractor {
    ($(#[$doc:meta])* $name:ident, $req:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<Id = Uuid, F = NoFields>(pub User<Id, F>);

        impl<S: Send + Sync, Id: UserId, F: UserFields> FromRequestParts<S> for $name<Id, F> {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
                current(parts, $req).await.map($name)
            }
        }
    };
}

user_extractor!(
    /// Any authenticated user, active or not (`current_user()`).
    CurrentUser,
    Requirements::default()
);
user_extractor!(
    /// An active user (`current_user(active=True)`): the usual choice.
    ActiveUser,
    Requirements { active: true, ..Requirements::default() }
);
user_extractor!(
    /// An active, verified user (`current_user(active=True, verified=True)`).
    VerifiedUser,
    Requirements { active: true, verified: true, superuser: false }
);
user_extractor!(
    /// An active superuser (`current_user(active=True, superuser=True)`).
    Superuser,
    Requirements { active: true, verified: false, superuser: true }
);

/// The current user if there is one (`current_user(optional=True)`); never rejects but for a
/// storage outage (503).
#[derive(Debug, Clone)]
pub struct MaybeUser<Id = Uuid, F = NoFields>(pub Option<User<Id, F>>);

impl<S: Send + Sync, Id: UserId, F: UserFields> FromRequestParts<S> for MaybeUser<Id, F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let auth = extension::<Id, F>(parts)?;
        Ok(MaybeUser(auth.0.authenticate(parts).await?.map(|a| a.user)))
    }
}
