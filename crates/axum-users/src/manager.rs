//! The user manager: every business rule of the user lifecycle, independent of HTTP.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::audit::{AuditEvent, LoginFailure};
use crate::auth::StrategyError;
use crate::keys::{KeyRing, Purpose};

use crate::hooks::{InvalidPassword, PasswordOwner, UserHooks};
use crate::model::{NewUser, PasswordHash, UserFields, UserId};
use crate::password::{PasswordError, PasswordHasher, Verified};
use crate::secret::{Secret, constant_time_eq};
pub use crate::store::UserOf;
use crate::store::{StoreError, UserChanges, UserStore};
use crate::tokens::{JwtCodec, RESET_AUDIENCE, TokenError, VERIFY_AUDIENCE, now_unix};

/// Why a manager operation failed. Routes map each to its FastAPI Users error code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagerError {
    /// The e-mail address is taken.
    #[error("a user with this e-mail address already exists")]
    UserAlreadyExists,
    /// [`UserHooks::validate_password`] refused the password.
    #[error("the password was refused")]
    InvalidPassword(InvalidPassword),
    /// No such user.
    #[error("the user does not exist")]
    UserNotExists,
    /// The user is inactive.
    #[error("the user is inactive")]
    UserInactive,
    /// The user is verified already.
    #[error("the user is already verified")]
    UserAlreadyVerified,
    /// The verification token is invalid or expired.
    #[error("invalid verification token")]
    InvalidVerifyToken,
    /// The reset token is invalid, expired or used.
    #[error("invalid reset-password token")]
    InvalidResetPasswordToken,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A token could not be signed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The external account is linked to another user.
    #[error("the external account is linked to another user")]
    OAuthAccountAlreadyLinked,
    /// No such linked account for this user.
    #[error("no such linked account")]
    OAuthAccountNotFound,
    /// Unlinking would leave the user no way to sign in.
    #[error("the last way to sign in cannot be removed")]
    LastSignInMethod,
    /// Sign-in refused: unknown e-mail, wrong password, or an inactive user.
    #[error("bad credentials")]
    BadCredentials,
    /// Sign-in refused: verification is required and the user is not verified.
    #[error("the user is not verified")]
    UserNotVerified,
    /// The throttle seam refused the attempt before any check; retry after this long.
    #[error("too many attempts")]
    LoginRefused(Duration),
    /// A self-service change of e-mail or password came without the current password.
    #[error("the current password is required")]
    CurrentPasswordRequired,
    /// A self-service change of e-mail or password came with a wrong current password.
    #[error("the current password is wrong")]
    BadCurrentPassword,
    /// The provider did not verify the e-mail address, or is not trusted to.
    #[error("the provider has not verified the e-mail address")]
    OAuthEmailNotVerified,
    /// The provider's e-mail address fails the rules of registration.
    #[error("the provider's e-mail address is invalid")]
    OAuthInvalidEmail,
    /// A one-time login code is invalid, expired or used.
    #[error("invalid login code")]
    InvalidLoginCode,
    /// The backend's strategy failed to issue or revoke a token.
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// The refresh token is unknown, expired, revoked or another backend's, or its user may
    /// not sign in.
    #[error("invalid refresh token")]
    RefreshTokenInvalid,
    /// A rotated-out refresh token came back after the grace window: its session is revoked.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// No such session of this user.
    #[error("no such session")]
    SessionNotFound,
    /// The e-mail change token is malformed, expired, used or superseded.
    #[error("invalid e-mail change token")]
    InvalidEmailChangeToken,
    /// The store keeps no users directory ([`crate::UserStore::directory`]).
    #[error("the store cannot list users")]
    DirectoryUnavailable,
    /// A second-factor code (TOTP or recovery) is wrong, used, or of a step already used.
    #[error("invalid second-factor code")]
    MfaInvalidCode,
    /// The mfa token is unknown, used, expired, dead after five wrong codes, or another
    /// backend's.
    #[error("invalid mfa token")]
    MfaTokenInvalid,
    /// The user has a confirmed second factor already.
    #[error("a second factor is enabled already")]
    MfaAlreadyEnabled,
    /// The user has no (confirmed, or pending) second factor for this act.
    #[error("no second factor is enabled")]
    MfaNotEnabled,
    /// A user without a password must have signed in recently to enrol a factor.
    #[error("a recent sign-in is required")]
    MfaRecentSignInRequired,
    /// The store keeps no second factors.
    #[error("the store keeps no second factors")]
    MfaUnavailable,
    /// A stored TOTP secret cannot be opened (another server secret, or tampered).
    #[error("the stored TOTP secret cannot be read")]
    MfaSecretUnreadable,
    /// Passkeys are off (no relying party configured) or the store keeps none.
    #[error("passkeys are not available")]
    PasskeyUnavailable,
    /// The passkey ceremony's handle is unknown, used, expired, or another user's or
    /// backend's.
    #[error("invalid passkey challenge")]
    PasskeyChallengeInvalid,
    /// The browser's credential or assertion is malformed or fails a check (origin,
    /// signature, user verification, an unknown or duplicate credential, the counter).
    #[error("invalid passkey")]
    PasskeyInvalid,
    /// No such passkey of this user (or the user has none).
    #[error("no such passkey")]
    PasskeyNotFound,
    /// The user has [`crate::MAX_PASSKEYS`] passkeys already.
    #[error("too many passkeys")]
    PasskeyLimitReached,
    /// A passkey's name is empty, too long, or has control characters.
    #[error("invalid passkey name")]
    PasskeyNameInvalid,
    /// A stored passkey or ceremony state cannot be read, or a ceremony cannot be started.
    #[error("a stored passkey cannot be read")]
    PasskeyUnreadable,
}

/// Who is asking for a change: the user on themselves, or a superuser (or the application).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Privilege {
    /// A user on their own account (register, `PATCH /users/me`): the flags and the
    /// application's privileged fields are ignored, and changing e-mail or password needs the
    /// current password.
    SelfService,
    /// A superuser or the application: every field may be set.
    Superuser,
}

/// The rules a sign-in must pass after its credentials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginRules {
    /// Unverified users may not sign in (nor use the users routes).
    pub requires_verification: bool,
    /// FastAPI Users' client-visible behaviour: no current password on self-service changes.
    pub strict_compat: bool,
}

/// The input of [`UserManager::create`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UserCreate<F> {
    /// Normalised e-mail address (see [`crate::normalize_email`]).
    pub email: String,
    /// The plaintext password.
    pub password: Secret,
    /// Ignored for self-service; default true.
    pub is_active: Option<bool>,
    /// Ignored for self-service; default false.
    pub is_superuser: Option<bool>,
    /// Ignored for self-service; default false.
    pub is_verified: Option<bool>,
    /// Custom fields.
    pub fields: F,
}

impl<F: Default> UserCreate<F> {
    /// An active, unverified, ordinary user with default fields.
    pub fn new(email: impl Into<String>, password: impl Into<Secret>) -> Self {
        Self {
            email: email.into(),
            password: password.into(),
            is_active: None,
            is_superuser: None,
            is_verified: None,
            fields: F::default(),
        }
    }
}

/// The input of [`UserManager::update`]: only the fields present change.
#[derive(Debug, Default)]
pub struct UserUpdate<F: UserFields> {
    /// A new plaintext password.
    pub password: Option<Secret>,
    /// The current password, which a self-service change of e-mail or password must give.
    pub current_password: Option<Secret>,
    /// A new normalised e-mail address; changing it clears `is_verified`.
    pub email: Option<String>,
    /// Ignored for self-service.
    pub is_active: Option<bool>,
    /// Ignored for self-service.
    pub is_superuser: Option<bool>,
    /// Ignored for self-service.
    pub is_verified: Option<bool>,
    /// Changes to custom fields.
    pub fields: F::Update,
    /// The request object as received, handed to `on_after_update`.
    pub raw: Value,
}

/// Lifetimes of the reset and verification tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSettings {
    /// Reset token lifetime (default one hour).
    pub reset_lifetime: Duration,
    /// Verification token lifetime (default one hour).
    pub verify_lifetime: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            reset_lifetime: Duration::from_secs(3600),
            verify_lifetime: Duration::from_secs(3600),
        }
    }
}

impl TokenSettings {
    /// Both lifetimes.
    pub fn new(reset_lifetime: Duration, verify_lifetime: Duration) -> Self {
        Self {
            reset_lifetime,
            verify_lifetime,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct ResetClaims {
    sub: String,
    password_fgpt: String,
    aud: String,
    exp: i64,
    #[serde(default)]
    iat: i64,
}

#[derive(Serialize, Deserialize)]
struct VerifyClaims {
    sub: String,
    email: String,
    /// The user's `email_epoch` when the token was made: every e-mail change bumps it, so a
    /// token does not come back to life after an A→B→A change.
    #[serde(default)]
    epoch: i64,
    aud: String,
    exp: i64,
    #[serde(default)]
    iat: i64,
}

/// Holds the store, the hooks and the hasher, and applies the rules.
pub struct UserManager<S, H> {
    store: S,
    hooks: Arc<H>,
    passwords: PasswordHasher,
    settings: TokenSettings,
    rules: LoginRules,
    keys: KeyRing,
    reset_codec: JwtCodec,
    verify_codec: JwtCodec,
    /// Rate limits, login throttle, mail cooldown and password policy (`limits.rs`).
    defences: Arc<crate::limits::Defences>,
    sessions: crate::SessionSettings,
    /// Confirm or immediate, and the token lifetime (`email_change.rs`).
    email_change: crate::EmailChangeSettings,
    /// Issuer and recent sign-in window of the second factors (`mfa/`).
    mfa: Arc<crate::mfa::MfaSettings>,
    /// The passkeys' relying party, when passkeys are on (`passkeys/`).
    webauthn: Option<Arc<webauthn_rs::Webauthn>>,
}

impl<S: Clone, H> Clone for UserManager<S, H> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            hooks: self.hooks.clone(),
            passwords: self.passwords.clone(),
            settings: self.settings,
            rules: self.rules,
            keys: self.keys.clone(),
            reset_codec: self.reset_codec.clone(),
            verify_codec: self.verify_codec.clone(),
            defences: self.defences.clone(),
            sessions: self.sessions,
            email_change: self.email_change,
            mfa: self.mfa.clone(),
            webauthn: self.webauthn.clone(),
        }
    }
}

impl<S, H> UserManager<S, H> {
    /// The server's keys and their sub-keys.
    pub(crate) fn key_ring(&self) -> &KeyRing {
        &self.keys
    }
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// A manager over `store` with `hooks`, keying its tokens with sub-keys of `secret`.
    ///
    /// # Errors
    /// [`TokenError::Key`] for an empty secret.
    pub fn new(
        store: S,
        hooks: H,
        passwords: PasswordHasher,
        secret: Secret,
        settings: TokenSettings,
    ) -> Result<Self, TokenError> {
        Self::with_keys(
            store,
            hooks,
            passwords,
            KeyRing::new(secret, Vec::new()),
            settings,
        )
    }

    pub(crate) fn with_keys(
        store: S,
        hooks: H,
        passwords: PasswordHasher,
        keys: KeyRing,
        settings: TokenSettings,
    ) -> Result<Self, TokenError> {
        Ok(Self {
            reset_codec: keys.codec(Purpose::Reset)?,
            verify_codec: keys.codec(Purpose::Verify)?,
            keys,
            store,
            hooks: Arc::new(hooks),
            passwords,
            settings,
            rules: LoginRules::default(),
            defences: Arc::default(),
            sessions: crate::SessionSettings::default(),
            email_change: crate::EmailChangeSettings::default(),
            mfa: Arc::default(),
            webauthn: None,
        })
    }

    /// The same manager with another e-mail change mode or token lifetime.
    pub fn with_email_change(mut self, settings: crate::EmailChangeSettings) -> Self {
        self.email_change = settings;
        self
    }

    /// The e-mail change mode and token lifetime.
    pub fn email_change_settings(&self) -> crate::EmailChangeSettings {
        self.email_change
    }

    /// The same manager with other second-factor settings (issuer, recent sign-in window).
    pub fn with_mfa_settings(mut self, settings: crate::mfa::MfaSettings) -> Self {
        self.mfa = Arc::new(settings);
        self
    }

    /// The second-factor settings.
    pub fn mfa_settings(&self) -> &crate::mfa::MfaSettings {
        &self.mfa
    }

    /// The same manager with passkeys on, for the relying party of `settings`.
    ///
    /// # Errors
    /// [`crate::PasskeyConfigError`] when `webauthn-rs` refuses the relying party.
    pub fn with_passkeys(
        mut self,
        settings: &crate::PasskeySettings,
    ) -> Result<Self, crate::PasskeyConfigError> {
        self.webauthn = Some(Arc::new(settings.webauthn()?));
        Ok(self)
    }

    /// The passkeys' relying party, when passkeys are on.
    pub(crate) fn webauthn(&self) -> Option<&webauthn_rs::Webauthn> {
        self.webauthn.as_deref()
    }

    /// Whether passkeys are on: a relying party configured and a store that keeps them (what
    /// a user interface asks before it offers a passkey button).
    pub fn passkeys_on(&self) -> bool {
        self.webauthn.is_some() && self.store.passkey_store().is_some()
    }

    /// The same manager with other session settings (revocable JWTs, refresh tokens).
    pub fn with_session_settings(mut self, settings: crate::SessionSettings) -> Self {
        self.sessions = settings;
        self
    }

    /// How sessions behave.
    pub fn session_settings(&self) -> crate::SessionSettings {
        self.sessions
    }

    /// The same manager with other sign-in rules.
    pub fn with_login_rules(mut self, rules: LoginRules) -> Self {
        self.rules = rules;
        self
    }

    /// The rules a sign-in must pass.
    pub fn login_rules(&self) -> LoginRules {
        self.rules
    }

    /// The same manager with other abuse defences (rate limits, throttle, password policy).
    pub fn with_defences(mut self, defences: crate::limits::Defences) -> Self {
        self.defences = Arc::new(defences);
        self
    }

    /// The abuse defences in force.
    pub fn defences(&self) -> &crate::limits::Defences {
        &self.defences
    }

    /// The user a token names, for the authenticator: the token's strategy vouched for the
    /// id; the flags are checked by the route's requirements.
    ///
    /// # Errors
    /// A store failure.
    pub async fn user_of_token(&self, id: &S::Id) -> Result<Option<UserOf<S>>, ManagerError> {
        Ok(self.store.get(id).await?)
    }

    /// The user of a JWT FastAPI Users issued, accepted within the window of
    /// [`crate::SessionSettings::fastapi_users_jwt_until`]: only while the user's password hash
    /// is still one this server did not write, so that a password change, a reset or the rehash
    /// at a password sign-in here voids the user's old tokens (they carry no session to revoke).
    /// The flags are checked by the route's requirements, as for every token.
    ///
    /// # Errors
    /// A store failure.
    pub async fn user_of_fastapi_users_token(
        &self,
        id: &S::Id,
    ) -> Result<Option<UserOf<S>>, ManagerError> {
        let user = self.store.get(id).await?;
        Ok(user.filter(|u| !self.passwords.is_current(&u.hashed_password)))
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The hooks.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The password hasher.
    pub fn passwords(&self) -> &PasswordHasher {
        &self.passwords
    }

    /// A user by id.
    ///
    /// # Errors
    /// [`ManagerError::UserNotExists`], or a store failure.
    pub async fn get(&self, id: &S::Id) -> Result<UserOf<S>, ManagerError> {
        self.store.get(id).await?.ok_or(ManagerError::UserNotExists)
    }

    /// A user by e-mail, case-insensitively.
    ///
    /// # Errors
    /// [`ManagerError::UserNotExists`], or a store failure.
    pub async fn get_by_email(&self, email: &str) -> Result<UserOf<S>, ManagerError> {
        self.store
            .get_by_email(email)
            .await?
            .ok_or(ManagerError::UserNotExists)
    }

    /// Creates a user. Self-service (registration) ignores the flags and resets the
    /// application's privileged fields.
    ///
    /// The password is validated first, then the e-mail checked; the database's unique
    /// constraint decides races.
    ///
    /// # Errors
    /// [`ManagerError::InvalidPassword`], [`ManagerError::UserAlreadyExists`], or a failure.
    pub async fn create(
        &self,
        mut create: UserCreate<S::Fields>,
        privilege: Privilege,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let safe = privilege == Privilege::SelfService;
        if safe {
            create.fields.reset_privileged();
        }
        let owner = PasswordOwner::New {
            email: &create.email,
            fields: &create.fields,
        };
        self.check_password(create.password.expose(), owner).await?;
        if self.store.get_by_email(&create.email).await?.is_some() {
            return Err(ManagerError::UserAlreadyExists);
        }
        let hashed_password = self.passwords.hash(create.password.expose()).await?;
        let flag = |value: Option<bool>, default: bool| {
            if safe {
                default
            } else {
                value.unwrap_or(default)
            }
        };
        let new = NewUser {
            id: S::Id::generate(),
            email: create.email,
            hashed_password,
            is_active: flag(create.is_active, true),
            is_superuser: flag(create.is_superuser, false),
            is_verified: flag(create.is_verified, false),
            fields: create.fields,
        };
        let user = self
            .store
            .create(new)
            .await
            .map_err(duplicate_means_exists)?;
        self.hooks.on_after_register(&user, request).await;
        let event = if safe {
            AuditEvent::Registered
        } else {
            AuditEvent::UserCreated
        };
        self.audit(event, Some(&user.id), request).await;
        Ok(user)
    }

    /// Checks credentials. An unknown e-mail costs one hash, as a wrong password does. A match
    /// against a legacy hash stores a fresh Argon2id hash. Does not check `is_active`.
    ///
    /// # Errors
    /// Store or hashing failures only; bad credentials are `Ok(None)`.
    pub async fn authenticate(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Option<UserOf<S>>, ManagerError> {
        Ok(self.check_credentials(email, password).await?.ok())
    }

    /// [`UserManager::authenticate`], telling the audit log why a check failed and whose
    /// account it was (never the client: every failure costs one hash and answers the same).
    pub(crate) async fn check_credentials(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Result<UserOf<S>, (LoginFailure, Option<S::Id>)>, ManagerError> {
        let Some(mut user) = self.store.get_by_email(email).await? else {
            self.passwords.verify_dummy(password).await?;
            return Ok(Err((LoginFailure::UnknownUser, None)));
        };
        if !user.hashed_password.is_usable() {
            // Signed up through a provider and never set a password: same cost as a wrong one.
            self.passwords.verify_dummy(password).await?;
            return Ok(Err((LoginFailure::NoPassword, Some(user.id))));
        }
        match self
            .passwords
            .verify(password, &user.hashed_password)
            .await?
        {
            Verified::No => Ok(Err((LoginFailure::BadPassword, Some(user.id)))),
            Verified::Yes => Ok(Ok(user)),
            Verified::YesRehash(new_hash) => {
                if self
                    .store
                    .replace_password(&user.id, &user.hashed_password, &new_hash)
                    .await?
                {
                    user.hashed_password = new_hash;
                }
                Ok(Ok(user))
            }
        }
    }

    /// Issues a reset token for an active user and fires `on_after_forgot_password`.
    ///
    /// # Errors
    /// [`ManagerError::UserInactive`], or a signing failure.
    pub async fn forgot_password(
        &self,
        user: &UserOf<S>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if !user.is_active {
            return Err(ManagerError::UserInactive);
        }
        let token = self.reset_token(user)?;
        self.hooks
            .on_after_forgot_password(user, &token, request)
            .await;
        Ok(())
    }

    /// [`UserManager::forgot_password`] by e-mail; an unknown or inactive user is silently ignored.
    ///
    /// # Errors
    /// Store or signing failures.
    pub async fn forgot_password_by_email(
        &self,
        email: &str,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if !self
            .defences
            .mail_allowed(crate::limits::MailKind::Reset, email)
            .await?
        {
            return Ok(());
        }
        let Some(user) = self.store.get_by_email(email).await? else {
            return Ok(());
        };
        match self.forgot_password(&user, request).await {
            Err(ManagerError::UserInactive) => Ok(()),
            other => other,
        }
    }

    /// A reset token for `user`: bound to the current password hash, so it is single-use.
    ///
    /// # Errors
    /// A signing failure.
    pub fn reset_token(&self, user: &UserOf<S>) -> Result<String, ManagerError> {
        let claims = ResetClaims {
            sub: user.id.to_string(),
            password_fgpt: self.password_fingerprint(&user.hashed_password),
            aud: RESET_AUDIENCE.into(),
            exp: now_unix() + self.settings.reset_lifetime.as_secs() as i64,
            iat: now_unix(),
        };
        Ok(self.reset_codec.encode(&claims)?)
    }

    /// Resets a password with a token from [`UserManager::forgot_password`].
    ///
    /// # Errors
    /// [`ManagerError::InvalidResetPasswordToken`] (also for an unknown or inactive user),
    /// [`ManagerError::InvalidPassword`], or a failure.
    pub async fn reset_password(
        &self,
        token: &str,
        password: &str,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let claims: ResetClaims = self
            .reset_codec
            .decode(token, RESET_AUDIENCE)
            .map_err(|_| ManagerError::InvalidResetPasswordToken)?;
        let id = S::Id::parse(&claims.sub).ok_or(ManagerError::InvalidResetPasswordToken)?;
        let mut user = self
            .store
            .get(&id)
            .await?
            .ok_or(ManagerError::InvalidResetPasswordToken)?;
        let expected = self.password_fingerprint(&user.hashed_password);
        if !constant_time_eq(expected.as_bytes(), claims.password_fgpt.as_bytes())
            || !user.is_active
        {
            return Err(ManagerError::InvalidResetPasswordToken);
        }
        self.check_password(password, PasswordOwner::Existing(&user))
            .await?;
        let new_hash = self.passwords.hash(password).await?;
        if !self
            .store
            .replace_password(&user.id, &user.hashed_password, &new_hash)
            .await?
        {
            return Err(ManagerError::InvalidResetPasswordToken);
        }
        user.hashed_password = new_hash;
        self.revoke_sessions_for(&user.id, None, crate::RevokeReason::Reset, request)
            .await?;
        self.hooks.on_after_reset_password(&user, request).await;
        self.audit(AuditEvent::PasswordReset, Some(&user.id), request)
            .await;
        Ok(user)
    }

    /// Issues a verification token for an active unverified user and fires
    /// `on_after_request_verify`.
    ///
    /// # Errors
    /// [`ManagerError::UserInactive`], [`ManagerError::UserAlreadyVerified`], or a failure.
    pub async fn request_verify(
        &self,
        user: &UserOf<S>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if !user.is_active {
            return Err(ManagerError::UserInactive);
        }
        if user.is_verified {
            return Err(ManagerError::UserAlreadyVerified);
        }
        let token = self.verify_token(user)?;
        self.hooks
            .on_after_request_verify(user, &token, request)
            .await;
        Ok(())
    }

    /// [`UserManager::request_verify`] by e-mail; unknown, inactive or verified users are ignored.
    ///
    /// # Errors
    /// Store or signing failures.
    pub async fn request_verify_by_email(
        &self,
        email: &str,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if !self
            .defences
            .mail_allowed(crate::limits::MailKind::Verify, email)
            .await?
        {
            return Ok(());
        }
        let Some(user) = self.store.get_by_email(email).await? else {
            return Ok(());
        };
        match self.request_verify(&user, request).await {
            Err(ManagerError::UserInactive | ManagerError::UserAlreadyVerified) => Ok(()),
            other => other,
        }
    }

    /// A verification token for `user`, bound to their current e-mail address.
    ///
    /// # Errors
    /// A signing failure.
    pub fn verify_token(&self, user: &UserOf<S>) -> Result<String, ManagerError> {
        let claims = VerifyClaims {
            sub: user.id.to_string(),
            email: user.email.clone(),
            epoch: user.email_epoch,
            aud: VERIFY_AUDIENCE.into(),
            exp: now_unix() + self.settings.verify_lifetime.as_secs() as i64,
            iat: now_unix(),
        };
        Ok(self.verify_codec.encode(&claims)?)
    }

    /// Marks the token's user verified. Inactive users may verify (as in the reference).
    ///
    /// # Errors
    /// [`ManagerError::InvalidVerifyToken`], [`ManagerError::UserAlreadyVerified`], or a failure.
    pub async fn verify(
        &self,
        token: &str,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let claims: VerifyClaims = self
            .verify_codec
            .decode(token, VERIFY_AUDIENCE)
            .map_err(|_| ManagerError::InvalidVerifyToken)?;
        let user = self
            .store
            .get_by_email(&claims.email)
            .await?
            .ok_or(ManagerError::InvalidVerifyToken)?;
        // The token names the address it was sent to: found by that address, a user who changed
        // it is not found; the id must match too, and the epoch (a change away and back).
        if S::Id::parse(&claims.sub).as_ref() != Some(&user.id) || claims.epoch != user.email_epoch
        {
            return Err(ManagerError::InvalidVerifyToken);
        }
        if user.is_verified {
            return Err(ManagerError::UserAlreadyVerified);
        }
        let changes = UserChanges {
            is_verified: Some(true),
            ..UserChanges::default()
        };
        let user = self
            .store
            .update(&user.id, changes)
            .await?
            .ok_or(ManagerError::InvalidVerifyToken)?;
        self.hooks.on_after_verify(&user, request).await;
        self.audit(AuditEvent::Verified, Some(&user.id), request)
            .await;
        Ok(user)
    }

    /// Applies a PATCH. Self-service (a user on themselves) ignores the flags and the
    /// application's privileged fields, and a change of e-mail or password needs the current
    /// password (unless `strict_compat`). Changing the e-mail clears `is_verified` unless the
    /// same update sets it.
    ///
    /// # Errors
    /// [`ManagerError::CurrentPasswordRequired`], [`ManagerError::BadCurrentPassword`],
    /// [`ManagerError::UserAlreadyExists`], [`ManagerError::InvalidPassword`], or a failure.
    pub async fn update(
        &self,
        user: UserOf<S>,
        update: UserUpdate<S::Fields>,
        privilege: Privilege,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        Ok(self
            .update_pending(user, update, privilege, request)
            .await?
            .0)
    }

    /// [`UserManager::update`], with the address a self-service change now waits to confirm
    /// (`email_change = confirm`): the user is returned with the old address, the new one gets
    /// a confirmation link (see `email_change.rs`).
    ///
    /// # Errors
    /// As [`UserManager::update`].
    pub async fn update_pending(
        &self,
        user: UserOf<S>,
        mut update: UserUpdate<S::Fields>,
        privilege: Privilege,
        request: Option<&Parts>,
    ) -> Result<(UserOf<S>, Option<String>), ManagerError> {
        let safe = privilege == Privilege::SelfService;
        if safe {
            S::Fields::drop_privileged(&mut update.fields);
            let changes_credentials = update.password.is_some()
                || update.email.as_ref().is_some_and(|e| *e != user.email);
            if changes_credentials && !self.rules.strict_compat {
                self.throttled_current_password(&user, update.current_password.as_ref(), request)
                    .await?;
            }
        }
        if let Some(password) = &update.password {
            if let Some(email) = update.email.as_deref().filter(|e| *e != user.email) {
                self.check_policy_for_new_address(password.expose(), email)?;
            }
            self.check_password(password.expose(), PasswordOwner::Existing(&user))
                .await?;
        }
        // Only the columns this PATCH names are written: a concurrent change of the others
        // (a superuser deactivating the user while the hasher runs) survives.
        let mut changes = UserChanges::default();
        let mut pending = None;
        if let Some(email) = update.email.filter(|e| *e != user.email) {
            if self.store.get_by_email(&email).await?.is_some() {
                return Err(ManagerError::UserAlreadyExists);
            }
            if safe && self.email_change_confirms() {
                pending = Some(email);
            } else {
                changes.email = Some(email);
                changes.is_verified = Some(false);
            }
        }
        let new_hash = match &update.password {
            Some(password) => Some(self.passwords.hash(password.expose()).await?),
            None => None,
        };
        if !safe {
            changes.is_active = update.is_active;
            changes.is_superuser = update.is_superuser;
            changes.is_verified = update.is_verified.or(changes.is_verified);
        }
        // The fields column is written only when the PATCH names a field, so a password-only
        // PATCH never writes back a stale copy of the application's fields.
        if names_a_field(&update.fields) {
            let mut fields = user.fields.clone();
            fields.apply(update.fields);
            changes.fields = Some(fields);
        }
        let deactivated = changes.is_active == Some(false);
        let email_moved = changes.email.is_some();
        let mut user = self
            .store
            .update(&user.id, changes)
            .await
            .map_err(duplicate_means_exists)?
            .ok_or(ManagerError::UserNotExists)?;
        let password_changed = new_hash.is_some();
        if let Some(new_hash) = new_hash {
            user.hashed_password = self
                .set_password(&user.id, user.hashed_password.clone(), new_hash)
                .await?;
        }
        self.end_sessions_after_update(&user.id, deactivated, password_changed, request)
            .await?;
        let mut raw = update.raw;
        if let Value::Object(map) = &mut raw {
            map.remove("id");
            map.remove("oauth_accounts");
            map.remove("current_password");
            if safe {
                for flag in ["is_active", "is_superuser", "is_verified"] {
                    map.remove(flag);
                }
            }
        }
        if let (Value::Object(map), Some(_)) = (&mut raw, &pending) {
            map.remove("email");
        }
        self.hooks.on_after_update(&user, &raw, request).await;
        let events = [
            (!safe).then_some(AuditEvent::UserUpdated),
            password_changed.then_some(AuditEvent::PasswordChanged),
            email_moved.then_some(AuditEvent::EmailChangeConfirmed),
        ];
        for event in events.into_iter().flatten() {
            self.audit(event, Some(&user.id), request).await;
        }
        if let Some(email) = &pending {
            self.request_email_change(&user, email, request).await?;
        }
        Ok((user, pending))
    }

    /// The proof a self-service change of credentials needs: the current password, checked at
    /// the cost of one hash whatever the outcome. A user without a password (signed up
    /// through a provider) sets one through forgot/reset password instead.
    pub(crate) async fn check_current_password(
        &self,
        user: &UserOf<S>,
        current: Option<&Secret>,
    ) -> Result<(), ManagerError> {
        let Some(current) = current else {
            return Err(ManagerError::CurrentPasswordRequired);
        };
        if !user.hashed_password.is_usable() {
            self.passwords.verify_dummy(current.expose()).await?;
            return Err(ManagerError::BadCurrentPassword);
        }
        match self
            .passwords
            .verify(current.expose(), &user.hashed_password)
            .await?
        {
            Verified::No => Err(ManagerError::BadCurrentPassword),
            Verified::Yes | Verified::YesRehash(_) => Ok(()),
        }
    }

    /// Replaces the password hash through the store's compare-and-swap. If another change won
    /// since `seen` was read (a reset, a rehash), the user's explicit new password still wins:
    /// the current hash is read again, a few times at most.
    async fn set_password(
        &self,
        id: &S::Id,
        mut seen: PasswordHash,
        new: PasswordHash,
    ) -> Result<PasswordHash, ManagerError> {
        for _ in 0..3 {
            if self.store.replace_password(id, &seen, &new).await? {
                return Ok(new);
            }
            seen = self
                .store
                .get(id)
                .await?
                .ok_or(ManagerError::UserNotExists)?
                .hashed_password;
        }
        Err(StoreError::Unavailable("the password kept changing during the update".into()).into())
    }

    /// Deletes a user: `on_before_delete`, delete, `on_after_delete`.
    ///
    /// # Errors
    /// [`ManagerError::UserNotExists`], or a store failure.
    pub async fn delete(
        &self,
        user: &UserOf<S>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        self.hooks.on_before_delete(user, request).await;
        self.revoke_sessions_for(&user.id, None, crate::RevokeReason::Deleted, request)
            .await?;
        if !self.store.delete(&user.id).await? {
            return Err(ManagerError::UserNotExists);
        }
        self.hooks.on_after_delete(user, request).await;
        self.audit(AuditEvent::UserDeleted, Some(&user.id), request)
            .await;
        Ok(())
    }

    /// HMAC of the stored hash: changes whenever the password hash does, reveals nothing of it,
    /// and costs microseconds rather than an Argon2 run (see docs/compatibility.md).
    pub(crate) fn password_fingerprint(&self, hash: &PasswordHash) -> String {
        self.keys
            .mac(Purpose::PasswordFingerprint, &[hash.0.as_bytes()])
    }
}

/// Whether a fields update sets anything: serialised, it has a non-null member.
fn names_a_field<U: Serialize>(update: &U) -> bool {
    match serde_json::to_value(update) {
        Ok(Value::Object(map)) => map.values().any(|v| !v.is_null()),
        Ok(Value::Null) => false,
        // Not an object of optional members: assume it names something.
        _ => true,
    }
}

fn duplicate_means_exists(e: StoreError) -> ManagerError {
    match e {
        StoreError::DuplicateEmail => ManagerError::UserAlreadyExists,
        other => ManagerError::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::NoHooks;
    use crate::memory::MemoryStore;
    use crate::password::Argon2Params;

    fn manager() -> UserManager<MemoryStore, NoHooks> {
        let hasher = PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        UserManager::new(
            MemoryStore::new(),
            NoHooks,
            hasher,
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap()
    }

    fn create(email: &str) -> UserCreate<crate::NoFields> {
        UserCreate::new(email, "right-password")
    }

    #[tokio::test]
    async fn every_login_attempt_costs_one_verification_whoever_it_names() {
        let m = manager();
        m.create(create("known@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        let oauth_only = m.store().create(NewUser {
            id: Some(uuid::Uuid::new_v4()),
            email: "oauth@example.com".into(),
            hashed_password: PasswordHash::unusable(),
            is_active: true,
            is_superuser: false,
            is_verified: false,
            fields: Default::default(),
        });
        oauth_only.await.unwrap();
        for (email, password, found) in [
            ("known@example.com", "right-password", true),
            ("known@example.com", "wrong", false),
            ("ghost@example.com", "wrong", false),
            ("oauth@example.com", "anything", false),
        ] {
            let before = m.passwords().verifications();
            let user = m.authenticate(email, password).await.unwrap();
            assert_eq!(user.is_some(), found, "{email}");
            assert_eq!(
                m.passwords().verifications() - before,
                1,
                "{email} costs exactly one verification"
            );
        }
    }

    #[tokio::test]
    async fn an_update_from_a_stale_copy_never_brings_an_old_password_back() {
        let m = manager();
        let user = m
            .create(create("t@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        let stale = m.get(&user.id).await.unwrap();
        let token = m.reset_token(&user).unwrap();
        m.reset_password(&token, "after-reset", None).await.unwrap();
        // A PATCH that read the user before the reset commits after it.
        let update = UserUpdate {
            email: Some("t2@example.com".into()),
            ..Default::default()
        };
        m.update(stale.clone(), update, Privilege::Superuser, None)
            .await
            .unwrap();
        assert!(
            m.authenticate("t2@example.com", "right-password")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            m.authenticate("t2@example.com", "after-reset")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            matches!(
                m.reset_password(&token, "again", None).await,
                Err(ManagerError::InvalidResetPasswordToken)
            ),
            "the used reset token stays dead"
        );
        // An explicit new password from a stale copy still wins, and the columns the update
        // does not name (the address changed since) are left as they are.
        let update = UserUpdate {
            password: Some(Secret::new("patched-passphrase")),
            ..Default::default()
        };
        m.update(stale, update, Privilege::Superuser, None)
            .await
            .unwrap();
        assert!(
            m.authenticate("t2@example.com", "patched-passphrase")
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn a_verify_token_dies_with_an_a_to_b_to_a_email_change() {
        let m = manager();
        let user = m
            .create(create("a@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        let token = m.verify_token(&user).unwrap();
        for email in ["b@example.com", "a@example.com"] {
            let update = UserUpdate {
                email: Some(email.into()),
                ..Default::default()
            };
            let user = m.get(&user.id).await.unwrap();
            m.update(user, update, Privilege::Superuser, None)
                .await
                .unwrap();
        }
        assert!(matches!(
            m.verify(&token, None).await,
            Err(ManagerError::InvalidVerifyToken)
        ));
        let fresh = m.verify_token(&m.get(&user.id).await.unwrap()).unwrap();
        assert!(m.verify(&fresh, None).await.unwrap().is_verified);
    }

    /// Blocks `validate_password` until told to go, to stage the review's interleaving.
    #[derive(Clone, Default)]
    struct Gate(Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>);

    impl UserHooks<uuid::Uuid, crate::NoFields> for Gate {
        async fn validate_password(
            &self,
            _: &str,
            owner: PasswordOwner<'_, uuid::Uuid, crate::NoFields>,
        ) -> Result<(), InvalidPassword> {
            if matches!(owner, PasswordOwner::Existing(_)) {
                self.0.notify_one();
                self.1.notified().await;
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_self_patch_waiting_for_the_hasher_never_undoes_a_ban() {
        let gate = Gate::default();
        let m = UserManager::new(
            MemoryStore::new(),
            gate.clone(),
            PasswordHasher::new(Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            })
            .unwrap(),
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap();
        let user = m
            .create(create("ban@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        // The user's own PATCH has read the user (at authentication) and waits in the hook...
        let me = m.clone();
        let stale = user.clone();
        let patch = tokio::spawn(async move {
            let update = UserUpdate {
                password: Some(Secret::new("new-password")),
                current_password: Some(Secret::new("right-password")),
                ..Default::default()
            };
            me.update(stale, update, Privilege::SelfService, None).await
        });
        gate.0.notified().await;
        // ...while a superuser deactivates and demotes them.
        let ban = UserChanges {
            is_active: Some(false),
            is_superuser: Some(false),
            ..UserChanges::default()
        };
        m.store().update(&user.id, ban).await.unwrap();
        gate.1.notify_one();
        patch.await.unwrap().unwrap();
        let after = m.get(&user.id).await.unwrap();
        assert!(!after.is_active, "the ban survives the self-PATCH");
    }

    #[tokio::test]
    async fn reset_tokens_are_bound_to_the_password_hash() {
        let m = manager();
        let user = m
            .create(create("r@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        let token = m.reset_token(&user).unwrap();
        let other = m
            .create(create("s@example.com"), Privilege::SelfService, None)
            .await
            .unwrap();
        assert_ne!(m.reset_token(&other).unwrap(), token);
        m.reset_password(&token, "new-password", None)
            .await
            .unwrap();
        assert!(matches!(
            m.reset_password(&token, "again", None).await,
            Err(ManagerError::InvalidResetPasswordToken)
        ));
        assert!(
            m.authenticate("r@example.com", "new-password")
                .await
                .unwrap()
                .is_some()
        );
    }
}
