//! Passkeys (WebAuthn), owned by the manager: registration for the signed-in user, a
//! passwordless sign-in with a discoverable credential, and a passkey as the second factor of
//! a pending sign-in. The checks of a ceremony are `webauthn-rs`'s; the rules here:
//!
//! - every ceremony's state lives in the store under the keyed hash of a random handle (its
//!   own sub-key), is spent by the first finish (any node), and lives
//!   [`PASSKEY_CHALLENGE_LIFETIME`] seconds; a second-factor ceremony is also bound to the
//!   mfa token it was started with, a registration to its user;
//! - the relying party id and origin come from the public URL (and an allow-list of extra
//!   origins), never from a request;
//! - user verification is required: a passkey sign-in is two factors, so a user with TOTP is
//!   not asked again;
//! - a signature counter that does not move forward is refused and recorded as a possible
//!   clone (`login.failed`, reason `passkey_clone_suspected`), and the counter is advanced with
//!   a compare-and-swap;
//! - adding one needs a fresh proof (the current password, or a recent sign-in), as a TOTP
//!   enrolment does; removing the last one of a user with no password and no linked account
//!   is refused (the last way in).

mod store;

use std::time::Duration;

use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
    WebauthnError,
};

pub use store::{PasskeyChallenge, PasskeyRecord, PasskeyRemoval, PasskeyStore, PasskeyStoreRef};

use crate::audit::{AuditEvent, LoginFailure};
use crate::auth::AuthBackend;
use crate::hooks::{SecondFactorChange, SignInMethod, UserHooks};
use crate::keys::Purpose;
use crate::limits::LimitedRoute;
use crate::login::{LoginOutcome, LoginResponse, Proof, Refused};
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::secret::{Secret, constant_time_eq, random_token};
use crate::store::UserStore;
use crate::tokens::now_unix;

/// How long a ceremony (registration, sign-in, second factor) may take, seconds.
pub const PASSKEY_CHALLENGE_LIFETIME: i64 = 300;
/// The most passkeys one user may register.
pub const MAX_PASSKEYS: usize = 20;
/// The longest name of a passkey, characters.
pub const MAX_PASSKEY_NAME: usize = 64;
/// The longest handle or token read; longer ones are wrong without a lookup.
const MAX_HANDLE: usize = 128;

/// Where passkeys are valid: the relying party (id and name) and the origins whose ceremonies
/// are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeySettings {
    rp_id: String,
    rp_name: String,
    origin: Url,
    extra_origins: Vec<Url>,
}

/// Why [`PasskeySettings`] cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasskeyConfigError {
    /// An origin is not an absolute `https://` URL (or `http://` on localhost).
    #[error("`{0}` is not an absolute https:// URL (plain http:// only on localhost)")]
    BadOrigin(String),
    /// The public URL's host is an IP address (or there is none): an RP id must be a domain
    /// (on loopback, use `http://localhost:PORT`).
    #[error(
        "passkeys need a domain name in the public URL, not `{0}` (use http://localhost:PORT on loopback)"
    )]
    NotADomain(String),
    /// `webauthn-rs` refused the relying party.
    #[error("the passkeys' relying party was refused: {0}")]
    Refused(String),
}

fn origin_of(url: &str) -> Result<Url, PasskeyConfigError> {
    let bad = || PasskeyConfigError::BadOrigin(url.to_owned());
    let parsed = Url::parse(url).map_err(|_| bad())?;
    // Browsers run WebAuthn on plain http only for localhost: any other http origin is one a
    // network attacker could serve.
    let local = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(parsed.scheme() == "https" || parsed.scheme() == "http" && local) {
        return Err(bad());
    }
    Url::parse(&parsed.origin().ascii_serialization()).map_err(|_| bad())
}

impl PasskeySettings {
    /// The relying party of a public URL: its host is the RP id, its origin the origin.
    ///
    /// # Errors
    /// [`PasskeyConfigError::BadOrigin`], or [`PasskeyConfigError::NotADomain`] for an IP.
    pub fn for_public_url(public_url: &str) -> Result<Self, PasskeyConfigError> {
        let origin = origin_of(public_url)?;
        let rp_id = origin
            .domain()
            .map(str::to_owned)
            .ok_or_else(|| PasskeyConfigError::NotADomain(public_url.to_owned()))?;
        let settings = Self {
            rp_name: rp_id.clone(),
            rp_id,
            origin,
            extra_origins: Vec::new(),
        };
        settings.webauthn()?;
        Ok(settings)
    }

    /// One more origin whose ceremonies are accepted (another port or subdomain of the RP id,
    /// an app's origin).
    ///
    /// # Errors
    /// [`PasskeyConfigError::BadOrigin`].
    pub fn with_extra_origin(mut self, origin: &str) -> Result<Self, PasskeyConfigError> {
        self.extra_origins.push(origin_of(origin)?);
        Ok(self)
    }

    /// The name authenticators show for the relying party (default: the RP id).
    pub fn with_rp_name(mut self, name: impl Into<String>) -> Self {
        self.rp_name = name.into();
        self
    }

    /// The relying party id (the public URL's host).
    pub fn rp_id(&self) -> &str {
        &self.rp_id
    }

    /// Every origin accepted, the public URL's first.
    pub fn origins(&self) -> Vec<String> {
        std::iter::once(&self.origin)
            .chain(&self.extra_origins)
            .map(|o| o.origin().ascii_serialization())
            .collect()
    }

    pub(crate) fn webauthn(&self) -> Result<Webauthn, PasskeyConfigError> {
        let refused = |e: WebauthnError| PasskeyConfigError::Refused(e.to_string());
        let mut builder = WebauthnBuilder::new(&self.rp_id, &self.origin)
            .map_err(refused)?
            .rp_name(&self.rp_name)
            .timeout(Duration::from_secs(PASSKEY_CHALLENGE_LIFETIME as u64));
        for origin in &self.extra_origins {
            builder = builder.append_allowed_origin(origin);
        }
        builder.build().map_err(refused)
    }
}

/// A passkey as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PasskeyInfo {
    /// Our id of it.
    pub id: String,
    /// The user's name for it.
    pub name: String,
    /// When it was registered, Unix seconds.
    pub created_at: i64,
    /// When it last signed the user in, Unix seconds.
    pub last_used_at: Option<i64>,
}

impl<Id> From<&PasskeyRecord<Id>> for PasskeyInfo {
    fn from(r: &PasskeyRecord<Id>) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created_at: r.created_at,
            last_used_at: r.last_used_at,
        }
    }
}

/// The start of a ceremony: the options for `navigator.credentials.create()` / `.get()` and
/// the handle its finish must come back with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PasskeyCeremony {
    /// The handle of the ceremony (single use, [`PASSKEY_CHALLENGE_LIFETIME`] seconds).
    pub challenge_id: Secret,
    /// `{"publicKey": {...}}` (and `mediation` for a discoverable sign-in), as WebAuthn's JSON
    /// forms (`PublicKeyCredential.parseCreationOptionsFromJSON` / `...RequestOptions...`).
    pub options: Value,
}

/// What a registration keeps between its start and its finish.
#[derive(Serialize, Deserialize)]
struct RegistrationState {
    user_handle: String,
    state: PasskeyRegistration,
}

/// What a second-factor ceremony keeps: the mfa token it is bound to (its keyed hash).
#[derive(Serialize, Deserialize)]
struct SecondFactorState {
    mfa_token: String,
    state: PasskeyAuthentication,
}

/// A finished registration: the passkey, and the recovery codes when it was the user's first
/// second factor (shown this once).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PasskeyRegistered {
    /// The new passkey.
    pub passkey: PasskeyInfo,
    /// Ten new recovery codes, only when the user had no second factor before.
    pub recovery_codes: Option<Vec<Secret>>,
}

const REGISTER: &str = "register";
const SIGN_IN: &str = "sign_in";
const SECOND_FACTOR: &str = "mfa";

/// The key of a credential in the store: SHA-256 of its id, hex.
fn credential_key(credential_id: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(credential_id)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A passkey's name: trimmed, 1 to [`MAX_PASSKEY_NAME`] characters, no control characters.
fn checked_name(name: &str) -> Result<String, ManagerError> {
    let name = name.trim();
    let length = name.chars().count();
    if length == 0 || length > MAX_PASSKEY_NAME || name.chars().any(char::is_control) {
        return Err(ManagerError::PasskeyNameInvalid);
    }
    Ok(name.to_owned())
}

/// Whether an assertion passed.
enum Verdict {
    Accepted,
    /// Refused; `cloned` when the counter did not move forward.
    Refused {
        cloned: bool,
    },
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    fn relying_party(&self) -> Result<&Webauthn, ManagerError> {
        self.webauthn().ok_or(ManagerError::PasskeyUnavailable)
    }

    fn passkey_store(&self) -> Result<PasskeyStoreRef<S::Id>, ManagerError> {
        self.store()
            .passkey_store()
            .ok_or(ManagerError::PasskeyUnavailable)
    }

    fn ceremony_hash(&self, handle: &str) -> String {
        self.key_ring()
            .mac(Purpose::PasskeyChallenge, &[handle.as_bytes()])
    }

    /// Stores a ceremony and hands out its handle.
    async fn new_ceremony(
        &self,
        store: &PasskeyStoreRef<S::Id>,
        kind: &str,
        user_id: Option<S::Id>,
        backend: &str,
        state: String,
        options: Value,
    ) -> Result<PasskeyCeremony, ManagerError> {
        let handle = random_token(32);
        let now = now_unix();
        // Expired ceremonies go when new ones come: the table holds minutes of them at most.
        store.prune_passkey_challenges(now).await?;
        let challenge = PasskeyChallenge::new(
            kind,
            user_id,
            backend,
            state,
            now.saturating_add(PASSKEY_CHALLENGE_LIFETIME),
        );
        store
            .create_passkey_challenge(&self.ceremony_hash(&handle), &challenge)
            .await?;
        Ok(PasskeyCeremony {
            challenge_id: Secret::new(handle),
            options,
        })
    }

    /// Spends the ceremony of `handle` if it is alive and of `kind`.
    async fn take_ceremony(
        &self,
        store: &PasskeyStoreRef<S::Id>,
        handle: &str,
        kind: &str,
        backend: &str,
    ) -> Result<PasskeyChallenge<S::Id>, ManagerError> {
        if handle.is_empty() || handle.len() > MAX_HANDLE {
            return Err(ManagerError::PasskeyChallengeInvalid);
        }
        store
            .take_passkey_challenge(&self.ceremony_hash(handle), now_unix())
            .await?
            .filter(|c| c.kind == kind && c.backend == backend)
            .ok_or(ManagerError::PasskeyChallengeInvalid)
    }

    /// The user's passkeys, oldest first.
    ///
    /// # Errors
    /// [`ManagerError::PasskeyUnavailable`], or a store failure.
    pub async fn passkeys(&self, user: &UserOf<S>) -> Result<Vec<PasskeyInfo>, ManagerError> {
        let store = self.passkey_store()?;
        let records = store.list_passkeys(&user.id).await?;
        Ok(records.iter().map(PasskeyInfo::from).collect())
    }

    /// How many passkeys the user has (0 when the store keeps none).
    pub(crate) async fn passkey_count(&self, user_id: &S::Id) -> Result<usize, ManagerError> {
        match self.store().passkey_store() {
            Some(store) => Ok(store.list_passkeys(user_id).await?.len()),
            None => Ok(0),
        }
    }

    /// Whether a pending sign-in of this user may be completed with a passkey.
    pub(crate) async fn passkey_second_factor(
        &self,
        user_id: &S::Id,
    ) -> Result<bool, ManagerError> {
        Ok(self.webauthn().is_some() && self.passkey_count(user_id).await? > 0)
    }

    /// Begins registering a passkey for the signed-in user, proved as a TOTP enrolment is: a
    /// user with a password by `current_password`, one without by a recent sign-in
    /// (`session_id`'s session at most [`crate::MfaSettings::recent_sign_in`] old).
    ///
    /// # Errors
    /// [`ManagerError::PasskeyUnavailable`], [`ManagerError::CurrentPasswordRequired`],
    /// [`ManagerError::BadCurrentPassword`], [`ManagerError::MfaRecentSignInRequired`],
    /// [`ManagerError::PasskeyLimitReached`], or a failure.
    pub async fn begin_passkey_registration(
        &self,
        user: &UserOf<S>,
        current_password: Option<&Secret>,
        session_id: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<PasskeyCeremony, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        self.fresh_proof(user, current_password, session_id, request)
            .await?;
        let existing = store.list_passkeys(&user.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(ManagerError::PasskeyLimitReached);
        }
        // One user handle per user, kept by every passkey of theirs.
        let user_handle = existing
            .first()
            .and_then(|p| Uuid::parse_str(&p.user_handle).ok())
            .unwrap_or_else(Uuid::new_v4);
        let exclude = existing
            .iter()
            .map(|p| parse_passkey(&p.passkey).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (options, state) = webauthn
            .start_passkey_registration(user_handle, &user.email, &user.email, Some(exclude))
            .map_err(ceremony_failure)?;
        let state = RegistrationState {
            user_handle: user_handle.to_string(),
            state,
        };
        let state = serde_json::to_string(&state).map_err(|_| ManagerError::PasskeyUnreadable)?;
        let mut options =
            serde_json::to_value(&options).map_err(|_| ManagerError::PasskeyUnreadable)?;
        // A discoverable credential is preferred: it is what signs in without an e-mail.
        if let Some(selection) = options["publicKey"]["authenticatorSelection"].as_object_mut() {
            selection.insert("residentKey".into(), Value::from("preferred"));
            selection.insert("requireResidentKey".into(), Value::Bool(false));
        }
        self.new_ceremony(&store, REGISTER, Some(user.id.clone()), "", state, options)
            .await
    }

    /// Finishes a registration with the browser's credential (the JSON of
    /// `PublicKeyCredential.toJSON()`), under `name` (default `Passkey`). When it is the user's
    /// first second factor (no TOTP factor, no recovery codes), the ten recovery codes come
    /// with it, as a TOTP confirmation gives them.
    ///
    /// # Errors
    /// [`ManagerError::PasskeyChallengeInvalid`] (unknown, used, expired, another user's),
    /// [`ManagerError::PasskeyInvalid`] (the credential fails the checks, or is registered
    /// already), [`ManagerError::PasskeyNameInvalid`], [`ManagerError::PasskeyLimitReached`],
    /// or a failure.
    pub async fn finish_passkey_registration(
        &self,
        user: &UserOf<S>,
        challenge_id: &str,
        credential: &Value,
        name: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<PasskeyRegistered, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        let name = checked_name(name.unwrap_or("Passkey"))?;
        let credential: RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| ManagerError::PasskeyInvalid)?;
        let challenge = self
            .take_ceremony(&store, challenge_id, REGISTER, "")
            .await?;
        if challenge.user_id.as_ref() != Some(&user.id) {
            return Err(ManagerError::PasskeyChallengeInvalid);
        }
        let state: RegistrationState = serde_json::from_str(&challenge.state)
            .map_err(|_| ManagerError::PasskeyChallengeInvalid)?;
        let passkey = webauthn
            .finish_passkey_registration(&credential, &state.state)
            .map_err(|e| {
                tracing::debug!(error = %e, "a passkey registration was refused");
                ManagerError::PasskeyInvalid
            })?;
        if store.list_passkeys(&user.id).await?.len() >= MAX_PASSKEYS {
            return Err(ManagerError::PasskeyLimitReached);
        }
        let serialized =
            serde_json::to_string(&passkey).map_err(|_| ManagerError::PasskeyUnreadable)?;
        let record = PasskeyRecord::new(
            random_hex_id(),
            user.id.clone(),
            credential_key(passkey.cred_id()),
            state.user_handle,
            name,
            serialized,
            0,
            now_unix(),
            None,
        );
        if !store.create_passkey(&record).await? {
            // Registered already (to this user or another): a credential has one owner.
            return Err(ManagerError::PasskeyInvalid);
        }
        let recovery_codes = self.recovery_codes_for_a_first_passkey(&user.id).await?;
        self.hooks()
            .on_second_factor_changed(user, SecondFactorChange::Added)
            .await;
        self.audit(AuditEvent::PasskeyAdded, Some(&user.id), request)
            .await;
        Ok(PasskeyRegistered {
            passkey: PasskeyInfo::from(&record),
            recovery_codes,
        })
    }

    /// Renames one of the user's passkeys.
    ///
    /// # Errors
    /// [`ManagerError::PasskeyNotFound`], [`ManagerError::PasskeyNameInvalid`], or a failure.
    pub async fn rename_passkey(
        &self,
        user: &UserOf<S>,
        id: &str,
        name: &str,
    ) -> Result<PasskeyInfo, ManagerError> {
        let store = self.passkey_store()?;
        let name = checked_name(name)?;
        if id.len() > MAX_HANDLE || !store.rename_passkey(&user.id, id, &name).await? {
            return Err(ManagerError::PasskeyNotFound);
        }
        let records = store.list_passkeys(&user.id).await?;
        records
            .iter()
            .find(|r| r.id == id)
            .map(PasskeyInfo::from)
            .ok_or(ManagerError::PasskeyNotFound)
    }

    /// Removes one of the user's passkeys; `keep_one` refuses the last one (the caller knows
    /// whether it is the last way in).
    pub(crate) async fn delete_passkey(
        &self,
        user: &UserOf<S>,
        id: &str,
        keep_one: bool,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        let store = self.passkey_store()?;
        if id.len() > MAX_HANDLE {
            return Err(ManagerError::PasskeyNotFound);
        }
        match store.delete_passkey(&user.id, id, keep_one).await? {
            PasskeyRemoval::Removed => {
                self.hooks()
                    .on_second_factor_changed(user, SecondFactorChange::Removed)
                    .await;
                self.audit(AuditEvent::PasskeyRemoved, Some(&user.id), request)
                    .await;
                Ok(())
            }
            PasskeyRemoval::NotFound => Err(ManagerError::PasskeyNotFound),
            PasskeyRemoval::LastOne => Err(ManagerError::LastSignInMethod),
        }
    }

    /// Begins a passwordless sign-in on `backend`: options for a discoverable credential (the
    /// authenticator names the user). Counted by the login route's rate limits.
    ///
    /// # Errors
    /// [`ManagerError::PasskeyUnavailable`], [`ManagerError::LoginRefused`], or a failure.
    pub async fn begin_passkey_sign_in(
        &self,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<PasskeyCeremony, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        self.rate_limit(LimitedRoute::Login, request, None).await?;
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(ceremony_failure)?;
        let state = serde_json::to_string(&state).map_err(|_| ManagerError::PasskeyUnreadable)?;
        let options =
            serde_json::to_value(&options).map_err(|_| ManagerError::PasskeyUnreadable)?;
        self.new_ceremony(&store, SIGN_IN, None, &backend.name, state, options)
            .await
    }

    /// Finishes a passwordless sign-in with the browser's assertion: the same steps as every
    /// way in (throttle, rules, session, events); the user's own second factor is not asked
    /// for after it (the passkey verified its user), the application's
    /// [`UserHooks::second_factor`] is, with [`SignInMethod::Passkey`].
    ///
    /// # Errors
    /// [`ManagerError::PasskeyChallengeInvalid`], [`ManagerError::PasskeyInvalid`] (unknown
    /// credential, a failed check, a counter that went back), or the errors of a sign-in.
    pub async fn login_with_passkey(
        &self,
        challenge_id: &str,
        credential: &Value,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| ManagerError::PasskeyInvalid)?;
        let challenge = self
            .take_ceremony(&store, challenge_id, SIGN_IN, &backend.name)
            .await?;
        let state: DiscoverableAuthentication = serde_json::from_str(&challenge.state)
            .map_err(|_| ManagerError::PasskeyChallengeInvalid)?;
        let (user_handle, credential_id) = webauthn
            .identify_discoverable_authentication(&credential)
            .map_err(|_| ManagerError::PasskeyInvalid)?;
        let record = store
            .passkey_by_credential(&credential_key(credential_id))
            .await?
            .filter(|r| {
                constant_time_eq(r.user_handle.as_bytes(), user_handle.to_string().as_bytes())
            })
            .ok_or(ManagerError::PasskeyInvalid)?;
        let user = self
            .store()
            .get(&record.user_id)
            .await?
            .ok_or(ManagerError::PasskeyInvalid)?;
        let method = SignInMethod::Passkey;
        let account = crate::limits::account_key(&user.email)
            .unwrap_or_else(|| format!("passkey:{}", user.id));
        self.throttled(&method, &account, request, async {
            let verdict = self
                .accept_assertion(&store, &record, |passkey| {
                    let key = webauthn_rs::prelude::DiscoverableKey::from(passkey);
                    webauthn.finish_discoverable_authentication(&credential, state, &[key])
                })
                .await?;
            if let Verdict::Refused { cloned } = verdict {
                let failure = if cloned {
                    LoginFailure::PasskeyCloneSuspected
                } else {
                    LoginFailure::BadPasskey
                };
                let refused = Refused::new(&method, &account, failure, request);
                return Err(self.refuse_passkey(refused, &user.id).await);
            }
            self.signed_in_by_passkey(
                user,
                &method,
                &account,
                backend,
                request,
                Proof::MultiFactor,
            )
            .await
        })
        .await
    }

    /// Begins the second step of a pending sign-in with a passkey: options naming the user's
    /// passkeys, bound to the mfa token.
    ///
    /// # Errors
    /// [`ManagerError::MfaTokenInvalid`], [`ManagerError::PasskeyNotFound`] (the user has
    /// none), [`ManagerError::PasskeyUnavailable`], or a failure.
    pub async fn begin_passkey_second_factor(
        &self,
        mfa_token: &str,
        backend: &AuthBackend<S::Id>,
    ) -> Result<PasskeyCeremony, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        let (token_hash, challenge) = self.pending_sign_in(mfa_token, backend).await?;
        let passkeys = store
            .list_passkeys(&challenge.user_id)
            .await?
            .iter()
            .map(|r| parse_passkey(&r.passkey))
            .collect::<Result<Vec<_>, _>>()?;
        if passkeys.is_empty() {
            return Err(ManagerError::PasskeyNotFound);
        }
        let (options, state) = webauthn
            .start_passkey_authentication(&passkeys)
            .map_err(ceremony_failure)?;
        let state = SecondFactorState {
            mfa_token: token_hash,
            state,
        };
        let state = serde_json::to_string(&state).map_err(|_| ManagerError::PasskeyUnreadable)?;
        let options =
            serde_json::to_value(&options).map_err(|_| ManagerError::PasskeyUnreadable)?;
        self.new_ceremony(
            &store,
            SECOND_FACTOR,
            Some(challenge.user_id),
            &backend.name,
            state,
            options,
        )
        .await
    }

    /// Completes a pending sign-in with a passkey: as [`UserManager::login_with_second_factor`]
    /// with a code (a refused assertion counts against the mfa token and the account).
    ///
    /// # Errors
    /// [`ManagerError::MfaTokenInvalid`], [`ManagerError::PasskeyChallengeInvalid`],
    /// [`ManagerError::PasskeyInvalid`], or the errors of a sign-in.
    pub async fn login_with_passkey_second_factor(
        &self,
        mfa_token: &str,
        challenge_id: &str,
        credential: &Value,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let webauthn = self.relying_party()?;
        let store = self.passkey_store()?;
        let mfa = self
            .store()
            .mfa_store()
            .ok_or(ManagerError::MfaUnavailable)?;
        let credential: PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|_| ManagerError::PasskeyInvalid)?;
        let (token_hash, pending) = self.pending_sign_in(mfa_token, backend).await?;
        let ceremony = self
            .take_ceremony(&store, challenge_id, SECOND_FACTOR, &backend.name)
            .await?;
        let state: SecondFactorState = serde_json::from_str(&ceremony.state)
            .map_err(|_| ManagerError::PasskeyChallengeInvalid)?;
        if ceremony.user_id.as_ref() != Some(&pending.user_id)
            || !constant_time_eq(state.mfa_token.as_bytes(), token_hash.as_bytes())
        {
            return Err(ManagerError::PasskeyChallengeInvalid);
        }
        let user = self
            .store()
            .get(&pending.user_id)
            .await?
            .ok_or(ManagerError::MfaTokenInvalid)?;
        let method = crate::mfa::parse_method(&pending.method);
        let account = crate::limits::account_key(&user.email)
            .unwrap_or_else(|| format!("{method}:{}", user.id));
        self.throttled(&method, &account, request, async {
            let record = store
                .passkey_by_credential(&credential_key(credential.get_credential_id()))
                .await?
                .filter(|r| r.user_id == user.id);
            let verdict = match &record {
                Some(record) => {
                    self.accept_assertion(&store, record, |_| {
                        webauthn.finish_passkey_authentication(&credential, &state.state)
                    })
                    .await?
                }
                None => Verdict::Refused { cloned: false },
            };
            if let Verdict::Refused { cloned } = verdict {
                mfa.fail_mfa_challenge(&token_hash).await?;
                let failure = if cloned {
                    LoginFailure::PasskeyCloneSuspected
                } else {
                    LoginFailure::SecondFactorFailed
                };
                let refused = Refused::new(&method, &account, failure, request);
                return Err(self.refuse_passkey(refused, &user.id).await);
            }
            if !mfa
                .take_mfa_challenge(&token_hash, now_unix(), crate::mfa::MAX_MFA_FAILURES)
                .await?
            {
                return Err(ManagerError::MfaTokenInvalid);
            }
            self.signed_in_by_passkey(user, &method, &account, backend, request, Proof::SecondStep)
                .await
        })
        .await
    }

    /// The end of a passkey sign-in: recorded, then the steps of every sign-in (`proof`: a
    /// passwordless one still meets the application's `second_factor` hook).
    async fn signed_in_by_passkey(
        &self,
        user: UserOf<S>,
        method: &SignInMethod,
        account: &str,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
        proof: Proof,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        self.audit(AuditEvent::PasskeyUsed, Some(&user.id), request)
            .await;
        self.finish_login(
            user,
            method,
            account,
            backend,
            request,
            LoginResponse::Transport,
            proof,
        )
        .await
    }

    async fn refuse_passkey(&self, refused: Refused<'_>, user_id: &S::Id) -> ManagerError {
        self.refuse(refused, Some(user_id), ManagerError::PasskeyInvalid)
            .await
    }

    /// Checks an assertion against a stored passkey (`verify` is the `webauthn-rs` check) and
    /// our counter, then records the use with a compare-and-swap on the counter.
    async fn accept_assertion(
        &self,
        store: &PasskeyStoreRef<S::Id>,
        record: &PasskeyRecord<S::Id>,
        verify: impl FnOnce(
            &Passkey,
        )
            -> Result<webauthn_rs::prelude::AuthenticationResult, WebauthnError>,
    ) -> Result<Verdict, ManagerError> {
        let mut passkey = parse_passkey(&record.passkey)?;
        let result = match verify(&passkey) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                tracing::warn!(passkey = %record.id, "a passkey's counter went back: possible clone");
                return Ok(Verdict::Refused { cloned: true });
            }
            Err(error) => {
                tracing::debug!(%error, "a passkey assertion was refused");
                return Ok(Verdict::Refused { cloned: false });
            }
        };
        if !result.user_verified() || result.cred_id() != passkey.cred_id() {
            return Ok(Verdict::Refused { cloned: false });
        }
        let count = i64::from(result.counter());
        // The stored counter, which may have moved since the ceremony began.
        if (count > 0 || record.sign_count > 0) && count <= record.sign_count {
            tracing::warn!(passkey = %record.id, "a passkey's counter went back: possible clone");
            return Ok(Verdict::Refused { cloned: true });
        }
        passkey.update_credential(&result);
        let serialized =
            serde_json::to_string(&passkey).map_err(|_| ManagerError::PasskeyUnreadable)?;
        if !store
            .use_passkey(
                &record.id,
                &serialized,
                record.sign_count,
                count,
                now_unix(),
            )
            .await?
        {
            // Another sign-in with this counter value won the race.
            return Ok(Verdict::Refused { cloned: true });
        }
        Ok(Verdict::Accepted)
    }
}

impl<S, H> UserManager<S, H>
where
    S: crate::RouterStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Removes one of the user's passkeys, proved as adding one is (the current password,
    /// behind the account's throttle, or for a user without one a recent sign-in), unless it
    /// is their last way to sign in (no usable password, no linked provider account, no other
    /// passkey): the rule of unlinking a provider, with its error. Every other session of the
    /// user ends (a thief holding one must not outlive the owner's clean-up); `session_id`,
    /// the removing one, stays.
    ///
    /// # Errors
    /// [`ManagerError::CurrentPasswordRequired`], [`ManagerError::BadCurrentPassword`],
    /// [`ManagerError::MfaRecentSignInRequired`], [`ManagerError::PasskeyNotFound`],
    /// [`ManagerError::LastSignInMethod`], or a failure.
    pub async fn remove_passkey(
        &self,
        user: &UserOf<S>,
        id: &str,
        current_password: Option<&Secret>,
        session_id: Option<&str>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        self.passkey_store()?;
        self.fresh_proof(user, current_password, session_id, request)
            .await?;
        #[cfg(feature = "oauth")]
        let linked = !self.store().list_oauth_accounts(&user.id).await?.is_empty();
        #[cfg(not(feature = "oauth"))]
        let linked = false;
        let keep_one = !user.hashed_password.is_usable() && !linked;
        self.delete_passkey(user, id, keep_one, request).await?;
        self.revoke_sessions_for(
            &user.id,
            session_id,
            crate::sessions::RevokeReason::SecondFactorRemoved,
            request,
        )
        .await?;
        Ok(())
    }
}

fn parse_passkey(stored: &str) -> Result<Passkey, ManagerError> {
    serde_json::from_str(stored).map_err(|_| ManagerError::PasskeyUnreadable)
}

fn ceremony_failure(error: WebauthnError) -> ManagerError {
    tracing::error!(%error, "a passkey ceremony could not be started");
    ManagerError::PasskeyUnreadable
}

/// A random id of 32 hex characters.
fn random_hex_id() -> String {
    let mut bytes = [0u8; 16];
    crate::secret::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_public_urls_host_and_never_an_ip() {
        let s = PasskeySettings::for_public_url("https://auth.example.com/base/").unwrap();
        assert_eq!(s.rp_id(), "auth.example.com");
        assert_eq!(s.origins(), vec!["https://auth.example.com".to_owned()]);
        let s = PasskeySettings::for_public_url("http://localhost:8080").unwrap();
        assert_eq!(s.rp_id(), "localhost");
        assert_eq!(s.origins(), vec!["http://localhost:8080".to_owned()]);
        assert!(matches!(
            PasskeySettings::for_public_url("http://127.0.0.1:8080"),
            Err(PasskeyConfigError::NotADomain(_))
        ));
        assert!(matches!(
            PasskeySettings::for_public_url("ftp://example.com"),
            Err(PasskeyConfigError::BadOrigin(_))
        ));
        let s = s.with_extra_origin("http://localhost:3000/app").unwrap();
        assert_eq!(s.origins().len(), 2);
        // Plain http elsewhere is an origin a network attacker could serve.
        assert!(matches!(
            PasskeySettings::for_public_url("http://auth.example.com"),
            Err(PasskeyConfigError::BadOrigin(_))
        ));
        assert!(matches!(
            s.clone().with_extra_origin("http://app.example.com"),
            Err(PasskeyConfigError::BadOrigin(_))
        ));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(checked_name("  Laptop ").unwrap(), "Laptop");
        assert!(checked_name(" ").is_err());
        assert!(checked_name(&"x".repeat(MAX_PASSKEY_NAME + 1)).is_err());
        assert!(checked_name("a\nb").is_err());
    }
}
