//! The base schema as `sea-orm-migration` migrations (feature `migration`, on by default):
//! the tables `user`, `oauth_account`, `access_token`, `session`, `session_rotated_token`,
//! `mail_outbox`, `mfa_totp`, `mfa_recovery_code`, `mfa_challenge`, `audit_event` and
//! `webhook_outbox` on SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Run [`Migrator`] (UUID keys) or [`IntegerMigrator`] as they are, or list [`migrations`] first in your own migrator, before the
//! migrations that add your columns:
//!
//! ```no_run
//! use axum_users_sea_orm::migration;
//! use sea_orm_migration::prelude::*;
//!
//! struct AppMigrator;
//!
//! impl MigratorTrait for AppMigrator {
//!     fn migrations() -> Vec<Box<dyn MigrationTrait>> {
//!         let mut all = migration::migrations::<uuid::Uuid>();
//!         // all.push(Box::new(m20260101_000001_add_display_name::Migration));
//!         all
//!     }
//! }
//! ```

use std::marker::PhantomData;

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    big_integer, big_integer_null, boolean, string_len, string_len_null, text, text_null,
};
use sea_orm_migration::sea_orm::DatabaseBackend;
use uuid::Uuid;

use crate::SeaOrmId;
use crate::directory::RARE_FILTERS;

pub use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// A key type the schema knows how to declare: [`Uuid`] (a native UUID column on PostgreSQL,
/// 16 bytes on MySQL) or `i64` (an auto-increment BIGINT; INTEGER on SQLite).
pub trait KeyColumn: SeaOrmId {
    /// A primary-key column of this type.
    fn primary_key(name: &'static str) -> ColumnDef;
    /// A non-null foreign-key column referring to such a key.
    fn foreign_key(name: &'static str) -> ColumnDef;
}

impl KeyColumn for Uuid {
    fn primary_key(name: &'static str) -> ColumnDef {
        ColumnDef::new(name).uuid().not_null().primary_key().take()
    }

    fn foreign_key(name: &'static str) -> ColumnDef {
        ColumnDef::new(name).uuid().not_null().take()
    }
}

impl KeyColumn for i64 {
    fn primary_key(name: &'static str) -> ColumnDef {
        ColumnDef::new(name)
            .big_integer()
            .not_null()
            .auto_increment()
            .primary_key()
            .take()
    }

    fn foreign_key(name: &'static str) -> ColumnDef {
        big_integer(name)
    }
}

/// Every migration of the base schema, in order, for keys of type `Id`. A released migration
/// never changes: a schema change is a new migration that upgrades databases in place.
pub fn migrations<Id: KeyColumn>() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateBaseSchema::<Id>::default()),
        Box::new(AddEmailEpoch),
        Box::new(AddSessions::<Id>::default()),
        Box::new(AddMailOutbox),
        Box::new(AddSecondFactors::<Id>::default()),
        Box::new(AddUserTimesAndAuditLog),
        Box::new(AddWebhookOutbox),
        Box::new(AddRareFilterIndexes),
    ]
}

/// Applies the base schema with UUID keys, recording it in SeaORM's `seaql_migrations` table.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations::<Uuid>()
    }
}

/// Applies the base schema with integer keys ([`crate::entity::integer`]).
pub struct IntegerMigrator;

impl MigratorTrait for IntegerMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations::<i64>()
    }
}

/// The first migration: the three tables, their keys and indexes.
pub struct CreateBaseSchema<Id>(PhantomData<fn() -> Id>);

impl<Id> Default for CreateBaseSchema<Id> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Id> MigrationName for CreateBaseSchema<Id> {
    fn name(&self) -> &str {
        "m20260101_000001_axum_users_base_schema"
    }
}

fn cascade_to_user(table: &'static str, name: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, "user_id")
        .to("user", "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl<Id: KeyColumn> MigrationTrait for CreateBaseSchema<Id> {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("user")
                    .col(Id::primary_key("id"))
                    .col(string_len("email", 320))
                    .col(string_len("email_key", 320))
                    .col(string_len("hashed_password", 1024))
                    .col(boolean("is_active").default(true))
                    .col(boolean("is_superuser").default(false))
                    .col(boolean("is_verified").default(false))
                    .to_owned(),
            )
            .await?;
        // The constraint the store recognises: its name contains `email`.
        manager
            .create_index(
                Index::create()
                    .name("user_email_key_unique")
                    .table("user")
                    .col("email_key")
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("oauth_account")
                    .col(Id::primary_key("id"))
                    .col(Id::foreign_key("user_id"))
                    .col(string_len("oauth_name", 100))
                    .col(text("access_token"))
                    .col(big_integer_null("expires_at"))
                    .col(text_null("refresh_token"))
                    .col(string_len("account_id", 320))
                    .col(string_len("account_email", 320))
                    .foreign_key(&mut cascade_to_user(
                        "oauth_account",
                        "oauth_account_user_fk",
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("oauth_account_user_id", &["user_id"][..]),
            ("oauth_account_account_id", &["account_id"][..]),
            (
                "oauth_account_provider_unique",
                &["oauth_name", "account_id"][..],
            ),
        ] {
            let mut index = Index::create().name(name).table("oauth_account").to_owned();
            for column in columns {
                index.col(*column);
            }
            if name.ends_with("_unique") {
                index.unique();
            }
            manager.create_index(index).await?;
        }

        manager
            .create_table(
                Table::create()
                    .table("access_token")
                    .col(string_len("token", 64).primary_key())
                    .col(Id::foreign_key("user_id"))
                    .col(big_integer("created_at"))
                    .foreign_key(&mut cascade_to_user("access_token", "access_token_user_fk"))
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("access_token_user_id", "user_id"),
            ("access_token_created_at", "created_at"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("access_token")
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["access_token", "oauth_account", "user"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The second migration: `user.email_epoch`, the count of e-mail changes that verification
/// tokens are bound to; existing users start at 0.
pub struct AddEmailEpoch;

impl MigrationName for AddEmailEpoch {
    fn name(&self) -> &str {
        "m20261201_000001_axum_users_email_epoch"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddEmailEpoch {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("user")
                    .add_column(big_integer("email_epoch").default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("user")
                    .drop_column("email_epoch")
                    .to_owned(),
            )
            .await
    }
}

/// On MySQL/MariaDB, whose default collations ignore case, binary collation for a new table:
/// its ids and hashes compare exactly, as on the other databases.
fn exact_text(manager: &SchemaManager, table: &mut TableCreateStatement) {
    if manager.get_database_backend() == DatabaseBackend::MySql {
        table.character_set("utf8mb4").collate("utf8mb4_bin");
    }
}

fn index(
    name: &'static str,
    table: &'static str,
    columns: &[&'static str],
) -> IndexCreateStatement {
    let mut index = Index::create().name(name).table(table).to_owned();
    for column in columns {
        index.col(*column);
    }
    index
}

/// The third migration: sessions. The `session` table (one row per sign-in, owning its
/// refresh-token hashes), `session_rotated_token` (every hash rotated out of a live session,
/// so that a second use is recognised) and `access_token.session_id`. Existing access tokens
/// belong to no session and keep working until logout or their lifetime.
pub struct AddSessions<Id>(PhantomData<fn() -> Id>);

impl<Id> Default for AddSessions<Id> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Id> MigrationName for AddSessions<Id> {
    fn name(&self) -> &str {
        "m20261202_000001_axum_users_sessions"
    }
}

#[async_trait::async_trait]
impl<Id: KeyColumn> MigrationTrait for AddSessions<Id> {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut session = Table::create()
            .table("session")
            .col(string_len("id", 64).primary_key())
            .col(Id::foreign_key("user_id"))
            .col(big_integer("created_at"))
            .col(big_integer("last_seen_at"))
            .col(big_integer("expires_at"))
            .col(string_len_null("ip", 64))
            .col(string_len_null("user_agent", 512))
            .col(string_len("method", 128))
            .col(string_len("backend", 64))
            .col(string_len_null("refresh_hash", 64))
            .col(string_len_null("previous_refresh_hash", 64))
            .col(big_integer_null("rotated_at"))
            .foreign_key(&mut cascade_to_user("session", "session_user_fk"))
            .to_owned();
        exact_text(manager, &mut session);
        manager.create_table(session).await?;
        for (name, column) in [
            ("session_user_id", "user_id"),
            ("session_expires_at", "expires_at"),
            ("session_refresh_hash", "refresh_hash"),
            ("session_previous_refresh_hash", "previous_refresh_hash"),
        ] {
            manager
                .create_index(index(name, "session", &[column]))
                .await?;
        }

        let mut rotated = Table::create()
            .table("session_rotated_token")
            .col(string_len("token_hash", 64).primary_key())
            .col(string_len("session_id", 64))
            .foreign_key(
                ForeignKey::create()
                    .name("session_rotated_token_session_fk")
                    .from("session_rotated_token", "session_id")
                    .to("session", "id")
                    .on_delete(ForeignKeyAction::Cascade),
            )
            .to_owned();
        exact_text(manager, &mut rotated);
        manager.create_table(rotated).await?;
        manager
            .create_index(index(
                "session_rotated_token_session_id",
                "session_rotated_token",
                &["session_id"],
            ))
            .await?;

        let mut session_id = string_len_null("session_id", 64);
        if manager.get_database_backend() == DatabaseBackend::MySql {
            // The type carries the collation: MySQL wants it before `NULL`.
            session_id.custom("VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin");
        }
        manager
            .alter_table(
                Table::alter()
                    .table("access_token")
                    .add_column(session_id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "access_token_session_id",
                "access_token",
                &["session_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("access_token_session_id")
                    .table("access_token")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("access_token")
                    .drop_column("session_id")
                    .to_owned(),
            )
            .await?;
        for table in ["session_rotated_token", "session"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The fourth migration: the mail outbox, where messages wait, sealed, until a worker sent
/// them. No foreign key: a message outlives its user (the notice of a deletion).
pub struct AddMailOutbox;

impl MigrationName for AddMailOutbox {
    fn name(&self) -> &str {
        "m20261202_000002_axum_users_mail_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddMailOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut outbox = Table::create()
            .table("mail_outbox")
            .col(string_len("id", 36).primary_key())
            .col(string_len("recipient", 320))
            .col(string_len("kind", 64))
            .col(text("sealed"))
            .col(string_len("status", 16))
            .col(big_integer("attempts").default(0))
            .col(big_integer("next_attempt_at"))
            .col(big_integer("locked_until").default(0))
            .col(string_len_null("locked_by", 64))
            .col(text_null("last_error"))
            .col(big_integer("created_at"))
            .to_owned();
        exact_text(manager, &mut outbox);
        manager.create_table(outbox).await?;
        manager
            .create_index(index(
                "mail_outbox_due",
                "mail_outbox",
                &["status", "next_attempt_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("mail_outbox").to_owned())
            .await
    }
}

/// The fifth migration: second factors. `mfa_totp` (a user's factor, its secret sealed by the
/// library), `mfa_recovery_code` (keyed hashes of the unused codes) and `mfa_challenge` (the
/// sign-ins waiting for their second factor, under keyed hashes of their tokens); all go with
/// the user (`ON DELETE CASCADE`).
pub struct AddSecondFactors<Id>(PhantomData<fn() -> Id>);

impl<Id> Default for AddSecondFactors<Id> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<Id> MigrationName for AddSecondFactors<Id> {
    fn name(&self) -> &str {
        "m20261204_000001_axum_users_second_factors"
    }
}

#[async_trait::async_trait]
impl<Id: KeyColumn> MigrationTrait for AddSecondFactors<Id> {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut totp = Table::create()
            .table("mfa_totp")
            .col(Id::foreign_key("user_id").primary_key())
            .col(string_len("sealed_secret", 512))
            .col(boolean("confirmed"))
            .col(big_integer_null("last_step"))
            .col(big_integer("created_at"))
            .foreign_key(&mut cascade_to_user("mfa_totp", "mfa_totp_user_fk"))
            .to_owned();
        exact_text(manager, &mut totp);
        manager.create_table(totp).await?;

        let mut codes = Table::create()
            .table("mfa_recovery_code")
            .col(string_len("code_hash", 64).primary_key())
            .col(Id::foreign_key("user_id"))
            .foreign_key(&mut cascade_to_user(
                "mfa_recovery_code",
                "mfa_recovery_code_user_fk",
            ))
            .to_owned();
        exact_text(manager, &mut codes);
        manager.create_table(codes).await?;
        manager
            .create_index(index(
                "mfa_recovery_code_user_id",
                "mfa_recovery_code",
                &["user_id"],
            ))
            .await?;

        let mut challenges = Table::create()
            .table("mfa_challenge")
            .col(string_len("token_hash", 64).primary_key())
            .col(Id::foreign_key("user_id"))
            .col(string_len("backend", 64))
            .col(string_len("method", 128))
            .col(big_integer("expires_at"))
            .col(big_integer("failures").default(0))
            .foreign_key(&mut cascade_to_user(
                "mfa_challenge",
                "mfa_challenge_user_fk",
            ))
            .to_owned();
        exact_text(manager, &mut challenges);
        manager.create_table(challenges).await?;
        for (name, column) in [
            ("mfa_challenge_user_id", "user_id"),
            ("mfa_challenge_expires_at", "expires_at"),
        ] {
            manager
                .create_index(index(name, "mfa_challenge", &[column]))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["mfa_challenge", "mfa_recovery_code", "mfa_totp"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The sixth migration: the users' times with the listing's index, and the audit log.
/// `user.created_at`, `user.updated_at` (BIGINT, existing users get the time of the upgrade:
/// their creation time is unknown) and `user.last_login_at` (their newest session, if any);
/// the index `user_created_at_id` over `(created_at, id)`, which the listing in creation order
/// walks (the e-mail order walks the unique index of `email_key`); and `audit_event`, with
/// no foreign key (a record outlives its user) and an index per way it is read.
pub struct AddUserTimesAndAuditLog;

impl MigrationName for AddUserTimesAndAuditLog {
    fn name(&self) -> &str {
        "m20261204_000002_axum_users_times_and_audit_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddUserTimesAndAuditLog {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite alters one at a time.
        for column in [
            big_integer("created_at").default(0).take(),
            big_integer("updated_at").default(0).take(),
            big_integer_null("last_login_at"),
        ] {
            manager
                .alter_table(Table::alter().table("user").add_column(column).to_owned())
                .await?;
        }
        let now = axum_users::now_unix();
        manager
            .exec_stmt(
                Query::update()
                    .table("user")
                    .value("created_at", now)
                    .value("updated_at", now)
                    .to_owned(),
            )
            .await?;
        let newest_session = Query::select()
            .expr(Expr::col(("session", "created_at")).max())
            .from("session")
            .and_where(Expr::col(("session", "user_id")).equals(("user", "id")))
            .to_owned();
        manager
            .exec_stmt(
                Query::update()
                    .table("user")
                    .value(
                        "last_login_at",
                        Expr::SubQuery(None, Box::new(newest_session.into())),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("user_created_at_id", "user", &["created_at", "id"]))
            .await?;

        let mut audit = Table::create()
            .table("audit_event")
            .col(string_len("id", 32).primary_key())
            .col(big_integer("created_at"))
            .col(string_len("event_type", 64))
            .col(string_len_null("user_id", 64))
            .col(string_len_null("actor_id", 64))
            .col(string_len_null("ip", 64))
            .col(string_len_null("user_agent", 256))
            .col(string_len("outcome", 16))
            .col(string_len_null("reason", 64))
            .col(string_len_null("detail", 200))
            .to_owned();
        exact_text(manager, &mut audit);
        manager.create_table(audit).await?;
        for (name, columns) in [
            ("audit_event_created_at", &["created_at", "id"][..]),
            ("audit_event_user", &["user_id", "created_at", "id"][..]),
            ("audit_event_type", &["event_type", "created_at", "id"][..]),
        ] {
            manager
                .create_index(index(name, "audit_event", columns))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("audit_event").to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("user_created_at_id")
                    .table("user")
                    .to_owned(),
            )
            .await?;
        for column in ["last_login_at", "updated_at", "created_at"] {
            manager
                .alter_table(Table::alter().table("user").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// The seventh migration: the webhook deliveries, an outbox like the mail's (the same claim
/// and lease columns). No foreign key: a delivery outlives its user and its audit row.
pub struct AddWebhookOutbox;

impl MigrationName for AddWebhookOutbox {
    fn name(&self) -> &str {
        "m20261204_000003_axum_users_webhook_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddWebhookOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut outbox = Table::create()
            .table("webhook_outbox")
            .col(string_len("id", 96).primary_key())
            .col(string_len("endpoint", 64))
            .col(string_len("event_type", 64))
            .col(text("payload"))
            .col(string_len("status", 16))
            .col(big_integer("attempts").default(0))
            .col(big_integer("next_attempt_at"))
            .col(big_integer("locked_until").default(0))
            .col(string_len_null("locked_by", 64))
            .col(text_null("last_error"))
            .col(big_integer("created_at"))
            .to_owned();
        exact_text(manager, &mut outbox);
        manager.create_table(outbox).await?;
        manager
            .create_index(index(
                "webhook_outbox_due",
                "webhook_outbox",
                &["status", "next_attempt_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("webhook_outbox").to_owned())
            .await
    }
}

/// The eighth migration: the listing's rare filters (superusers, deactivated and unverified
/// users). On SQLite and
/// PostgreSQL partial indexes over the rare rows only, in creation order and in e-mail order
/// (`user_superusers_created_at (created_at, id) WHERE is_superuser = TRUE`, ...: a few bytes
/// per superuser, not per user); MySQL has no partial index, so there each flag leads an
/// index of each order (`(is_superuser, created_at, id)`, `(is_superuser, email_key)`).
pub struct AddRareFilterIndexes;

impl MigrationName for AddRareFilterIndexes {
    fn name(&self) -> &str {
        "m20261204_000004_axum_users_rare_filter_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddRareFilterIndexes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mysql = manager.get_database_backend() == DatabaseBackend::MySql;
        for (name, column, rare) in RARE_FILTERS {
            for (suffix, order) in [
                ("created_at", &["created_at", "id"][..]),
                ("email", &["email_key"][..]),
            ] {
                let name = format!("user_{name}_{suffix}");
                let mut index = Index::create().name(name).table("user").to_owned();
                if mysql {
                    index.col(column);
                } else {
                    index.and_where(Expr::col(column).eq(rare));
                }
                for col in order {
                    index.col(*col);
                }
                manager.create_index(index).await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, _, _) in RARE_FILTERS {
            for suffix in ["created_at", "email"] {
                manager
                    .drop_index(
                        Index::drop()
                            .name(format!("user_{name}_{suffix}"))
                            .table("user")
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }
}
