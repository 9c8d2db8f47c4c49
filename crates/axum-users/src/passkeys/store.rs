//! The storage seam of passkeys (migration 9 of the SQL stores): the registered credentials
//! and the pending ceremonies (registration, sign-in, second factor), kept in the store so
//! that any node can finish a ceremony another began.

use crate::auth::BoxFuture;
use crate::model::UserId;
use crate::store::StoreError;

/// A registered passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasskeyRecord<Id> {
    /// Our id of the passkey (random, 32 hex characters): what the routes name.
    pub id: String,
    /// Its owner.
    pub user_id: Id,
    /// The SHA-256 of the credential id, hex: unique across all users (a credential is
    /// registered once), and short enough for every database's unique index.
    pub credential_key: String,
    /// The user handle the authenticator keeps for the owner (a UUID, one per user): a
    /// discoverable sign-in must name it.
    pub user_handle: String,
    /// The name the user gave it.
    pub name: String,
    /// The credential as `webauthn-rs` serialises it (public key, counter, flags): JSON.
    pub passkey: String,
    /// The last signature counter accepted.
    pub sign_count: i64,
    /// When it was registered, Unix seconds.
    pub created_at: i64,
    /// When it last signed a sign-in in, Unix seconds.
    pub last_used_at: Option<i64>,
}

impl<Id> PasskeyRecord<Id> {
    /// A record as a store reads it back.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: impl Into<String>,
        user_id: Id,
        credential_key: impl Into<String>,
        user_handle: impl Into<String>,
        name: impl Into<String>,
        passkey: impl Into<String>,
        sign_count: i64,
        created_at: i64,
        last_used_at: Option<i64>,
    ) -> Self {
        Self {
            id: id.into(),
            user_id,
            credential_key: credential_key.into(),
            user_handle: user_handle.into(),
            name: name.into(),
            passkey: passkey.into(),
            sign_count,
            created_at,
            last_used_at,
        }
    }
}

/// A ceremony waiting for the browser's answer: what its handle (stored only as a keyed hash)
/// stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasskeyChallenge<Id> {
    /// `register`, `sign_in` or `mfa`.
    pub kind: String,
    /// The user it is for (`None` for a discoverable sign-in: the credential names the user).
    pub user_id: Option<Id>,
    /// The backend a sign-in began on (empty for a registration).
    pub backend: String,
    /// The ceremony state of `webauthn-rs` (the challenge, the policy): JSON.
    pub state: String,
    /// When it dies, Unix seconds.
    pub expires_at: i64,
}

impl<Id> PasskeyChallenge<Id> {
    /// A challenge as a store reads it back.
    pub fn new(
        kind: impl Into<String>,
        user_id: Option<Id>,
        backend: impl Into<String>,
        state: impl Into<String>,
        expires_at: i64,
    ) -> Self {
        Self {
            kind: kind.into(),
            user_id,
            backend: backend.into(),
            state: state.into(),
            expires_at,
        }
    }
}

/// What removing a passkey did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PasskeyRemoval {
    /// It is gone.
    Removed,
    /// The user has no such passkey.
    NotFound,
    /// Refused: it is the user's last passkey and the caller asked to keep one.
    LastOne,
}

/// A shared handle on a [`PasskeyStore`], as the manager reaches it through
/// [`crate::UserStore::passkey_store`].
pub type PasskeyStoreRef<Id> = std::sync::Arc<dyn PasskeyStore<Id>>;

/// Passkeys and their pending ceremonies. Every write that decides (a challenge spent, a
/// counter advanced, the last passkey kept) is one conditional statement or one transaction,
/// so that two requests racing, on one node or several, cannot both pass.
pub trait PasskeyStore<Id: UserId>: Send + Sync + 'static {
    /// Stores a new passkey; `false`, writing nothing, when its credential is registered
    /// already (to anyone).
    fn create_passkey<'a>(
        &'a self,
        record: &'a PasskeyRecord<Id>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The user's passkeys, oldest first.
    fn list_passkeys<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<PasskeyRecord<Id>>, StoreError>>;

    /// The passkey of a credential (by [`PasskeyRecord::credential_key`]).
    fn passkey_by_credential<'a>(
        &'a self,
        credential_key: &'a str,
    ) -> BoxFuture<'a, Result<Option<PasskeyRecord<Id>>, StoreError>>;

    /// Renames one of the user's passkeys; returns whether it exists.
    fn rename_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes one of the user's passkeys; with `keep_one`, not the last one (checked in the
    /// same transaction: two concurrent removals of a user's last two cannot both pass).
    fn delete_passkey<'a>(
        &'a self,
        user_id: &'a Id,
        id: &'a str,
        keep_one: bool,
    ) -> BoxFuture<'a, Result<PasskeyRemoval, StoreError>>;

    /// Records an accepted sign-in: the new serialised credential, counter and time, only if
    /// the stored counter is still `seen_count` (of two concurrent uses of one counter value,
    /// one gets `true`).
    fn use_passkey<'a>(
        &'a self,
        id: &'a str,
        passkey: &'a str,
        seen_count: i64,
        sign_count: i64,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Stores a pending ceremony under the keyed hash of its handle.
    fn create_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        challenge: &'a PasskeyChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Spends a ceremony: deletes it and returns it if it is alive at `now` (of two concurrent
    /// finishes, one gets it).
    fn take_passkey_challenge<'a>(
        &'a self,
        handle_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<PasskeyChallenge<Id>>, StoreError>>;

    /// Deletes the ceremonies expired at `now`; returns how many.
    fn prune_passkey_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>>;
}
