//! # axum-users-sea-orm
//!
//! SeaORM stores for `axum-users`: the counterpart of FastAPI Users' ORM adapters. It ships base
//! entities ([`entity::user`], [`entity::oauth_account`], [`entity::access_token`],
//! [`entity::session`], [`entity::session_rotated_token`], the second factors'
//! [`entity::mfa_totp`], [`entity::mfa_recovery_code`] and [`entity::mfa_challenge`]) with UUID
//! keys, the same with integer keys ([`entity::integer`]), the [`entity::mail_outbox`], the
//! [`entity::audit_event`] log and the [`entity::webhook_outbox`], their schema as
//! `sea-orm-migration` migrations ([`migration`], feature `migration`, on by default), and
//! [`SeaOrmStore`], which implements the core's `UserStore`, `OAuthAccountStore`,
//! `AccessTokenStore`, `SessionStore`, `MfaStore`, `UserDirectory`, `AuditStore` and
//! `OutboxStore` over those entities or over an application's own (extra user columns become
//! the core's `UserFields`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum_users_sea_orm::SeaOrmStore;
//! use axum_users_sea_orm::migration::{Migrator, MigratorTrait};
//!
//! let db = sea_orm::Database::connect("sqlite://app.db?mode=rwc").await?;
//! Migrator::up(&db, None).await?;
//! let store: SeaOrmStore = SeaOrmStore::new(db)?;
//! let users = axum_users::AxumUsers::builder(store, std::env::var("APP_SECRET")?).build()?;
//! # let _ = users; Ok(()) }
//! ```
//!
//! The guide, `docs/sea-orm.md`, shows how to bring your own entities.

mod audit;
mod columns;
mod directory;
pub mod entity;
mod error;
mod mfa;
#[cfg(feature = "migration")]
pub mod migration;
mod outbox;
mod sessions;
mod store;
mod user_entity;
mod webhooks;

pub use error::SetupError;
pub use store::{IntegerStore, SeaOrmStore};
pub use user_entity::{MfaEntities, SeaOrmId, StoreEntity, UserEntity};
pub use webhooks::WebhookOutbox;

/// The guide's code blocks, compiled as doctests so that it stays true.
#[cfg(all(doctest, feature = "migration", feature = "sqlite"))]
#[doc = include_str!("../../../docs/sea-orm.md")]
struct GuideDoctests;
