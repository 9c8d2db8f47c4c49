//! Typed extractors for the current user, for the application's own handlers.
//!
//! They read the router's state, which must be (or carry) the [`crate::AxumUsers`] value:
//! `Router::new().route("/hello", get(hello)).with_state(users.clone())`. The state fixes the
//! store's id and fields types, so an extractor written with other types is a compile error,
//! not a 500 at run time. Each answers as FastAPI Users' `current_user(...)` does: 401 without
//! a valid token, 401 for an inactive user where activity is required, 403 for a missing
//! verification or superuser flag.
//!
//! The extractors have no default types, so one written without them does not compile, and
//! rustc's message says what to write (``missing generics for struct `VerifiedUser` ... add
//! missing generic arguments: `VerifiedUser<Id, F>` ``):
//!
//! ```compile_fail,E0107
//! use axum::{Router, routing::get};
//! use axum_users::{AxumUsers, MemoryStore, VerifiedUser};
//!
//! let users = AxumUsers::builder(MemoryStore::<i64>::new(), "a secret of at least 32 bytes, from config!")
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/hello", get(|VerifiedUser(user): VerifiedUser| async move { user.email }))
//!     .with_state(users.clone());
//! ```
//!
//! Written with the store's types, or with `_` in a closure (the router's state fills them
//! in), it does:
//!
//! ```
//! use axum::{Router, routing::get};
//! use axum_users::{AxumUsers, MemoryStore, NoFields, VerifiedUser};
//!
//! let users = AxumUsers::builder(MemoryStore::<i64>::new(), "a secret of at least 32 bytes, from config!")
//!     .build()
//!     .unwrap();
//! async fn hello(VerifiedUser(user): VerifiedUser<i64, NoFields>) -> String {
//!     user.email
//! }
//! let app: Router = Router::new()
//!     .route("/hello", get(hello))
//!     .route("/bye", get(|VerifiedUser(user): VerifiedUser<_, _>| async move { user.email }))
//!     .with_state(users.clone())
//!     .merge(users.router());
//! ```
//!
//! Types that disagree with the store's do not compile either:
//!
//! ```compile_fail,E0277
//! use axum::{Router, routing::get};
//! use axum_users::{AxumUsers, MemoryStore, NoFields, VerifiedUser};
//!
//! let users = AxumUsers::builder(MemoryStore::<i64>::new(), "a secret of at least 32 bytes, from config!")
//!     .build()
//!     .unwrap();
//! let app: Router = Router::new()
//!     .route("/hello", get(|VerifiedUser(user): VerifiedUser<uuid::Uuid, NoFields>| async move { user.email }))
//!     .with_state(users.clone());
//! ```
//!
//! For that mistake rustc says only that the handler does not implement `Handler` (and
//! suggests `#[axum::debug_handler]`); with it on the handler (axum's `macros` feature) it
//! names the mismatch: ``type mismatch resolving `<MemoryStore<i64> as UserStore>::Id == Uuid` ...``.
//! For a router whose state holds no users (`Router<()>`), [`UsersState`]'s message says
//! ``the router's state `()` does not hold the users of an `axum_users::User<i64, NoFields>` store``,
//! with what to write.

use axum::extract::FromRequestParts;
use http::request::Parts;

use crate::app::{AxumUsers, RouterStore};
use crate::auth::{AuthExtension, Requirements};
use crate::error::ApiError;
use crate::hooks::UserHooks;
use crate::model::{User, UserFields, UserId};

/// A router state the extractors can find the users of one store in: the [`AxumUsers`] value
/// itself, or an application's state that holds it.
///
/// `Id` and `F` are the store's id and custom fields types, so an extractor written with
/// others does not compile. An application state implements it in one line:
///
/// ```
/// use axum_users::{AxumUsers, MemoryStore, NoFields, UsersState};
/// use axum_users::auth::AuthExtension;
///
/// #[derive(Clone)]
/// struct AppState {
///     users: AxumUsers<MemoryStore<i64>>,
///     greeting: &'static str,
/// }
///
/// impl UsersState<i64, NoFields> for AppState {
///     fn authenticator(&self) -> AuthExtension<i64, NoFields> {
///         self.users.authenticator()
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "the router's state `{Self}` does not hold the users of an `axum_users::User<{Id}, {F}>` store",
    label = "this extractor reads the users from the router's state",
    note = "write the extractor with the store's id and fields types, e.g. `VerifiedUser<i64, MyFields>` for a store of `i64` ids and `MyFields`",
    note = "give the router the `AxumUsers` value as state (`Router::new().route(..).with_state(users.clone())`), or implement `UsersState<Id, F>` for the application's state"
)]
pub trait UsersState<Id, F>: Send + Sync {
    /// The authenticator of the users' backends.
    fn authenticator(&self) -> AuthExtension<Id, F>;
}

impl<S: RouterStore, H: UserHooks<S::Id, S::Fields>> UsersState<S::Id, S::Fields>
    for AxumUsers<S, H>
{
    fn authenticator(&self) -> AuthExtension<S::Id, S::Fields> {
        self.inner.extension()
    }
}

async fn current<Id: UserId, F: UserFields>(
    auth: AuthExtension<Id, F>,
    parts: &Parts,
    requirements: Requirements,
) -> Result<User<Id, F>, ApiError> {
    Ok(auth.require(parts, requirements).await?.user)
}

macro_rules! user_extractor {
    ($(#[$doc:meta])* $name:ident, $req:expr) => {
        $(#[$doc])*
        ///
        #[doc = concat!(
            "Written with the store's id and fields types, e.g. `", stringify!($name),
            "<Uuid, NoFields>` or `", stringify!($name), "<i64, MyFields>` (`<_, _>` in a closure). ",
            "The router's state must implement [`UsersState`] for them."
        )]
        #[derive(Debug, Clone)]
        pub struct $name<Id, F>(pub User<Id, F>);

        impl<S: UsersState<Id, F>, Id: UserId, F: UserFields> FromRequestParts<S> for $name<Id, F> {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                current(state.authenticator(), parts, $req).await.map($name)
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
/// storage outage (503). Written with the store's types, as the other extractors.
#[derive(Debug, Clone)]
pub struct MaybeUser<Id, F>(pub Option<User<Id, F>>);

impl<S: UsersState<Id, F>, Id: UserId, F: UserFields> FromRequestParts<S> for MaybeUser<Id, F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = state.authenticator();
        Ok(MaybeUser(auth.0.authenticate(parts).await?.map(|a| a.user)))
    }
}
