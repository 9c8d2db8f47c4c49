//! What the store asks of the entities it is given: the user entity maps its extra columns to
//! the application's `UserFields`; every entity can be inserted through its active model.

use axum_users::{UserFields, UserId};
use sea_orm::sea_query::{Value, ValueType};
use sea_orm::{EntityTrait, IntoActiveModel};

/// A primary-key type the store can keep: [`uuid::Uuid`] (default) or `i64`.
pub trait SeaOrmId: UserId + Into<Value> + ValueType {}

impl<T: UserId + Into<Value> + ValueType> SeaOrmId for T {}

/// An entity the store reads and writes: any entity made with `DeriveEntityModel`.
pub trait StoreEntity:
    EntityTrait<
        Model: IntoActiveModel<<Self as EntityTrait>::ActiveModel> + Sync,
        ActiveModel: Send + Sync,
    >
{
}

impl<E> StoreEntity for E where
    E: EntityTrait<
            Model: IntoActiveModel<<E as EntityTrait>::ActiveModel> + Sync,
            ActiveModel: Send + Sync,
        >
{
}

/// A user entity: the base [`crate::entity::user`] or an application's own with extra columns.
///
/// The store reads and writes the columns `id`, `email`, `email_key`, `hashed_password`,
/// `is_active`, `is_superuser`, `is_verified` and `email_epoch` (a BIGINT) by name; this trait says the key type and maps
/// the remaining columns to the application's [`UserFields`].
///
/// The guide, `docs/sea-orm.md` ("Your own user entity"), shows one with a `display_name`
/// column.
pub trait UserEntity: StoreEntity {
    /// The primary-key type; the `id` column holds it.
    type Id: SeaOrmId;
    /// The application's own fields, kept in the entity's extra columns.
    type Fields: UserFields;

    /// Reads the fields from a row.
    fn fields(model: &Self::Model) -> Self::Fields;

    /// Writes the fields into an active model (an insert or an update of the user).
    fn set_fields(active: &mut Self::ActiveModel, fields: &Self::Fields);
}

/// The entities of second factors, as one type parameter of the store: the base
/// [`crate::entity::Mfa`] (UUID keys, the default), [`crate::entity::integer::Mfa`], or a
/// marker type of the application's naming its own three entities (their `user_id` pointing
/// at its user table).
///
/// The store reads and writes, by name: `user_id`, `sealed_secret`, `confirmed`, `last_step`,
/// `created_at` on `Totp` (keyed by `user_id`); `code_hash`, `user_id` on `RecoveryCode`;
/// `token_hash`, `user_id`, `backend`, `method`, `expires_at`, `failures` on `Challenge`.
pub trait MfaEntities: Send + Sync + 'static {
    /// A user's TOTP factor.
    type Totp: StoreEntity;
    /// A user's unused recovery codes (keyed hashes).
    type RecoveryCode: StoreEntity;
    /// Sign-ins waiting for their second factor.
    type Challenge: StoreEntity;
}
