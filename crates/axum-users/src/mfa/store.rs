//! The storage seam of second factors (migration 5 of the SQL stores): a user's TOTP factor,
//! their recovery codes (keyed hashes only) and the pending second-factor sign-ins.

use crate::auth::BoxFuture;
use crate::model::UserId;
use crate::store::StoreError;

/// A user's TOTP factor as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotpRecord {
    /// The shared secret, sealed with AES-256-GCM under its own sub-key of the server secret
    /// (the store never sees it in clear).
    pub sealed_secret: String,
    /// Whether a code confirmed the enrolment; an unconfirmed factor is never asked for.
    pub confirmed: bool,
    /// The last 30-second step whose code was accepted (confirmation included): no code of this
    /// step or an earlier one is accepted again.
    pub last_step: Option<i64>,
    /// When the enrolment began, Unix seconds.
    pub created_at: i64,
}

impl TotpRecord {
    /// A record as a store reads it back.
    pub fn new(
        sealed_secret: impl Into<String>,
        confirmed: bool,
        last_step: Option<i64>,
        created_at: i64,
    ) -> Self {
        Self {
            sealed_secret: sealed_secret.into(),
            confirmed,
            last_step,
            created_at,
        }
    }
}

/// A sign-in waiting for its second factor: what the mfa token (stored only as a keyed hash)
/// stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MfaChallenge<Id> {
    /// Who is signing in.
    pub user_id: Id,
    /// The backend the sign-in began on; only that backend's `mfa` route completes it.
    pub backend: String,
    /// How the first step was made (`password`, `oauth:github`), for the session.
    pub method: String,
    /// When the token dies, Unix seconds.
    pub expires_at: i64,
    /// Wrong codes given with this token so far.
    pub failures: i64,
}

impl<Id> MfaChallenge<Id> {
    /// A challenge for `user_id` on `backend`, living until `expires_at`, with no failure yet.
    pub fn new(
        user_id: Id,
        backend: impl Into<String>,
        method: impl Into<String>,
        expires_at: i64,
    ) -> Self {
        Self {
            user_id,
            backend: backend.into(),
            method: method.into(),
            expires_at,
            failures: 0,
        }
    }
}

/// A shared handle on an [`MfaStore`], as the manager reaches it through
/// [`crate::UserStore::mfa_store`].
pub type MfaStoreRef<Id> = std::sync::Arc<dyn MfaStore<Id>>;

/// Second factors. Every write that decides whether a code is accepted is a compare-and-swap in
/// one statement (or one transaction), so that two requests racing with one code, on one node or
/// on several, cannot both pass.
///
/// Boxed futures, as [`crate::SessionStore`], so that the manager can hold the store as a trait
/// object without a new bound on every route.
pub trait MfaStore<Id: UserId>: Send + Sync + 'static {
    /// The user's TOTP factor, confirmed or not.
    fn get_totp<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Option<TotpRecord>, StoreError>>;

    /// Begins (or restarts) an enrolment: stores `sealed_secret` unconfirmed, replacing an
    /// unconfirmed one. Returns `false`, writing nothing, when the user has a confirmed factor.
    fn begin_totp<'a>(
        &'a self,
        user_id: &'a Id,
        sealed_secret: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Confirms the enrolment of `sealed_secret` (it must still be the stored, unconfirmed
    /// secret) with the code of `step`, and replaces the recovery codes with `recovery_hashes`,
    /// in one transaction. Returns whether it confirmed.
    fn confirm_totp<'a>(
        &'a self,
        user_id: &'a Id,
        sealed_secret: &'a str,
        step: i64,
        recovery_hashes: &'a [String],
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Records that a code of `step` was accepted, only if the factor is confirmed and no code of
    /// `step` or later was accepted before (the replay guard). Returns whether it recorded.
    fn use_totp_step<'a>(
        &'a self,
        user_id: &'a Id,
        step: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes the TOTP factor and every recovery code of the user; returns whether a factor
    /// existed.
    fn remove_totp<'a>(&'a self, user_id: &'a Id) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The keyed hashes of the user's unused recovery codes.
    fn recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<Vec<String>, StoreError>>;

    /// Replaces every recovery code of the user with `hashes`, in one transaction.
    fn replace_recovery_codes<'a>(
        &'a self,
        user_id: &'a Id,
        hashes: &'a [String],
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Spends one recovery code: deletes it; returns whether it was there (of two concurrent
    /// uses, one gets `true`).
    fn use_recovery_code<'a>(
        &'a self,
        user_id: &'a Id,
        hash: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Stores a pending second-factor sign-in under the keyed hash of its token.
    fn create_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        challenge: &'a MfaChallenge<Id>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The challenge of `token_hash` if it has not expired at `now`.
    fn get_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Option<MfaChallenge<Id>>, StoreError>>;

    /// Counts one wrong code against the challenge; returns the failures after it (0 when there
    /// is no such challenge).
    fn fail_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
    ) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// Spends the challenge: deletes it if it is alive at `now` with fewer than `max_failures`
    /// failures; returns whether it did (of two concurrent completions, one gets `true`).
    fn take_mfa_challenge<'a>(
        &'a self,
        token_hash: &'a str,
        now: i64,
        max_failures: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Deletes the challenges expired at `now`; returns how many.
    fn prune_mfa_challenges<'a>(&'a self, now: i64) -> BoxFuture<'a, Result<u64, StoreError>>;
}
