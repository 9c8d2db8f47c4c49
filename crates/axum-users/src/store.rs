//! The storage seams: what a database adapter implements. Stores know nothing of HTTP.

use std::future::Future;

use crate::auth::BoxFuture;
use crate::model::{NewUser, OAuthAccount, PasswordHash, User, UserFields, UserId};
use crate::sessions::{Pruned, RefreshState, Session};

/// The user type of a store.
pub type UserOf<S> = User<<S as UserStore>::Id, <S as UserStore>::Fields>;

/// A boxed error from a storage driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another user already has this e-mail address (case-insensitively).
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    /// The provider account `(oauth_name, account_id)` is linked to a user already
    /// (decided by the database's unique constraint).
    #[error("this provider account is linked to a user already")]
    DuplicateOAuthAccount,
    /// The backing service cannot be reached (down, pool timed out); worth retrying later.
    #[error("the storage backend is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Any other driver failure.
    #[error("storage failure: {0}")]
    Backend(#[source] BoxError),
}

/// The columns an update writes; `None` leaves the column as the database has it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UserChanges<F> {
    /// The normalised address; the store derives `email_key` with [`crate::email_key`] and
    /// adds 1 to `email_epoch` when it differs from the stored address.
    pub email: Option<String>,
    /// Active flag.
    pub is_active: Option<bool>,
    /// Superuser flag.
    pub is_superuser: Option<bool>,
    /// Verified flag.
    pub is_verified: Option<bool>,
    /// The whole custom-fields value.
    pub fields: Option<F>,
    /// Writes only if the stored `email_epoch` is still this value, in the same statement;
    /// otherwise nothing is written and the update returns `Ok(None)`. A compare-and-swap, so
    /// that of two e-mail change confirmations made from the same epoch at most one lands.
    pub if_email_epoch: Option<i64>,
}

impl<F> Default for UserChanges<F> {
    fn default() -> Self {
        Self {
            email: None,
            is_active: None,
            is_superuser: None,
            is_verified: None,
            fields: None,
            if_email_epoch: None,
        }
    }
}

impl<F> UserChanges<F> {
    /// Whether the update names no column at all (and so only reads the user).
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.is_active.is_none()
            && self.is_superuser.is_none()
            && self.is_verified.is_none()
            && self.fields.is_none()
    }
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

    /// Writes only the columns `changes` names, in one statement; a changed e-mail also adds 1 to
    /// `email_epoch`. Never writes the password hash. Returns the user as stored afterwards,
    /// `Ok(None)` when there is no such user; [`StoreError::DuplicateEmail`] when the address is
    /// taken. An empty `changes` just reads the user.
    ///
    /// # Security
    /// Writing only what changed keeps a concurrent writer's columns: a self-PATCH that waited
    /// for the hasher cannot undo a superuser's deactivation made meanwhile. The password hash
    /// changes only through [`UserStore::replace_password`].
    fn update(
        &self,
        id: &Self::Id,
        changes: UserChanges<Self::Fields>,
    ) -> impl Future<Output = Result<Option<UserOf<Self>>, StoreError>> + Send;

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

    /// The store's sessions, when it keeps them (every store of this project does). A store
    /// without them still works: sign-ins then create no session, and tokens cannot be revoked
    /// by session.
    fn session_store(&self) -> Option<SessionStoreRef<Self::Id, Self::Fields>> {
        None
    }

    /// The store's users directory (times, the filtered listing), when it has one. Without it
    /// `GET /users` answers 501 and the superuser's view has no times.
    fn directory(&self) -> Option<crate::directory::UserDirectoryRef<Self::Id, Self::Fields>> {
        None
    }

    /// The store's audit log, when it keeps one. Without it events still reach
    /// [`crate::UserHooks::on_audit_event`] but are not stored.
    fn audit_store(&self) -> Option<crate::audit::AuditStoreRef> {
        None
    }

    /// The store's second factors (TOTP, recovery codes, pending second-factor sign-ins), when
    /// it keeps them. A store without them still works: nobody can enrol a factor, and every
    /// sign-in is complete after its first step.
    fn mfa_store(&self) -> Option<crate::mfa::MfaStoreRef<Self::Id>> {
        None
    }

    /// The store's passkeys and their pending ceremonies, when it keeps them. Without them the
    /// passkey routes answer 501 `PASSKEY_UNAVAILABLE`.
    fn passkey_store(&self) -> Option<crate::passkeys::PasskeyStoreRef<Self::Id>> {
        None
    }
}

/// A new OAuth account link, before it has an id.
#[derive(Debug, Clone)]
pub struct NewOAuthAccount {
    /// Provider name.
    pub oauth_name: String,
    /// Provider access token (the stores keep up to 4 KiB of text).
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

    /// Links an account to a user; [`StoreError::DuplicateOAuthAccount`] when the provider
    /// account is linked already (to anyone), decided by the database's unique constraint.
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

    /// Creates a user and links a provider account in one transaction: both or neither.
    /// [`StoreError::DuplicateEmail`] or [`StoreError::DuplicateOAuthAccount`] when a constraint
    /// refuses either.
    fn create_with_oauth_account(
        &self,
        user: NewUser<Self::Id, Self::Fields>,
        account: NewOAuthAccount,
    ) -> impl Future<Output = Result<UserOf<Self>, StoreError>> + Send;

    /// Removes one link of `user_id` unless it is their last way to sign in (no usable password,
    /// see [`PasswordHash::is_usable`], and no other link), atomically: two concurrent unlinks of
    /// a password-less user's two accounts remove one.
    fn unlink_oauth_account(
        &self,
        user_id: &Self::Id,
        account_id: &Self::Id,
    ) -> impl Future<Output = Result<Unlink, StoreError>> + Send;
}

/// What unlinking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unlink {
    /// The link is gone.
    Removed,
    /// The user has no such link (or no such user exists).
    NotFound,
    /// Refused: the link is the user's last way to sign in.
    LastSignInMethod,
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

    /// Stores a token hash that belongs to a session, which revoking the session deletes.
    /// Stores without sessions keep the token alone.
    fn create_session_token(
        &self,
        token_hash: &str,
        user_id: &Self::Id,
        session_id: &str,
        created_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = session_id;
        self.create_token(token_hash, user_id, created_at)
    }

    /// The user and session of a token hash, as [`AccessTokenStore::find_token`].
    fn find_session_token(
        &self,
        token_hash: &str,
        not_before: Option<i64>,
    ) -> impl Future<Output = Result<Option<TokenSession<Self::Id>>, StoreError>> + Send {
        async move {
            Ok(self
                .find_token(token_hash, not_before)
                .await?
                .map(|id| (id, None)))
        }
    }
}

/// A user with one of their sessions, as [`SessionStore::user_of_session`] finds them.
pub type UserSession<Id, F> = (User<Id, F>, Session<Id>);

/// The user of a database token and the session it belongs to, if any.
pub type TokenSession<Id> = (Id, Option<String>);

/// A shared handle on a [`SessionStore`], as the manager keeps it.
pub type SessionStoreRef<Id, F> = std::sync::Arc<dyn SessionStore<Id, F>>;

/// The sessions table: one row per sign-in (see [`Session`]). Refresh tokens are kept only as
/// hashes ([`crate::hash_token`]).
///
/// Its methods return boxed futures so that the manager can hold the store as a trait object
/// (through [`UserStore::session_store`]) without a new bound on every route.
pub trait SessionStore<Id: UserId, F: UserFields>: Send + Sync + 'static {
    /// Inserts a session.
    fn create_session<'a>(
        &'a self,
        session: &'a Session<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// A session that has not expired at `now`.
    fn get_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>>;

    /// A live session with its user, in one query (a join): what every revocable token check
    /// costs.
    fn user_of_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<UserSession<Id, F>>, StoreError>>;

    /// The live session whose current or previous refresh-token hash is `hash`, or that
    /// `hash` was ever rotated out of (see [`SessionStore::swap_refresh`]).
    fn find_session_by_refresh<'a>(
        &'a self,
        hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<Session<Id>>, StoreError>>;

    /// Compare-and-swap of the refresh state: writes it only if the current hash is still
    /// `expected`; returns whether it wrote. With the write, `retired` (a hash that leaves the
    /// state) is recorded as rotated out of the session for as long as the session lives, so
    /// that presenting it again is recognised as reuse.
    fn swap_refresh<'a>(
        &'a self,
        id: &'a str,
        expected: &'a str,
        next: &'a RefreshState,
        retired: Option<&'a str>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Sets `last_seen_at` to `now` unless it is after `stale_before` already (at most one write
    /// per interval and session).
    fn touch_session<'a>(
        &'a self,
        id: &'a str,
        now: i64,
        stale_before: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The user's live sessions, newest first.
    fn list_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<Session<Id>>, StoreError>>;

    /// Deletes the user's sessions (only `only` when given, every one but `except` when
    /// given) with their access tokens; returns the ids it deleted. Unless `only` is given, it
    /// also deletes the user's access tokens of no session (issued before sessions existed),
    /// which no other revocation reaches.
    fn delete_sessions<'a>(
        &'a self,
        user_id: &'a Id,
        only: Option<&'a str>,
        except: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Deletes the access tokens of session `id` created before `before` (the ones a refresh
    /// superseded); returns how many.
    fn delete_session_tokens_before<'a>(
        &'a self,
        id: &'a str,
        before: i64,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Deletes sessions expired at `now` with their access tokens, access tokens whose session
    /// is gone, and access tokens created before `tokens_before` (the database strategy's
    /// lifetime, if it has one).
    fn prune<'a>(
        &'a self,
        now: i64,
        tokens_before: Option<i64>,
    ) -> BoxFuture<'a, Result<Pruned, StoreError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_empty_until_one_column_is_named() {
        let mut changes: UserChanges<crate::NoFields> = UserChanges::default();
        assert!(changes.is_empty());
        changes.is_verified = Some(false);
        assert!(
            !changes.is_empty(),
            "naming a column, even to false, is a change"
        );
        let fields = UserChanges {
            fields: Some(crate::NoFields {}),
            ..UserChanges::default()
        };
        assert!(!fields.is_empty());
    }
}
