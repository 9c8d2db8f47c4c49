//! The application: its own user entity with a `display_name` column, the OAuth account entity
//! pointed at it, the base schema plus one migration of its own, and the axum-users API.

use axum_users::{Argon2Params, AxumUsers, UserFields};
use axum_users_sea_orm::SeaOrmStore;
use axum_users_sea_orm::migration::{self, MigrationTrait, MigratorTrait};
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

/// Connects to `database_url`, brings the schema up to date and builds the API.
///
/// # Errors
/// The database cannot be reached or migrated, or the secret is too weak.
pub async fn users(
    database_url: &str,
    secret: &str,
    argon2: Argon2Params,
) -> anyhow::Result<AxumUsers<Store>> {
    let store = Store::connect(database_url).await?;
    Migrator::up(store.connection(), None).await?;
    Ok(AxumUsers::builder(store, secret).argon2(argon2).build()?)
}
