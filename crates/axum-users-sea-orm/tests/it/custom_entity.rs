//! An application's own entities: a user entity named `member` with a `display_name` column,
//! an OAuth account entity whose `user` relation points at it, a token entity, session
//! entities (one with a column of the application's own), second-factor entities, and a
//! schema made from those entities and the base audit log's. The conformance suite passes on
//! them, and the extra column is the application's `UserFields` (the example application's
//! `Profile`).

use axum_users::{UserChanges, UserStore, testing};
use axum_users_sea_orm::entity::audit_event;
use axum_users_sea_orm::{MfaEntities, SeaOrmStore, SetupError, UserEntity};
use sea_orm::{ConnectionTrait, EntityName, Schema};

use crate::databases::{self, TestDb};
use crate::example_app::app::Profile;

mod member {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member")]
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
        pub email_epoch: i64,
        pub display_name: Option<String>,
        #[sea_orm(has_many)]
        pub oauth_accounts: HasMany<super::member_oauth_account::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod member_oauth_account {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_oauth_account")]
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
        #[sea_orm(indexed)]
        pub account_id: String,
        pub account_email: String,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod member_token {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_token")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token: String,
        pub user_id: Uuid,
        pub created_at: i64,
        pub session_id: Option<String>,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Sessions of members, with a column of the application's own (which the store leaves to
/// its default).
mod member_session {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_session")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: Uuid,
        pub created_at: i64,
        pub last_seen_at: i64,
        pub expires_at: i64,
        pub ip: Option<String>,
        pub user_agent: Option<String>,
        pub method: String,
        pub backend: String,
        pub refresh_hash: Option<String>,
        pub previous_refresh_hash: Option<String>,
        pub rotated_at: Option<i64>,
        /// The application's own: a device name the user may set.
        pub device_name: Option<String>,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod member_rotated_token {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_rotated_token")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub session_id: String,
        #[sea_orm(
            belongs_to,
            relation_enum = "Session",
            from = "session_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub session: BelongsTo<super::member_session::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The second factors of members: entities of the application's own, their `user_id`
/// pointing at `member`.
mod member_totp {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_totp")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub sealed_secret: String,
        pub confirmed: bool,
        pub last_step: Option<i64>,
        pub created_at: i64,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod member_recovery_code {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_recovery_code")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub code_hash: String,
        pub user_id: Uuid,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

mod member_challenge {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "member_challenge")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub user_id: Uuid,
        pub backend: String,
        pub method: String,
        pub expires_at: i64,
        pub failures: i64,
        #[sea_orm(
            belongs_to,
            relation_enum = "User",
            from = "user_id",
            to = "id",
            on_delete = "Cascade"
        )]
        pub user: BelongsTo<super::member::Entity>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The three, as the store's `M` parameter.
struct MemberMfa;

impl MfaEntities for MemberMfa {
    type Totp = member_totp::Entity;
    type RecoveryCode = member_recovery_code::Entity;
    type Challenge = member_challenge::Entity;
}

/// A user entity that lost a column the store needs.
mod legacy_user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "legacy_user")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub email: String,
        pub hashed_password: String,
        pub is_active: bool,
        pub is_superuser: bool,
        pub is_verified: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}

    impl axum_users_sea_orm::UserEntity for Entity {
        type Id = Uuid;
        type Fields = axum_users::NoFields;

        fn fields(_: &Model) -> axum_users::NoFields {
            axum_users::NoFields {}
        }

        fn set_fields(_: &mut ActiveModel, _: &axum_users::NoFields) {}
    }
}

impl UserEntity for member::Entity {
    type Id = uuid::Uuid;
    type Fields = Profile;

    fn fields(model: &member::Model) -> Profile {
        Profile {
            display_name: model.display_name.clone(),
        }
    }

    fn set_fields(active: &mut member::ActiveModel, fields: &Profile) {
        active.display_name = sea_orm::ActiveValue::Set(fields.display_name.clone());
    }
}

type MemberStore = SeaOrmStore<
    member::Entity,
    member_oauth_account::Entity,
    member_token::Entity,
    member_session::Entity,
    member_rotated_token::Entity,
    MemberMfa,
>;

/// Drops what an earlier run left, then creates the tables from the entities.
async fn create_schema(test: &TestDb) {
    let db = &test.db;
    for table in [
        audit_event::Entity.table_name(),
        member_challenge::Entity.table_name(),
        member_recovery_code::Entity.table_name(),
        member_totp::Entity.table_name(),
        member_rotated_token::Entity.table_name(),
        member_token::Entity.table_name(),
        member_session::Entity.table_name(),
        member_oauth_account::Entity.table_name(),
        member::Entity.table_name(),
    ] {
        db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .unwrap();
    }
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(member::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_oauth_account::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_token::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_session::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_rotated_token::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_totp::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_recovery_code::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(member_challenge::Entity))
        .await
        .unwrap();
    db.execute(&schema.create_table_from_entity(audit_event::Entity))
        .await
        .unwrap();
    for index in schema.create_index_from_entity(member_oauth_account::Entity) {
        db.execute(&index).await.unwrap();
    }
    // The constraint that makes a provider account link once: an index of the application's
    // own, named so that the store recognises it (`oauth` in the name).
    let provider_unique = sea_orm::sea_query::Index::create()
        .name("member_oauth_provider_unique")
        .table(member_oauth_account::Entity)
        .col(member_oauth_account::Column::OauthName)
        .col(member_oauth_account::Column::AccountId)
        .unique()
        .to_owned();
    db.execute(&provider_unique).await.unwrap();
}

async fn member_suite(test: TestDb) {
    create_schema(&test).await;
    let store = MemberStore::new(test.db.clone()).unwrap();
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::access_token_store(&store, &store).await;
    testing::session_store(&store, &store).await;
    testing::concurrent_creates(&store, 20).await;
    testing::concurrent_unlinks(&store, 5).await;
    testing::mfa_store(&store).await;
    testing::concurrent_mfa_uses(&store, 5).await;
    testing::audit_store(&store).await;
    assert!(
        store.directory().is_none(),
        "a user entity without created_at/updated_at/last_login_at has no directory"
    );

    let mut new = testing::new_user::<MemberStore>(&testing::unique_email());
    new.fields.display_name = Some("Ada".into());
    let user = store.create(new).await.unwrap();
    assert_eq!(user.fields.display_name.as_deref(), Some("Ada"));
    let read = store.get(&user.id).await.unwrap().unwrap();
    assert_eq!(read, user, "the extra column reads back as the fields");
    let mut rename = UserChanges::default();
    rename.fields = Some(Profile {
        display_name: Some("Ada L.".into()),
    });
    let renamed = store.update(&user.id, rename).await.unwrap().unwrap();
    let expected = axum_users::User {
        fields: Profile {
            display_name: Some("Ada L.".into()),
        },
        ..user.clone()
    };
    assert_eq!(renamed, expected);
    assert_eq!(
        store.get(&user.id).await.unwrap(),
        Some(expected),
        "an update of the fields writes the extra column and nothing else"
    );
    assert!(store.delete(&user.id).await.unwrap());
}

#[tokio::test]
async fn sqlite_own_entities() {
    member_suite(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_own_entities() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_custom").await {
        member_suite(test).await;
    }
}

#[tokio::test]
async fn mariadb_own_entities() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_custom").await {
        member_suite(test).await;
    }
}

#[tokio::test]
async fn a_missing_column_is_named_at_start_up() {
    let test = databases::sqlite().await;
    let error = SeaOrmStore::<legacy_user::Entity>::new(test.db.clone()).unwrap_err();
    assert!(
        matches!(
            &error,
            SetupError::MissingColumn { table, column: "email_key" } if table == "legacy_user"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("email_key"));
}
