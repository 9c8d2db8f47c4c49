//! The base entities: `user`, `oauth_account`, `access_token`, `session`,
//! `session_rotated_token` and the second factors' `mfa_totp`, `mfa_recovery_code` and
//! `mfa_challenge` (bundled as [`Mfa`]), with UUID keys (the default, these modules) or
//! integer auto-increment keys ([`integer`]); and `mail_outbox`, `audit_event` and
//! `webhook_outbox`, which name no user by a foreign key.
//!
//! Use them as they are, or copy one into your crate and add columns (see `docs/sea-orm.md`):
//! the store finds the columns it needs by name, so an entity of your own works as long as it
//! keeps those names.

/// Defines the base entities for one primary-key type, so that the UUID and the integer
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
                /// When the row was inserted, Unix seconds (the listing's order, with `id`).
                pub created_at: i64,
                /// When a column of the row last changed, Unix seconds.
                pub updated_at: i64,
                /// The last successful sign-in, Unix seconds; `None` before the first.
                pub last_login_at: Option<i64>,
                /// The back-relation of `oauth_account.user`.
                #[sea_orm(has_many)]
                pub oauth_accounts: HasMany<super::oauth_account::Entity>,
                /// The back-relation of `access_token.user`.
                #[sea_orm(has_many)]
                pub access_tokens: HasMany<super::access_token::Entity>,
                /// The back-relation of `session.user`.
                #[sea_orm(has_many)]
                pub sessions: HasMany<super::session::Entity>,
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
                /// The session the token belongs to ([`super::session`]); `None` for tokens
                /// issued before sessions existed. Revoking the session deletes the token.
                #[sea_orm(column_type = "String(StringLen::N(64))", nullable, indexed)]
                pub session_id: Option<String>,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// Sessions: one row per sign-in, owning its access tokens and its refresh-token
        /// hashes (never a token); removed with the user.
        pub mod session {
            use sea_orm::entity::prelude::*;

            /// A row of the `session` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "session")]
            pub struct Model {
                /// Random id, 128 bits in URL-safe base64: the `sid` claim of its JWTs.
                #[sea_orm(
                    primary_key,
                    auto_increment = false,
                    column_type = "String(StringLen::N(64))"
                )]
                pub id: String,
                /// The user who signed in.
                #[sea_orm(indexed)]
                pub user_id: $id,
                /// When it was created, Unix seconds.
                pub created_at: i64,
                /// When a token of it was last used (written at most once a minute).
                pub last_seen_at: i64,
                /// When it ends, whatever happens, Unix seconds.
                #[sea_orm(indexed)]
                pub expires_at: i64,
                /// The client's address at sign-in.
                #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
                pub ip: Option<String>,
                /// The client's `User-Agent` at sign-in (at most 512 bytes).
                #[sea_orm(column_type = "String(StringLen::N(512))", nullable)]
                pub user_agent: Option<String>,
                /// How it signed in: `password`, `oauth:<provider>`.
                #[sea_orm(column_type = "String(StringLen::N(128))")]
                pub method: String,
                /// The authentication backend whose tokens it holds.
                #[sea_orm(column_type = "String(StringLen::N(64))")]
                pub backend: String,
                /// SHA-256 hash of the refresh token valid now.
                #[sea_orm(column_type = "String(StringLen::N(64))", nullable, indexed)]
                pub refresh_hash: Option<String>,
                /// Hash of the refresh token it replaced (the grace window's).
                #[sea_orm(column_type = "String(StringLen::N(64))", nullable, indexed)]
                pub previous_refresh_hash: Option<String>,
                /// When `previous_refresh_hash` was rotated out, Unix seconds.
                pub rotated_at: Option<i64>,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
                /// The back-relation of `session_rotated_token.session`.
                #[sea_orm(has_many)]
                pub rotated_tokens: HasMany<super::session_rotated_token::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// Every refresh-token hash rotated out of a session, kept as long as the session
        /// lives: presenting one again is reuse, which revokes the session.
        pub mod session_rotated_token {
            use sea_orm::entity::prelude::*;

            /// A row of the `session_rotated_token` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "session_rotated_token")]
            pub struct Model {
                /// The rotated-out token's SHA-256 hash.
                #[sea_orm(
                    primary_key,
                    auto_increment = false,
                    column_type = "String(StringLen::N(64))"
                )]
                pub token_hash: String,
                /// The session it was rotated out of.
                #[sea_orm(column_type = "String(StringLen::N(64))", indexed)]
                pub session_id: String,
                /// The session: relation `session`, foreign key `session_id`.
                #[sea_orm(belongs_to, from = "session_id", to = "id", on_delete = "Cascade")]
                pub session: BelongsTo<super::session::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// A user's TOTP factor: the secret sealed by the manager (never in clear), whether a
        /// code confirmed it, and the last step accepted (the replay guard); removed with the
        /// user.
        pub mod mfa_totp {
            use sea_orm::entity::prelude::*;

            /// A row of the `mfa_totp` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "mfa_totp")]
            pub struct Model {
                /// The user: one factor each.
                #[sea_orm(primary_key, auto_increment = false)]
                pub user_id: $id,
                /// The shared secret, sealed with its own sub-key of the server secret.
                #[sea_orm(column_type = "String(StringLen::N(512))")]
                pub sealed_secret: String,
                /// Whether a code confirmed the enrolment.
                pub confirmed: bool,
                /// The last 30-second step whose code was accepted.
                pub last_step: Option<i64>,
                /// When the enrolment began, Unix seconds.
                pub created_at: i64,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// A user's unused recovery codes, as keyed hashes (HMAC under their own sub-key);
        /// a used code is deleted. Removed with the user.
        pub mod mfa_recovery_code {
            use sea_orm::entity::prelude::*;

            /// A row of the `mfa_recovery_code` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "mfa_recovery_code")]
            pub struct Model {
                /// The code's keyed hash.
                #[sea_orm(
                    primary_key,
                    auto_increment = false,
                    column_type = "String(StringLen::N(64))"
                )]
                pub code_hash: String,
                /// The user it belongs to.
                #[sea_orm(indexed)]
                pub user_id: $id,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// Sign-ins waiting for their second factor, under the keyed hash of their mfa token
        /// (never the token); minutes long, pruned when new ones come, removed with the user.
        pub mod mfa_challenge {
            use sea_orm::entity::prelude::*;

            /// A row of the `mfa_challenge` table.
            #[sea_orm::model]
            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
            #[sea_orm(table_name = "mfa_challenge")]
            pub struct Model {
                /// The mfa token's keyed hash.
                #[sea_orm(
                    primary_key,
                    auto_increment = false,
                    column_type = "String(StringLen::N(64))"
                )]
                pub token_hash: String,
                /// Who is signing in.
                #[sea_orm(indexed)]
                pub user_id: $id,
                /// The backend the sign-in began on.
                #[sea_orm(column_type = "String(StringLen::N(64))")]
                pub backend: String,
                /// How the first step was made (`password`, `oauth:github`).
                #[sea_orm(column_type = "String(StringLen::N(128))")]
                pub method: String,
                /// When the token dies, Unix seconds.
                #[sea_orm(indexed)]
                pub expires_at: i64,
                /// Wrong codes given with this token so far.
                pub failures: i64,
                /// The owner: relation `user`, foreign key `user_id`.
                #[sea_orm(belongs_to, from = "user_id", to = "id", on_delete = "Cascade")]
                pub user: BelongsTo<super::user::Entity>,
            }

            impl ActiveModelBehavior for ActiveModel {}
        }

        /// The three second-factor entities of this key type, as the store's `M` parameter.
        #[derive(Debug, Clone, Copy, Default)]
        pub struct Mfa;

        impl crate::MfaEntities for Mfa {
            type Totp = mfa_totp::Entity;
            type RecoveryCode = mfa_recovery_code::Entity;
            type Challenge = mfa_challenge::Entity;
        }
    };
}

base_entities!(uuid::Uuid, auto_increment = false, axum_users::NoFields);

/// The mail outbox: messages written before they are sent, sealed (their links carry live
/// tokens), deleted once sent. It names no user, so both key types share it.
pub mod mail_outbox {
    use sea_orm::entity::prelude::*;

    /// A row of the `mail_outbox` table.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "mail_outbox")]
    pub struct Model {
        /// A UUID in text form.
        #[sea_orm(
            primary_key,
            auto_increment = false,
            column_type = "String(StringLen::N(36))"
        )]
        pub id: String,
        /// The recipient's address.
        #[sea_orm(column_type = "String(StringLen::N(320))")]
        pub recipient: String,
        /// What the message is: `reset`, `verify`, ...
        #[sea_orm(column_type = "String(StringLen::N(64))")]
        pub kind: String,
        /// The message, sealed with a sub-key of the server secret.
        #[sea_orm(column_type = "Text")]
        pub sealed: String,
        /// `pending` or `failed`.
        #[sea_orm(column_type = "String(StringLen::N(16))")]
        pub status: String,
        /// Attempts made so far.
        pub attempts: i64,
        /// Earliest time of the next attempt, Unix seconds.
        pub next_attempt_at: i64,
        /// Until when a worker holds it, Unix seconds (0: nobody).
        pub locked_until: i64,
        /// The worker holding it.
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub locked_by: Option<String>,
        /// The last failure (never the body).
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        /// When it was queued, Unix seconds.
        pub created_at: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The audit log: one append-only row per act that matters to an account's security (see
/// `docs/admin.md`); never a secret. No foreign key: a record outlives its user (the deletion
/// is itself recorded), so both key types share it, the ids as text.
pub mod audit_event {
    use sea_orm::entity::prelude::*;

    /// A row of the `audit_event` table.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_event")]
    pub struct Model {
        /// A random id, 32 hex characters.
        #[sea_orm(
            primary_key,
            auto_increment = false,
            column_type = "String(StringLen::N(32))"
        )]
        pub id: String,
        /// When, Unix seconds.
        pub created_at: i64,
        /// The type string, e.g. `login.failed`.
        #[sea_orm(column_type = "String(StringLen::N(64))")]
        pub event_type: String,
        /// Whose account, as text.
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub user_id: Option<String>,
        /// Who acted, when not the user (a superuser's id).
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub actor_id: Option<String>,
        /// The client's address.
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub ip: Option<String>,
        /// The client's `User-Agent` (at most 256 characters).
        #[sea_orm(column_type = "String(StringLen::N(256))", nullable)]
        pub user_agent: Option<String>,
        /// `success` or `failure`.
        #[sea_orm(column_type = "String(StringLen::N(16))")]
        pub outcome: String,
        /// Why a sign-in failed or a session ended.
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub reason: Option<String>,
        /// The sign-in method or the provider.
        #[sea_orm(column_type = "String(StringLen::N(200))", nullable)]
        pub detail: Option<String>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Webhook deliveries of audit events: an outbox like the mail's (the same claim and lease
/// columns), queued in the audit row's transaction. The id is `msg_<event id>_<endpoint>`, so
/// one event is queued at most once per endpoint. No foreign key: a delivery outlives its user.
pub mod webhook_outbox {
    use sea_orm::entity::prelude::*;

    /// A row of the `webhook_outbox` table.
    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_outbox")]
    pub struct Model {
        /// `msg_<event id>_<endpoint>`: the `webhook-id`, the same at every attempt.
        #[sea_orm(
            primary_key,
            auto_increment = false,
            column_type = "String(StringLen::N(96))"
        )]
        pub id: String,
        /// The endpoint's name.
        #[sea_orm(column_type = "String(StringLen::N(64))")]
        pub endpoint: String,
        /// The event type.
        #[sea_orm(column_type = "String(StringLen::N(64))")]
        pub event_type: String,
        /// The JSON body (no secret in it).
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        /// `pending` or `failed`.
        #[sea_orm(column_type = "String(StringLen::N(16))")]
        pub status: String,
        /// Attempts made so far.
        pub attempts: i64,
        /// Earliest time of the next attempt, Unix seconds.
        pub next_attempt_at: i64,
        /// Until when a worker holds it, Unix seconds (0: nobody).
        pub locked_until: i64,
        /// The worker holding it.
        #[sea_orm(column_type = "String(StringLen::N(64))", nullable)]
        pub locked_by: Option<String>,
        /// The last failure (a status line, never the body).
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        /// When the event happened, Unix seconds.
        pub created_at: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The same entities with `i64` auto-increment keys for `user` and `oauth_account` (and `i64`
/// `user_id` columns in the others).
pub mod integer {
    base_entities!(i64, auto_increment = true, axum_users::NoFields);
}
