//! The base entities: `user`, `oauth_account` and `access_token`, with UUID keys (the default,
//! these modules) or integer auto-increment keys ([`integer`]).
//!
//! Use them as they are, or copy one into your crate and add columns (see `docs/sea-orm.md`):
//! the store finds the columns it needs by name, so an entity of your own works as long as it
//! keeps those names.

/// Defines the three base entities for one primary-key type, so that the UUID and the integer
/// sets cannot drift apart.
macro_rules! base_entities {
    ($id:ty, auto_increment = $auto:literal, $fields:ty) => {
        /// Users: the FastAPI Users columns plus `email_key`, the lower-cased address under a
        /// UNIQUE constraint, which makes e-mail uniqueness case-insensitive in the database.
        pub mod user {
            use sea_orm::entity::prelude::*;

            /// A row of the `user` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "user")]
            pub struct Model {
                /// Primary key.
                #[sea_orm(primary_key, auto_increment = $auto)]
                pub id: $id,
                /// The address as registered (domain lower-cased, local part as given).
                #[sea_orm(column_type = "String(StringLen::N(320))")]
                pub email: String,
                /// `email` lower-cased: the key of case-insensitive lookups and uniqueness.
                #[sea_orm(column_type = "String(StringLen::N(320))", unique)]
                pub email_key: String,
                /// Argon2id PHC string or bcrypt hash.
                #[sea_orm(column_type = "String(StringLen::N(1024))")]
                pub hashed_password: String,
                /// Inactive users cannot log in.
                pub is_active: bool,
                /// Superusers manage other users.
                pub is_superuser: bool,
                /// Whether the user proved they own the address.
                pub is_verified: bool,
                /// Counts the user's e-mail changes; verification tokens are bound to it.
                pub email_epoch: i64,
                /// The back-relation of `oauth_account.user`.
                #[sea_orm(has_many)]
                pub oauth_accounts: HasMany<super::oauth_account::Entity>,
                /// The back-relation of `access_token.user`.
                #[sea_orm(has_many)]
                pub access_tokens: HasMany<super::access_token::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}

            impl crate::UserEntity for Entity {
                type Id = $id;
                type Fields = $fields;

                fn fields(_model: &Model) -> $fields {
                    <$fields>::default()
                }

                fn set_fields(_active: &mut ActiveModel, _fields: &$fields) {}
            }
        }

        /// External accounts (Google, GitHub, an OIDC issuer...) linked to a user; removed with
        /// the user (`ON DELETE CASCADE`).
        pub mod oauth_account {
            use sea_orm::entity::prelude::*;

            /// A row of the `oauth_account` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "oauth_account")]
            pub struct Model {
                /// Primary key.
                #[sea_orm(primary_key, auto_increment = $auto)]
                pub id: $id,
                /// The user the account belongs to.
                #[sea_orm(indexed)]
                pub user_id: $id,
                /// The provider's name, e.g. `google`.
                #[sea_orm(column_type = "String(StringLen::N(100))")]
                pub oauth_name: String,
                /// The provider's access token, encrypted by the manager (TEXT: 4 KiB and more).
                #[sea_orm(column_type = "Text")]
                pub access_token: String,
                /// When the access token expires, Unix seconds.
                pub expires_at: Option<i64>,
                /// The provider's refresh token.
                #[sea_orm(column_type = "Text", nullable)]
                pub refresh_token: Option<String>,
                /// The account's id at the provider.
                #[sea_orm(column_type = "String(StringLen::N(320))", indexed)]
                pub account_id: String,
                /// The e-mail address the provider reported last.
                #[sea_orm(column_type = "String(StringLen::N(320))")]
                pub account_email: String,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// Access tokens of the database strategy, stored as SHA-256 hashes; removed with the user.
        pub mod access_token {
            use sea_orm::entity::prelude::*;

            /// A row of the `access_token` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "access_token")]
            pub struct Model {
                /// The token's SHA-256 hash, hex: the token itself is never stored.
                #[sea_orm(
                    primary_key,
                    auto_increment = false,
                    column_type = "String(StringLen::N(64))"
                )]
                pub token: String,
                /// The user the token logs in.
                #[sea_orm(indexed)]
                pub user_id: $id,
                /// When the token was issued, Unix seconds.
                #[sea_orm(indexed)]
                pub created_at: i64,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

base_entities!(uuid::Uuid, auto_increment = false, axum_users::NoFields);

/// The same three entities with `i64` auto-increment keys for `user` and `oauth_account`.
pub mod integer {
    base_entities!(i64, auto_increment = true, axum_users::NoFields);
}
