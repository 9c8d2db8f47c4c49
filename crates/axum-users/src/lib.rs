//! # axum-users
//!
//! Ready-to-use user management for axum: registration, login and logout through pluggable
//! backends (Bearer or cookie transport x JWT or database tokens), forgot/reset password,
//! e-mail verification, `/users/me` plus superuser `/users/{id}`, and sign-in with OAuth
//! providers, wire-compatible with FastAPI Users v15. This page walks the first hour; the
//! repository's `examples/first-hour` is the same, complete, in one file with its HTTP test.
//!
//! ## 1. A store
//!
//! A store keeps users, OAuth accounts and tokens, and fixes two types: the id (`uuid::Uuid`
//! or `i64`) and the application's own fields ([`UserFields`], [`NoFields`] for none).
//! `axum-users-sqlx` has [`SqlStore<Id, F>`](https://docs.rs/axum-users-sqlx) for SQLite,
//! PostgreSQL and MySQL/MariaDB (the custom fields in one JSON column), `axum-users-sea-orm`
//! a SeaORM store; [`MemoryStore`] is for tests and these examples.
//!
//! ## 2. The builder, the routers, the extractors
//!
//! ```
//! use axum::{Router, routing::get};
//! use axum_users::{ActiveUser, AxumUsers, MemoryStore};
//!
//! # fn main() -> Result<(), axum_users::BuildError> {
//! let store: MemoryStore = MemoryStore::new(); // UUID ids, no custom fields
//! let users = AxumUsers::builder(store, "a secret of at least 32 bytes, from config!").build()?;
//! let app: Router = Router::new()
//!     .route("/hello", get(|ActiveUser(user): ActiveUser<_, _>| async move { format!("Hello {}", user.email) }))
//!     .with_state(users.clone()) // the extractors read the users from the router state
//!     .merge(users.router()); // every route, OAuth included
//! # let _ = app; Ok(()) }
//! ```
//!
//! - [`AxumUsers::builder`] takes the store and the signing secret (32 bytes or more; sub-keys
//!   per purpose are derived from it). It starts with two backends: `jwt` (Bearer,
//!   `POST /auth/jwt/login`) and `cookie` (`POST /auth/cookie/login`, cookie
//!   `fastapiusersauth`); add others with [`AxumUsersBuilder::backend`] or drop them with
//!   [`AxumUsersBuilder::without_default_backends`].
//! - [`AxumUsers::router`] mounts every route at FastAPI Users' paths; `register_router`,
//!   `auth_router(name)`, `users_router`, `oauth_router`, ... mount pieces by hand.
//! - The extractors [`MaybeUser`], [`CurrentUser`], [`ActiveUser`], [`VerifiedUser`] and
//!   [`Superuser`] answer 401/403 as `current_user(...)` does. They read the users from the
//!   router's state (the [`AxumUsers`] value, or a state implementing [`UsersState`]), so
//!   their types are checked against the store's at compile time.
//!
//! ## 3. Ids and custom fields
//!
//! The extractors take the store's id and fields types (`VerifiedUser<i64, Profile>`; `<_, _>`
//! in a closure lets the router's state fill them in). They have no defaults, so forgetting
//! them, or writing other types than the store's, does not compile (see [`extract`] for the
//! messages):
//!
//! ```
//! use axum::{Router, routing::get};
//! use axum_users::{AxumUsers, MemoryStore, UserFields, VerifiedUser};
//! use serde::{Deserialize, Serialize};
//!
//! /// Returned with the user, set at registration, changed by `PATCH /users/me`.
//! #[derive(Debug, Clone, Default, Serialize, Deserialize)]
//! struct Profile {
//!     #[serde(default)]
//!     display_name: Option<String>,
//! }
//!
//! impl UserFields for Profile {
//!     type Update = Profile; // what a PATCH may send
//!     fn apply(&mut self, update: Profile) {
//!         if update.display_name.is_some() {
//!             self.display_name = update.display_name;
//!         }
//!     }
//! }
//!
//! async fn hello(VerifiedUser(user): VerifiedUser<i64, Profile>) -> String {
//!     format!("Hello {}", user.fields.display_name.unwrap_or(user.email))
//! }
//!
//! # fn main() -> Result<(), axum_users::BuildError> {
//! let store: MemoryStore<i64, Profile> = MemoryStore::new();
//! let users = AxumUsers::builder(store, "a secret of at least 32 bytes, from config!").build()?;
//! let app: Router = Router::new()
//!     .route("/hello", get(hello))
//!     .with_state(users.clone())
//!     .merge(users.router());
//! # let _ = app; Ok(()) }
//! ```
//!
//! [`UserFields::drop_privileged`] keeps fields only a superuser may change; with the
//! `openapi` feature `UserFields::openapi_fields` describes them in the document.
//!
//! ## 4. Hooks: mails, passwords, provider profiles
//!
//! [`UserHooks`] is the application's say; every method has a default. The mails are hooks:
//! `on_after_forgot_password` and `on_after_request_verify` get the token to send.
//!
//! ```
//! use axum_users::{MemoryStore, NoFields, OAuthProfile, User, UserHooks};
//! use http::request::Parts;
//!
//! struct Mail;
//!
//! impl UserHooks<i64, NoFields> for Mail {
//!     async fn on_after_request_verify(&self, user: &User<i64>, token: &str, _: Option<&Parts>) {
//!         println!("verify {}: {token}", user.email); // a real application mails a link
//!     }
//! }
//!
//! # fn main() -> Result<(), axum_users::BuildError> {
//! let users = axum_users::AxumUsers::builder(MemoryStore::<i64>::new(), "a secret of at least 32 bytes, from config!")
//!     .hooks(Mail)
//!     .send_verification_on_register(true) // off by default, as in FastAPI Users
//!     .build()?;
//! # let _ = users; Ok(()) }
//! ```
//!
//! Forgot-password and request-verify-token answer 202 once their mail hook has returned (so a
//! hook that writes to an outbox has written before the answer), and at the same time whether
//! the address has an account or not ([`Defences::mail_answer_floor`]); the verification mail
//! of a registration runs after the answer, and a test awaits it with
//! [`AxumUsers::background_idle`] before reading the token. `validate_password` refuses weak passwords; `on_oauth_profile` fills the
//! application's fields from a provider's profile (name, avatar, claims) on first sign-in and on
//! link; `before_login`, `second_factor` and `on_security_event` are the sign-in seams.
//!
//! ## 5. OAuth
//!
//! With the `oauth` feature (on by default): `.public_url("https://api.example.com")` and
//! `.oauth(OAuthClient::new(Arc::new(provider)))` per provider, from [`oauth`] (`GitHub::new`,
//! `Google::new`, ..., `OpenIdConnectConfig::new(issuer, ..).discover()`). Every built-in
//! provider takes `.with_base_url(&url)` (a self-hosted GitLab, or a fake on loopback in
//! tests; [`oauth::Url`] is re-exported). The repository's `docs/oauth.md` lists every
//! constructor and override, the policy on e-mails, and how a browser links an account with
//! each transport.
//!
//! ## 6. Local development
//!
//! - The auth cookie is `Secure` by default; browsers keep a `Secure` cookie from plain HTTP
//!   only on `localhost`. Turn it off there only:
//!   `.cookie(CookieSettings::auth().with_secure(false))` when the public URL is
//!   `http://localhost:...`.
//! - Refusals are answers with a stable `{"detail": CODE}` ([`ErrorCode`]); failures of the
//!   store or of a hook's mail are logged with `tracing` (install a subscriber, e.g.
//!   `tracing-subscriber`, to see them).
//! - `cargo doc --no-deps -p axum-users --open` builds this guide locally.

mod app;
mod audit;
pub mod auth;
mod background;
mod body;
mod client_ip;
mod directory;
mod email;
mod email_change;
mod error;
mod error_code;
pub mod extract;
mod hooks;
mod keys;
mod limits;
mod login;
mod mail_answer;
mod manager;
mod memory;
mod mfa;
mod model;
mod oauth_manager;
#[cfg(feature = "openapi")]
mod openapi;
mod outbox;
mod passkeys;
mod password;
mod route_state;
mod routes;
mod secret;
mod sessions;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod tokens;
mod webhooks;

pub use app::{AxumUsers, AxumUsersBuilder, BuildError, RouterStore};
pub use audit::{
    AUDIT_EVENT_TYPES, AuditCursor, AuditEvent, AuditPage, AuditQuery, AuditRecord, AuditStore,
    AuditStoreRef, LoginFailure,
};
pub use auth::{
    AuthBackend, CookieSettings, DatabaseStrategy, IssuedToken, JwtStrategy, Requirements,
    Strategy, StrategyError, TokenOwner, Transport,
};
/// The OAuth2 / OpenID Connect provider clients.
#[cfg(feature = "oauth")]
pub use axum_users_oauth as oauth;
pub use client_ip::{ClientIpPolicy, ForwardedHeader, InvalidIpNet, IpNet, ip_bucket};
pub use directory::{
    DEFAULT_PAGE, MAX_PAGE, UserCursor, UserDirectory, UserDirectoryRef, UserPage, UserQuery,
    UserSort, UserTimes, format_time, parse_time,
};
pub use email::{InvalidEmail, email_key, normalize_email};
pub use email_change::{EmailChange, EmailChangeSettings};
pub use error::{ApiError, ValidationIssue};
pub use error_code::ErrorCode;
pub use extract::{ActiveUser, CurrentUser, MaybeUser, Superuser, UsersState, VerifiedUser};
pub use hooks::{
    InvalidPassword, LoginAttempt, LoginRefused, NewDevice, NoHooks, PasswordOwner, SecondFactor,
    SecondFactorChange, SecurityEvent, SignInMethod, UserHooks,
};
pub use limits::{
    CounterKeys, Defences, LimitError, LimitFuture, LimitedRoute, Limiter, LoginThrottle,
    MemoryLimiter, RateLimits, RouteLimits, Rule, account_key,
};
pub use login::LoginOutcome;
pub use manager::{
    LoginRules, ManagerError, Privilege, TokenSettings, UserCreate, UserManager, UserOf, UserUpdate,
};
pub use memory::MemoryStore;
pub use mfa::{
    MAX_MFA_FAILURES, MFA_TOKEN_LIFETIME, MfaChallenge, MfaProof, MfaRequired, MfaSettings,
    MfaStatus, MfaStore, MfaStoreRef, RECOVERY_CODES, SecondFactorAnswer, TotpEnrolment,
    TotpRecord,
};
pub use model::{
    NewUser, NoFields, OAuthAccount, PasswordHash, PublicUser, User, UserFields, UserId,
};
pub use oauth_manager::{OAuthPolicy, OAuthProfile, OAuthSignIn};
#[cfg(feature = "openapi")]
pub use openapi::FieldSchema;
pub use outbox::{MailSeal, NewOutboxMessage, OutboxMessage, OutboxStatus, OutboxStore};
pub use passkeys::{
    MAX_PASSKEY_NAME, MAX_PASSKEYS, PASSKEY_CHALLENGE_LIFETIME, PasskeyCeremony, PasskeyChallenge,
    PasskeyConfigError, PasskeyInfo, PasskeyRecord, PasskeyRegistered, PasskeyRemoval,
    PasskeySettings, PasskeyStore, PasskeyStoreRef,
};
#[cfg(feature = "breached-passwords")]
pub use password::BreachedSetupError;
pub use password::{
    Argon2Params, BreachedPasswords, HasherLimits, HasherStats, PasswordError, PasswordHasher,
    PasswordPolicy, PasswordRefusal, Verified,
};
pub use route_state::SecurityPolicy;
#[cfg(feature = "oauth")]
pub use routes::oauth::OAuthClient;
pub use secret::{Secret, constant_time_eq, hash_token, random_token};
pub use sessions::{
    CurrentSession, MAX_REUSE_GRACE, Pruned, RefreshState, RevokeReason, Session, SessionSettings,
};
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
pub use webhooks::{
    EventFilter, MAX_ENDPOINT_NAME, WebhookConfigError, WebhookRoutes, WebhookSecret,
    webhook_headers, webhook_payload,
};
