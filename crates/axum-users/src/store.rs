//! The storage seams: what a database adapter implements. Stores know nothing of HTTP.

use std::future::Future;

use crate::model::{NewUser, OAuthAccount, PasswordHash, User, UserFields, UserId};

/// The user type of a store.
pub type UserOf<S> = User<<S as UserStore>::Id, <S as UserStore>::Fields>;

/// A boxed error from a storage driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another user already has this e-mail address (case-insensitively).
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// The backing service cannot be reached (down, pool timed out); worth retrying later.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other driver failure.
    #[error("storage failure: {0}")]
    Backend(#[source] BoxError),
}

/// The users table.
pub trait UserStore: Clone + Send + Sync + 'static {
    /// Primary-key type.
    type Id: UserId;
    /// The application's own fields.
    type Fields: UserFields;

    /// Finds a user by primary key.
    fn get(
        &self,
        id: &Self::Id,
    ) -> impl Future<Output = Result<Option<UserOf<Self>>, StoreError>> + Send;

    /// Finds a user by e-mail address, case-insensitively.
    fn get_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<UserOf<Self>>, StoreError>> + Send;

    /// Inserts a user; [`StoreError::DuplicateEmail`] when the e-mail is taken, decided by the
    /// database's unique constraint so that concurrent registrations cannot both succeed.
    fn create(
        &self,
        user: NewUser<Self::Id, Self::Fields>,
    ) -> impl Future<Output = Result<UserOf<Self>, StoreError>> + Send;

    /// Writes the e-mail address, the flags and the fields of `user`, never its password hash:
    /// that changes only through [`UserStore::replace_password`], so an update made from a
    /// copy read before a password reset cannot bring the old password back.
    fn update(
        &self,
        user: &UserOf<Self>,
    ) -> impl Future<Output = Result<UserOf<Self>, StoreError>> + Send;

    /// Replaces the password hash only if it is still `expected`: a compare-and-swap, so that
    /// one reset token used twice at once succeeds once. Returns whether it replaced it.
    fn replace_password(
        &self,
        id: &Self::Id,
        expected: &PasswordHash,
        new: &PasswordHash,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes a user with their OAuth accounts and access tokens; returns whether it existed.
    fn delete(&self, id: &Self::Id) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// A new OAuth account link, before it has an id.
#[derive(Debug, Clone)]
pub struct NewOAuthAccount {
    /// Provider name.
    pub oauth_name: String,
    /// Provider access token.
    pub access_token: crate::Secret,
    /// Expiry of the access token, Unix seconds.
    pub expires_at: Option<i64>,
    /// Provider refresh token.
    pub refresh_token: Option<crate::Secret>,
    /// The account id at the provider.
    pub account_id: String,
    /// The e-mail the provider reported.
    pub account_email: String,
}

/// The OAuth accounts table: many accounts per user.
pub trait OAuthAccountStore: UserStore {
    /// The user linked to `(oauth_name, account_id)`.
    fn get_by_oauth_account(
        &self,
        oauth_name: &str,
        account_id: &str,
    ) -> impl Future<Output = Result<Option<UserOf<Self>>, StoreError>> + Send;

    /// All accounts linked to a user.
    fn list_oauth_accounts(
        &self,
        user_id: &Self::Id,
    ) -> impl Future<Output = Result<Vec<OAuthAccount<Self::Id>>, StoreError>> + Send;

    /// Links an account to a user.
    fn add_oauth_account(
        &self,
        user_id: &Self::Id,
        account: NewOAuthAccount,
    ) -> impl Future<Output = Result<OAuthAccount<Self::Id>, StoreError>> + Send;

    /// Overwrites an account's tokens, expiry and e-mail.
    fn update_oauth_account(
        &self,
        account: &OAuthAccount<Self::Id>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes one link; returns whether it existed for that user.
    fn delete_oauth_account(
        &self,
        user_id: &Self::Id,
        account_id: &Self::Id,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Access tokens of the database strategy, stored only as hashes.
pub trait AccessTokenStore: Clone + Send + Sync + 'static {
    /// Primary-key type of the users the tokens belong to.
    type Id: UserId;

    /// Stores a token hash for a user, created at `created_at` (Unix seconds).
    fn create_token(
        &self,
        token_hash: &str,
        user_id: &Self::Id,
        created_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user of a token hash, if the row exists and was created at or after `not_before`.
    fn find_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> impl Future<Output = Result<Option<Self::Id>, StoreError>> + Send;

    /// Deletes a token hash (no error if absent).
    fn delete_token(&self, token_hash: &str)
    -> impl Future<Output = Result<(), StoreError>> + Send;
}
