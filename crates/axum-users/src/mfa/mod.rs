//! Second factors, owned by the manager: TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one
//! step of clock skew either way), ten single-use recovery codes, and the second step of a
//! sign-in (`POST /auth/{backend}/mfa`).
//!
//! Rules, each enforced here once:
//! - the TOTP secret is stored sealed (AES-256-GCM under its own sub-key of the server secret);
//! - a code is accepted once per user and step, and never for a step before the last accepted
//!   one (a compare-and-swap in the store, so two concurrent uses of one code cannot both pass);
//! - recovery codes have 60 random bits each, are stored as keyed hashes (HMAC under their own
//!   sub-key, bound to the user), compared in constant time and spent with a compare-and-swap;
//! - the mfa token of a pending sign-in has 256 random bits, is stored as a keyed hash (its own
//!   sub-key), is bound to the backend its sign-in began on, lives
//!   [`MFA_TOKEN_LIFETIME`] seconds, dies after [`MAX_MFA_FAILURES`] wrong codes, and is spent
//!   once across every node (the store decides); every wrong code also counts as a failed
//!   sign-in of the account for the login throttle.
//!
//! A refresh never asks for the second factor: it continues a session that passed it.

mod store;
mod totp;

use std::time::Duration;

use http::request::Parts;

pub use store::{MfaChallenge, MfaStore, MfaStoreRef, TotpRecord};

use crate::audit::{AuditEvent, LoginFailure};
use crate::auth::AuthBackend;
use crate::hooks::{SecondFactorChange, SignInMethod, UserHooks};
use crate::keys::Purpose;
use crate::login::{LoginOutcome, LoginResponse, Refused};
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::secret::{Secret, constant_time_eq, random_token};
use crate::sessions::RevokeReason;
use crate::store::UserStore;
use crate::tokens::now_unix;

/// How long an mfa token lives, seconds.
pub const MFA_TOKEN_LIFETIME: i64 = 300;
/// Wrong codes an mfa token allows; the next answer is `MFA_TOKEN_INVALID`.
pub const MAX_MFA_FAILURES: i64 = 5;
/// How many recovery codes a confirmation or a regeneration gives.
pub const RECOVERY_CODES: usize = 10;
/// The longest mfa token, code or recovery code read; longer ones are wrong without a lookup.
const MAX_INPUT: usize = 128;

/// Settings of the second factors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MfaSettings {
    /// The issuer an authenticator app shows beside the account (default `axum-users`).
    pub issuer: String,
    /// A user without a password may enrol a factor only from a session at most this old
    /// (default 10 minutes): a "recent sign-in" stands in for the current password.
    pub recent_sign_in: Duration,
}

impl Default for MfaSettings {
    fn default() -> Self {
        Self {
            issuer: "axum-users".into(),
            recent_sign_in: Duration::from_secs(600),
        }
    }
}

impl MfaSettings {
    /// Another issuer name.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = issuer.into();
        self
    }

    /// Another window for a recent sign-in.
    pub fn with_recent_sign_in(mut self, window: Duration) -> Self {
        self.recent_sign_in = window;
        self
    }
}

/// The start of a TOTP enrolment: what the user's authenticator app needs. Not active until
/// [`UserManager::confirm_totp`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TotpEnrolment {
    /// The shared secret, base32 (for typing it in).
    pub secret: Secret,
    /// The `otpauth://totp/...` URI with the secret.
    pub otpauth_uri: Secret,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// A user's second factors, as `GET /users/me/mfa` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct MfaStatus {
    /// A confirmed TOTP factor.
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// Registered passkeys.
    pub passkeys: usize,
}

/// What proves the user when a factor is removed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MfaProof {
    /// A current TOTP code.
    Code(String),
    /// The current password.
    CurrentPassword(Secret),
}

/// The answer to the second step of a sign-in.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SecondFactorAnswer {
    /// A TOTP code.
    Code(String),
    /// One of the recovery codes.
    RecoveryCode(Secret),
}

/// What a sign-in that needs its second factor answers: the token to come back with and the
/// methods that complete it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MfaRequired {
    /// The mfa token (single use, [`MFA_TOKEN_LIFETIME`] seconds).
    pub mfa_token: Secret,
    /// `totp`, `recovery_code` while the user has unused codes, and `passkey` when they have
    /// one (and passkeys are on).
    pub methods: Vec<&'static str>,
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    fn mfa(&self) -> Result<MfaStoreRef<S::Id>, ManagerError> {
        self.store().mfa_store().ok_or(ManagerError::MfaUnavailable)
    }

    /// The user's second factors.
    ///
    /// # Errors
    /// [`ManagerError::MfaUnavailable`] when the store keeps none, or a store failure.
    pub async fn mfa_status(&self, user: &UserOf<S>) -> Result<MfaStatus, ManagerError> {
        let mfa = self.mfa()?;
        let totp = mfa.get_totp(&user.id).await?.is_some_and(|r| r.confirmed);
        let passkeys = self.passkey_count(&user.id).await?;
        let recovery_codes_left = if totp || passkeys > 0 {
            mfa.recovery_codes(&user.id).await?.len()
        } else {
            0
        };
        Ok(MfaStatus {
            totp,
            recovery_codes_left,
            passkeys,
        })
    }

    /// Begins a TOTP enrolment (or restarts an unconfirmed one with a new secret). A user with
    /// a password proves it with `current_password`; a user without one with a recent sign-in:
    /// `session_id` (the session of the request's token) must have begun at most
    /// [`MfaSettings::recent_sign_in`] ago.
    ///
    /// # Errors
    /// [`ManagerError::CurrentPasswordRequired`], [`ManagerError::BadCurrentPassword`],
    /// [`ManagerError::MfaRecentSignInRequired`], [`ManagerError::MfaAlreadyEnabled`],
    /// [`ManagerError::MfaUnavailable`], or a failure.
    pub async fn begin_totp(
        &self,
        user: &UserOf<S>,
        current_password: Option<&Secret>,
        session_id: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<TotpEnrolment, ManagerError> {
        let mfa = self.mfa()?;
        self.fresh_proof(user, current_password, session_id, request)
            .await?;
        let secret = totp::new_secret();
        let settings = self.mfa_settings();
        let enrolment = totp::enrolment(&secret, &settings.issuer, &user.email)?;
        let sealed = self.key_ring().encrypt(Purpose::TotpSecret, &secret);
        if !mfa.begin_totp(&user.id, &sealed, now_unix()).await? {
            return Err(ManagerError::MfaAlreadyEnabled);
        }
        Ok(enrolment)
    }

    /// The proof that adds a factor (a TOTP factor, a passkey): the current password, behind
    /// the account's throttle, or for a user without one a recent sign-in.
    pub(crate) async fn fresh_proof(
        &self,
        user: &UserOf<S>,
        current_password: Option<&Secret>,
        session_id: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if user.hashed_password.is_usable() {
            self.throttled_current_password(user, current_password, request)
                .await
        } else {
            self.check_recent_sign_in(session_id).await
        }
    }

    /// Whether `session_id` (the session of the request's token) began at most
    /// [`MfaSettings::recent_sign_in`] ago: the fresh proof that adding a way in (a second
    /// factor for a user without a password, a provider account) asks of a stolen token's
    /// holder. Without a session store or a session nothing can be told: refused.
    ///
    /// # Errors
    /// [`ManagerError::MfaRecentSignInRequired`], or a store failure.
    pub(crate) async fn check_recent_sign_in(
        &self,
        session_id: Option<&str>,
    ) -> Result<(), ManagerError> {
        let now = now_unix();
        let window = self.mfa_settings().recent_sign_in.as_secs() as i64;
        let (Some(sessions), Some(id)) = (self.sessions(), session_id) else {
            return Err(ManagerError::MfaRecentSignInRequired);
        };
        match sessions.get_session(id, now).await? {
            Some(session) if session.created_at >= now.saturating_sub(window) => Ok(()),
            _ => Err(ManagerError::MfaRecentSignInRequired),
        }
    }

    /// Confirms the pending enrolment with a code of the new secret: the factor is active from
    /// now on, and the ten recovery codes returned (shown this once) replace any older ones.
    /// Every other session of the user ends (none of them passed the factor); `session_id`, the
    /// confirming one, stays.
    ///
    /// # Errors
    /// [`ManagerError::MfaNotEnabled`] without a pending enrolment,
    /// [`ManagerError::MfaAlreadyEnabled`] when it is confirmed already,
    /// [`ManagerError::MfaInvalidCode`], or a failure.
    pub async fn confirm_totp(
        &self,
        user: &UserOf<S>,
        code: &str,
        session_id: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<Vec<Secret>, ManagerError> {
        let mfa = self.mfa()?;
        let record = mfa
            .get_totp(&user.id)
            .await?
            .ok_or(ManagerError::MfaNotEnabled)?;
        if record.confirmed {
            return Err(ManagerError::MfaAlreadyEnabled);
        }
        let secret = self.open_secret(&record)?;
        let step = totp::matching_step(&secret, code, now_unix())
            .filter(|step| record.last_step.is_none_or(|last| last < *step))
            .ok_or(ManagerError::MfaInvalidCode)?;
        let (codes, hashes) = self.new_recovery_codes(&user.id);
        if !mfa
            .confirm_totp(&user.id, &record.sealed_secret, step, &hashes)
            .await?
        {
            // Confirmed or restarted meanwhile: this code was for a secret no longer pending.
            return Err(ManagerError::MfaInvalidCode);
        }
        self.revoke_sessions_for(
            &user.id,
            session_id,
            RevokeReason::SecondFactorAdded,
            request,
        )
        .await?;
        self.hooks()
            .on_second_factor_changed(user, SecondFactorChange::Added)
            .await;
        self.audit(AuditEvent::SecondFactorAdded, Some(&user.id), request)
            .await;
        Ok(codes)
    }

    /// Removes the user's TOTP factor and recovery codes, proved by a current code or the
    /// current password.
    ///
    /// # Errors
    /// [`ManagerError::MfaNotEnabled`], [`ManagerError::MfaInvalidCode`],
    /// [`ManagerError::CurrentPasswordRequired`], [`ManagerError::BadCurrentPassword`], or a
    /// failure.
    pub async fn disable_totp(
        &self,
        user: &UserOf<S>,
        proof: MfaProof,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        let mfa = self.mfa()?;
        let confirmed = mfa.get_totp(&user.id).await?.is_some_and(|r| r.confirmed);
        match proof {
            MfaProof::CurrentPassword(password) => {
                self.throttled_current_password(user, Some(&password), request)
                    .await?;
                if !confirmed {
                    return Err(ManagerError::MfaNotEnabled);
                }
            }
            MfaProof::Code(code) => {
                if !confirmed {
                    return Err(ManagerError::MfaNotEnabled);
                }
                self.throttled_code(user, &code, request).await?;
            }
        }
        // A user with passkeys keeps them as a second factor, and their recovery codes with
        // them: the store removes the codes with the factor, so they are put back.
        let kept = if self.passkey_second_factor(&user.id).await? {
            mfa.recovery_codes(&user.id).await?
        } else {
            Vec::new()
        };
        let removed = mfa.remove_totp(&user.id).await?;
        if !kept.is_empty() {
            mfa.replace_recovery_codes(&user.id, &kept).await?;
        }
        if removed {
            self.hooks()
                .on_second_factor_changed(user, SecondFactorChange::Removed)
                .await;
            self.audit(AuditEvent::SecondFactorRemoved, Some(&user.id), request)
                .await;
        }
        Ok(())
    }

    /// The ten recovery codes of a user whose new passkey is their first second factor (no
    /// confirmed TOTP factor, no codes yet), stored and returned to be shown this once; `None`
    /// otherwise, or when the store keeps no second factors.
    pub(crate) async fn recovery_codes_for_a_first_passkey(
        &self,
        user_id: &S::Id,
    ) -> Result<Option<Vec<Secret>>, ManagerError> {
        let Some(mfa) = self.store().mfa_store() else {
            return Ok(None);
        };
        if mfa.get_totp(user_id).await?.is_some_and(|r| r.confirmed)
            || !mfa.recovery_codes(user_id).await?.is_empty()
        {
            return Ok(None);
        }
        let (codes, hashes) = self.new_recovery_codes(user_id);
        mfa.replace_recovery_codes(user_id, &hashes).await?;
        Ok(Some(codes))
    }

    /// Replaces the user's recovery codes with ten new ones, proved by a current code.
    ///
    /// # Errors
    /// [`ManagerError::MfaNotEnabled`], [`ManagerError::MfaInvalidCode`], or a failure.
    pub async fn regenerate_recovery_codes(
        &self,
        user: &UserOf<S>,
        code: &str,
        request: Option<&Parts>,
    ) -> Result<Vec<Secret>, ManagerError> {
        let mfa = self.mfa()?;
        if !mfa.get_totp(&user.id).await?.is_some_and(|r| r.confirmed) {
            return Err(ManagerError::MfaNotEnabled);
        }
        self.throttled_code(user, code, request).await?;
        let (codes, hashes) = self.new_recovery_codes(&user.id);
        mfa.replace_recovery_codes(&user.id, &hashes).await?;
        self.audit(
            AuditEvent::RecoveryCodesRegenerated,
            Some(&user.id),
            request,
        )
        .await;
        Ok(codes)
    }

    /// A TOTP code proving a change on the account, behind the login defences of the account
    /// (the counters of its sign-ins): a stolen session must not make the account routes an
    /// unthrottled code oracle. A wrong code counts as a failed sign-in.
    async fn throttled_code(
        &self,
        user: &UserOf<S>,
        code: &str,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        let check = async {
            match self.accept_totp_code(&user.id, code).await? {
                true => Ok(()),
                false => Err(ManagerError::MfaInvalidCode),
            }
        };
        self.behind_account_throttle(user, request, ManagerError::MfaInvalidCode, check)
            .await
    }

    /// Removes every second factor of a user, the TOTP factor and the passkeys (a superuser's
    /// act, for a lost device); the user is told through
    /// [`UserHooks::on_second_factor_changed`]. Returns whether there was one.
    ///
    /// # Errors
    /// [`ManagerError::UserNotExists`], [`ManagerError::MfaUnavailable`], or a store failure.
    pub async fn remove_second_factors(
        &self,
        user_id: &S::Id,
        request: Option<&Parts>,
    ) -> Result<bool, ManagerError> {
        let mfa = self.mfa()?;
        let user = self.get(user_id).await?;
        let mut removed = mfa.remove_totp(user_id).await?;
        // A passkey is a second factor too: one on the lost device goes with it.
        if let Some(passkeys) = self.store().passkey_store() {
            for passkey in passkeys.list_passkeys(user_id).await? {
                let gone = passkeys.delete_passkey(user_id, &passkey.id, false).await?;
                if gone == crate::passkeys::PasskeyRemoval::Removed {
                    removed = true;
                    self.audit(AuditEvent::PasskeyRemoved, Some(user_id), request)
                        .await;
                }
            }
        }
        if removed {
            self.hooks()
                .on_second_factor_changed(&user, SecondFactorChange::RemovedBySuperuser)
                .await;
            self.audit(AuditEvent::SecondFactorRemoved, Some(user_id), request)
                .await;
        }
        Ok(removed)
    }

    /// The second step of a sign-in: the mfa token of the first step and a TOTP or recovery
    /// code. Right: the token is spent and the sign-in finishes as every other (the backend's
    /// normal response, a session). Wrong: the token counts a failure (the fifth kills it) and
    /// the account a failed sign-in (the login throttle).
    ///
    /// # Errors
    /// [`ManagerError::MfaTokenInvalid`] (unknown, used, expired, dead, or another backend's),
    /// [`ManagerError::MfaInvalidCode`], [`ManagerError::LoginRefused`] (the throttle), or the
    /// errors of a sign-in.
    pub async fn login_with_second_factor(
        &self,
        mfa_token: &str,
        answer: SecondFactorAnswer,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let mfa = self.mfa()?;
        let (hash, challenge) = self.pending_sign_in(mfa_token, backend).await?;
        let user = self
            .store()
            .get(&challenge.user_id)
            .await?
            .ok_or(ManagerError::MfaTokenInvalid)?;
        let method = parse_method(&challenge.method);
        let account = crate::limits::account_key(&user.email)
            .unwrap_or_else(|| format!("{method}:{}", user.id));
        self.throttled(&method, &account, request, async {
            let (accepted, used) = match &answer {
                SecondFactorAnswer::Code(code) => (
                    self.accept_totp_code(&user.id, code).await?,
                    AuditEvent::SecondFactorUsed,
                ),
                SecondFactorAnswer::RecoveryCode(code) => (
                    self.accept_recovery_code(&user.id, code.expose()).await?,
                    AuditEvent::RecoveryCodeUsed,
                ),
            };
            if !accepted {
                mfa.fail_mfa_challenge(&hash).await?;
                let refused =
                    Refused::new(&method, &account, LoginFailure::SecondFactorFailed, request);
                return Err(self
                    .refuse(refused, Some(&user.id), ManagerError::MfaInvalidCode)
                    .await);
            }
            if !mfa
                .take_mfa_challenge(&hash, now_unix(), MAX_MFA_FAILURES)
                .await?
            {
                return Err(ManagerError::MfaTokenInvalid);
            }
            self.audit(used, Some(&user.id), request).await;
            self.finish_login(
                user,
                &method,
                &account,
                backend,
                request,
                LoginResponse::Transport,
                crate::login::Proof::SecondStep,
            )
            .await
        })
        .await
    }

    /// The live pending sign-in of an mfa token on `backend`, with the token's keyed hash.
    pub(crate) async fn pending_sign_in(
        &self,
        mfa_token: &str,
        backend: &AuthBackend<S::Id>,
    ) -> Result<(String, MfaChallenge<S::Id>), ManagerError> {
        let mfa = self.mfa()?;
        if mfa_token.is_empty() || mfa_token.len() > MAX_INPUT {
            return Err(ManagerError::MfaTokenInvalid);
        }
        let hash = self
            .key_ring()
            .mac(Purpose::MfaToken, &[mfa_token.as_bytes()]);
        let challenge = mfa
            .get_mfa_challenge(&hash, now_unix())
            .await?
            .filter(|c| c.failures < MAX_MFA_FAILURES && c.backend == backend.name)
            .ok_or(ManagerError::MfaTokenInvalid)?;
        Ok((hash, challenge))
    }

    /// When the user has a second factor (a confirmed TOTP factor, or a passkey): a new pending sign-in (the mfa token and the
    /// methods that complete it). `None` lets the sign-in finish.
    pub(crate) async fn second_factor_challenge(
        &self,
        user: &UserOf<S>,
        method: &SignInMethod,
        backend: &AuthBackend<S::Id>,
    ) -> Result<Option<MfaRequired>, ManagerError> {
        let Some(mfa) = self.store().mfa_store() else {
            return Ok(None);
        };
        let totp = mfa.get_totp(&user.id).await?.is_some_and(|r| r.confirmed);
        let passkey = self.passkey_second_factor(&user.id).await?;
        let codes = !mfa.recovery_codes(&user.id).await?.is_empty();
        // A user's passkeys keep asking for a second factor when passkeys are turned off (or
        // their settings break): then a recovery code answers, rather than nothing being asked.
        let passkeys_stored = !passkey && codes && self.passkey_count(&user.id).await? > 0;
        if !totp && !passkey && !passkeys_stored {
            return Ok(None);
        }
        let token = random_token(32);
        let hash = self.key_ring().mac(Purpose::MfaToken, &[token.as_bytes()]);
        let now = now_unix();
        let challenge = MfaChallenge::new(
            user.id.clone(),
            backend.name.clone(),
            method.to_string(),
            now.saturating_add(MFA_TOKEN_LIFETIME),
        );
        // Expired tokens go when new ones come: the table holds minutes of sign-ins at most.
        mfa.prune_mfa_challenges(now).await?;
        mfa.create_mfa_challenge(&hash, &challenge).await?;
        let mut methods = Vec::new();
        if totp {
            methods.push("totp");
        }
        if codes {
            methods.push("recovery_code");
        }
        if passkey {
            methods.push("passkey");
        }
        Ok(Some(MfaRequired {
            mfa_token: Secret::new(token),
            methods,
        }))
    }

    fn open_secret(&self, record: &TotpRecord) -> Result<String, ManagerError> {
        // A secret not sealed by us (no prefix) is refused rather than used in clear.
        record
            .sealed_secret
            .starts_with("v1.")
            .then(|| {
                self.key_ring()
                    .decrypt(Purpose::TotpSecret, &record.sealed_secret)
            })
            .flatten()
            .ok_or(ManagerError::MfaSecretUnreadable)
    }

    /// Whether `code` is a current code of the user's confirmed factor of a step not used yet;
    /// if so, the step is spent.
    async fn accept_totp_code(&self, user_id: &S::Id, code: &str) -> Result<bool, ManagerError> {
        let mfa = self.mfa()?;
        let Some(record) = mfa.get_totp(user_id).await?.filter(|r| r.confirmed) else {
            return Ok(false);
        };
        let secret = self.open_secret(&record)?;
        let Some(step) = totp::matching_step(&secret, code, now_unix()) else {
            return Ok(false);
        };
        Ok(mfa.use_totp_step(user_id, step).await?)
    }

    /// Whether `code` is one of the user's unused recovery codes; if so, it is spent.
    async fn accept_recovery_code(
        &self,
        user_id: &S::Id,
        code: &str,
    ) -> Result<bool, ManagerError> {
        let mfa = self.mfa()?;
        let Some(normalized) = totp::normalize_recovery_code(code) else {
            return Ok(false);
        };
        let hash = self.recovery_hash(user_id, &normalized);
        let stored = mfa.recovery_codes(user_id).await?;
        // Every stored hash is compared, so the time does not say which one matched.
        let found = stored.iter().fold(false, |found, candidate| {
            constant_time_eq(candidate.as_bytes(), hash.as_bytes()) | found
        });
        if !found {
            return Ok(false);
        }
        Ok(mfa.use_recovery_code(user_id, &hash).await?)
    }

    fn recovery_hash(&self, user_id: &S::Id, normalized: &str) -> String {
        let id = user_id.to_string();
        self.key_ring().mac(
            Purpose::RecoveryCode,
            &[id.as_bytes(), normalized.as_bytes()],
        )
    }

    /// Ten new recovery codes, as shown to the user and as stored.
    fn new_recovery_codes(&self, user_id: &S::Id) -> (Vec<Secret>, Vec<String>) {
        (0..RECOVERY_CODES)
            .map(|_| {
                let code = totp::new_recovery_code();
                let hash = match totp::normalize_recovery_code(&code) {
                    Some(normalized) => self.recovery_hash(user_id, &normalized),
                    None => unreachable_code_shape(),
                };
                (Secret::new(code), hash)
            })
            .unzip()
    }
}

/// A generated recovery code always normalises; this is never reached.
#[cold]
fn unreachable_code_shape() -> String {
    tracing::error!("a generated recovery code did not normalise");
    random_token(32)
}

/// The sign-in method a challenge recorded.
pub(crate) fn parse_method(stored: &str) -> SignInMethod {
    match stored.strip_prefix("oauth:") {
        Some(provider) => SignInMethod::OAuth(provider.to_owned()),
        None if stored == "passkey" => SignInMethod::Passkey,
        None => SignInMethod::Password,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_keeps_its_method() {
        assert_eq!(parse_method("password"), SignInMethod::Password);
        assert_eq!(
            parse_method("oauth:github"),
            SignInMethod::OAuth("github".into())
        );
        assert_eq!(
            parse_method(&SignInMethod::OAuth("x".into()).to_string()),
            SignInMethod::OAuth("x".into())
        );
    }

    #[test]
    fn settings_default_to_ten_minutes_and_our_name() {
        let s = MfaSettings::default();
        assert_eq!(s.recent_sign_in, Duration::from_secs(600));
        assert_eq!(s.issuer, "axum-users");
        assert_eq!(s.with_issuer("Acme").issuer, "Acme");
    }
}
