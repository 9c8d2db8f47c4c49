//! # axum-users
//!
//! Ready-to-use user management for axum: registration, login and logout through pluggable
//! backends (Bearer or cookie transport x JWT or database tokens), forgot/reset password,
//! e-mail verification, and `/users/me` plus superuser `/users/{id}`, wire-compatible with
//! FastAPI Users v15.
//!
//! Build an [`AxumUsers`] over a store (see `axum-users-sqlx`), mount [`AxumUsers::router`],
//! add [`AxumUsers::layer`], and read the current user with [`ActiveUser`] and friends.
//!
//! ```no_run
//! # async fn run(store: impl axum_users::RouterStore<Id = uuid::Uuid, Fields = axum_users::NoFields>) {
//! use axum::{Router, routing::get};
//! use axum_users::{ActiveUser, AxumUsers};
//!
//! let users = AxumUsers::builder(store, "a secret of at least 32 bytes, from config!").build().unwrap();
//! let app: Router = Router::new()
//!     .route("/hello", get(|ActiveUser(user): ActiveUser| async move { format!("Hello {}", user.email) }))
//!     .merge(users.router())
//!     .layer(users.layer());
//! # }
//! ```

mod app;
pub mod auth;
mod body;
mod email;
mod error;
mod error_code;
mod extract;
mod hooks;
mod keys;
mod login;
mod manager;
mod memory;
mod model;
mod oauth_manager;
#[cfg(feature = "openapi")]
mod openapi;
mod password;
mod routes;
mod secret;
mod sessions;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tokens;

pub use app::{AxumUsers, AxumUsersBuilder, BuildError, RouterStore, SecurityPolicy};
pub use auth::{
    AuthBackend, CookieSettings, DatabaseStrategy, IssuedToken, JwtStrategy, Requirements,
    Strategy, StrategyError, TokenOwner, Transport,
};
/// The OAuth2 / OpenID Connect provider clients.
#[cfg(feature = "oauth")]
pub use axum_users_oauth as oauth;
pub use email::{InvalidEmail, email_key, normalize_email};
pub use error::{ApiError, ValidationIssue};
pub use error_code::ErrorCode;
pub use extract::{ActiveUser, CurrentUser, MaybeUser, Superuser, VerifiedUser};
pub use hooks::{
    InvalidPassword, LoginAttempt, LoginRefused, NoHooks, PasswordOwner, SecondFactor,
    SecurityEvent, SignInMethod, UserHooks,
};
pub use login::LoginOutcome;
pub use manager::{
    LoginRules, ManagerError, Privilege, TokenSettings, UserCreate, UserManager, UserOf, UserUpdate,
};
pub use memory::MemoryStore;
pub use model::{
    NewUser, NoFields, OAuthAccount, PasswordHash, PublicUser, User, UserFields, UserId,
};
pub use oauth_manager::{OAuthPolicy, OAuthSignIn};
#[cfg(feature = "openapi")]
pub use openapi::FieldSchema;
pub use password::{
    Argon2Params, HasherLimits, HasherStats, PasswordError, PasswordHasher, Verified,
};
#[cfg(feature = "oauth")]
pub use routes::oauth::OAuthClient;
pub use secret::{Secret, constant_time_eq, hash_token, random_token};
pub use sessions::{MAX_REUSE_GRACE, Pruned, RefreshState, RevokeReason, Session, SessionSettings};
pub use store::{
    AccessTokenStore, BoxError, NewOAuthAccount, OAuthAccountStore, SessionStore, SessionStoreRef,
    StoreError, TokenSession, Unlink, UserChanges, UserSession, UserStore,
};
pub use tokens::{
    AUTH_AUDIENCE, JwtCodec, LOGIN_CODE_AUDIENCE, OAUTH_STATE_AUDIENCE, RESET_AUDIENCE, TokenError,
    VERIFY_AUDIENCE, now_unix,
};
/// utoipa, whose [`utoipa::openapi::OpenApi`] [`AxumUsers::openapi`] returns.
#[cfg(feature = "openapi")]
pub use utoipa;
