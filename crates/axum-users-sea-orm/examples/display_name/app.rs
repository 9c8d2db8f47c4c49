//! The application: its own user entity with a `display_name` column, the OAuth account entity
//! pointed at it, the base schema plus one migration of its own, and the axum-users API with
//! sessions (refresh tokens, the list of devices), second factors (TOTP, recovery codes), the
//! admin listing and the audit log, and reset and verification mail queued in the database's
//! outbox.

use axum_users::{Argon2Params, AxumUsers, MailSeal, Secret, User, UserFields, UserHooks};
use axum_users_mail::{
    Composer, Deliver, LinkTemplate, Links, Mail, Outbox, SendError, TemplateError, Templates,
};
use axum_users_sea_orm::SeaOrmStore;
use axum_users_sea_orm::migration::{self, MigrationTrait, MigratorTrait};
use http::request::Parts;
use sea_orm_migration::prelude::*;
use serde::{Deserialize, Serialize};

/// The user entity: the base columns plus `display_name`.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub email: String,
        #[sea_orm(unique)]
        pub email_key: String,
        pub hashed_password: String,
        pub is_active: bool,
        pub is_superuser: bool,
        pub is_verified: bool,
        /// Counts e-mail changes (the base schema's second migration adds it).
        pub email_epoch: i64,
        /// The users' times (the base schema's sixth migration adds them): with them the
        /// store serves `GET /users` and the superuser's view shows them.
        pub created_at: i64,
        pub updated_at: i64,
        pub last_login_at: Option<i64>,
        /// The application's own column.
        pub display_name: Option<String>,
        #[sea_orm(has_many)]
        pub oauth_accounts: HasMany<super::oauth_account::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The base OAuth account entity, with its `user` relation pointed at this crate's user entity.
pub mod oauth_account {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oauth_account")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub user_id: Uuid,
        pub oauth_name: String,
        #[sea_orm(column_type = "Text")]
        pub access_token: String,
        pub expires_at: Option<i64>,
        #[sea_orm(column_type = "Text", nullable)]
        pub refresh_token: Option<String>,
        pub account_id: String,
        pub account_email: String,
        #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
        pub user: BelongsTo<super::user::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The application's user fields: what `display_name` is to the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Shown instead of the e-mail address.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// A PATCH of the profile.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileUpdate {
    /// The new display name, if it changes.
    #[serde(default)]
    pub display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = ProfileUpdate;

    fn apply(&mut self, update: ProfileUpdate) {
        if let Some(name) = update.display_name {
            self.display_name = Some(name);
        }
    }
}

impl axum_users_sea_orm::UserEntity for user::Entity {
    type Id = uuid::Uuid;
    type Fields = Profile;

    fn fields(model: &user::Model) -> Profile {
        Profile {
            display_name: model.display_name.clone(),
        }
    }

    fn set_fields(active: &mut user::ActiveModel, fields: &Profile) {
        active.display_name = sea_orm::ActiveValue::Set(fields.display_name.clone());
    }
}

/// The store over this application's entities (and the base access token entity).
pub type Store = SeaOrmStore<user::Entity, oauth_account::Entity>;

/// Adds the `display_name` column to the base `user` table.
pub struct AddDisplayName;

impl MigrationName for AddDisplayName {
    fn name(&self) -> &str {
        "m20260102_000001_add_display_name"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddDisplayName {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("user")
                    .add_column(ColumnDef::new("display_name").string_len(100).null())
                    .to_owned(),
            )
            .await
    }
}

/// The base schema, then the application's own migrations.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = migration::migrations::<uuid::Uuid>();
        all.push(Box::new(AddDisplayName));
        all
    }
}

/// Queues the reset and verification links in the outbox (the same database, so nothing is
/// lost when the process stops before the mail went out).
#[derive(Debug, Clone)]
pub struct Hooks {
    /// Where messages wait for the worker.
    pub outbox: Outbox<Store>,
    /// Templates and links.
    pub composer: Composer,
}

impl Hooks {
    async fn queue(&self, kind: &str, mail: Result<Mail, TemplateError>) {
        let queued = match mail {
            Ok(mail) => self
                .outbox
                .enqueue(kind, &mail)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = queued {
            eprintln!("queueing the {kind} mail failed: {e}");
        }
    }
}

impl UserHooks<uuid::Uuid, Profile> for Hooks {
    async fn on_after_forgot_password(
        &self,
        user: &User<uuid::Uuid, Profile>,
        token: &str,
        _request: Option<&Parts>,
    ) {
        self.queue("reset", self.composer.reset(&user.email, token, 1))
            .await;
    }

    async fn on_after_request_verify(
        &self,
        user: &User<uuid::Uuid, Profile>,
        token: &str,
        _request: Option<&Parts>,
    ) {
        self.queue("verify", self.composer.verify(&user.email, token, 1))
            .await;
    }
}

/// Sends the outbox's messages to standard output, the token redacted: the example has no
/// relay. An application passes `axum_users_mail::SmtpMailer` to the worker instead.
#[derive(Debug, Clone, Copy)]
pub struct PrintMail;

impl Deliver for PrintMail {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        println!(
            "mail to {}: {}\n{}",
            mail.to,
            mail.content.subject,
            mail.redacted_text()
        );
        Ok(())
    }
}

/// The API and the outbox its hooks write to (a worker sends what it holds).
pub struct App {
    /// The axum-users API.
    pub users: AxumUsers<Store, Hooks>,
    /// The mail outbox in the application's database.
    pub outbox: Outbox<Store>,
}

/// Connects to `database_url`, brings the schema up to date (users, sessions, outbox) and
/// builds the API. Sessions need nothing more: the SeaORM store keeps them, so sign-ins get a
/// refresh token and `/users/me/sessions` lists them.
///
/// # Errors
/// The database cannot be reached or migrated, or the secret is too weak.
pub async fn users(database_url: &str, secret: &str, argon2: Argon2Params) -> anyhow::Result<App> {
    let store = Store::connect(database_url).await?;
    Migrator::up(store.connection(), None).await?;
    let seal = MailSeal::new(Secret::new(secret), Vec::new());
    let outbox = Outbox::new(store.clone(), seal);
    let base = "http://localhost:3000";
    let links = Links::new(
        LinkTemplate::under(base, "/reset-password")?,
        LinkTemplate::under(base, "/verify")?,
        LinkTemplate::under(base, "/confirm-email-change")?,
    );
    let hooks = Hooks {
        outbox: outbox.clone(),
        composer: Composer::new(Templates::shipped(), links, "display_name"),
    };
    let users = AxumUsers::builder(store, secret)
        .argon2(argon2)
        .hooks(hooks)
        .build()?;
    Ok(App { users, outbox })
}
