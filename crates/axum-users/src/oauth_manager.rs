//! The OAuth rules of the user manager (spec section 8): sign-in, linking and unlinking.

use http::request::Parts;
use serde_json::json;

use crate::auth::AuthBackend;
use crate::hooks::{SignInMethod, UserHooks};
use crate::keys::{KeyRing, Purpose};
use crate::login::{LoginOutcome, LoginResponse};
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::mfa::MfaChallenge;
use crate::model::{NewUser, OAuthAccount, PasswordHash, UserFields, UserId};
use crate::secret::Secret;
use crate::store::{NewOAuthAccount, OAuthAccountStore, StoreError, Unlink, UserChanges};
use crate::tokens::now_unix;

/// The `method` of a login code's record among the second-factor challenges.
const LOGIN_CODE_METHOD: &str = "login_code";

/// What a provider said about a user after a successful code exchange.
#[derive(Debug, Clone)]
pub struct OAuthSignIn {
    /// The provider's name, e.g. `google`.
    pub oauth_name: String,
    /// The provider's access token.
    pub access_token: Secret,
    /// When it expires, Unix seconds.
    pub expires_at: Option<i64>,
    /// The provider's refresh token.
    pub refresh_token: Option<Secret>,
    /// The account id at the provider.
    pub account_id: String,
    /// The e-mail the provider reported, as it reported it; the manager validates and
    /// normalises it with the rules of registration.
    pub account_email: String,
    /// Whether the provider verified that e-mail *and* is trusted to (see docs/oauth.md).
    pub email_verified: bool,
    /// The rest of what the provider said (name, avatar, raw claims), for
    /// [`UserHooks::on_oauth_profile`].
    pub profile: OAuthProfile,
}

/// What a provider says about the person besides the e-mail: what
/// [`UserHooks::on_oauth_profile`] fills an application's own fields from. Not verified by
/// anyone: treat it as user input.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OAuthProfile {
    /// The display name, when the provider has one (GitHub's `name`, OpenID's `name`, ...).
    pub name: Option<String>,
    /// The avatar or picture URL, when the provider has one.
    pub avatar_url: Option<String>,
    /// The provider's profile document as received (GitHub's `/user`, the OpenID Connect
    /// claims, ...), for anything else; `null` when there is none.
    pub claims: serde_json::Value,
}

impl OAuthProfile {
    /// A profile from its parts.
    pub fn new(
        name: Option<String>,
        avatar_url: Option<String>,
        claims: serde_json::Value,
    ) -> Self {
        Self {
            name,
            avatar_url,
            claims,
        }
    }
}

#[cfg(feature = "oauth")]
impl From<axum_users_oauth::ProviderProfile> for OAuthProfile {
    fn from(profile: axum_users_oauth::ProviderProfile) -> Self {
        Self::new(profile.name, profile.avatar_url, profile.claims)
    }
}

impl OAuthSignIn {
    /// The link to store: provider tokens encrypted with their own sub-key.
    fn new_account(&self, keys: &KeyRing, email: &str) -> NewOAuthAccount {
        NewOAuthAccount {
            oauth_name: self.oauth_name.clone(),
            access_token: seal(keys, &self.access_token),
            expires_at: self.expires_at,
            refresh_token: self.refresh_token.as_ref().map(|t| seal(keys, t)),
            account_id: self.account_id.clone(),
            account_email: email.to_owned(),
        }
    }

    fn refresh(&self, keys: &KeyRing, account: &mut OAuthAccount<impl UserId>, email: &str) {
        account.access_token = seal(keys, &self.access_token);
        account.expires_at = self.expires_at;
        account.refresh_token = self.refresh_token.as_ref().map(|t| seal(keys, t));
        account.account_email = email.to_owned();
    }

    /// The per-account counters' key: the provider's e-mail, as a password sign-in and a
    /// one-time code of the same account count it (else the provider's account id).
    fn account_key(&self) -> String {
        crate::limits::account_key(&self.account_email)
            .filter(|key| key.contains('@'))
            .unwrap_or_else(|| format!("{}:{}", self.oauth_name, self.account_id))
    }
}

fn seal(keys: &KeyRing, token: &Secret) -> Secret {
    Secret::new(keys.encrypt(Purpose::ProviderTokens, token.expose()))
}

fn open_sealed(keys: &KeyRing, token: &Secret) -> Secret {
    Secret::new(
        keys.decrypt(Purpose::ProviderTokens, token.expose())
            .unwrap_or_default(),
    )
}

/// How a sign-in treats an e-mail address that already has an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthPolicy {
    /// Link to the existing user with that e-mail, when the provider verified the address
    /// and the local account's address is verified too (otherwise whoever registered the
    /// address first, with a password, would get the provider account).
    pub associate_by_email: bool,
    /// New users start verified, when the provider verified the address.
    pub is_verified_by_default: bool,
}

/// The hook's fields for an existing user as a self-service PATCH would change them: read as
/// an `Update`, stripped by `drop_privileged`, applied to the current fields. Returns the
/// merged fields and the non-null members of the update; `None` when the fields do not read
/// as an update.
fn unprivileged_merge<F: UserFields>(current: &F, proposed: F) -> Option<(F, serde_json::Value)> {
    let mut update: F::Update =
        serde_json::from_value(serde_json::to_value(&proposed).ok()?).ok()?;
    F::drop_privileged(&mut update);
    let changed = match serde_json::to_value(&update).ok()? {
        serde_json::Value::Object(map) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
        _ => serde_json::Map::new(),
    };
    let mut merged = current.clone();
    merged.apply(update);
    Some((merged, serde_json::Value::Object(changed)))
}

impl<S, H> UserManager<S, H>
where
    S: OAuthAccountStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Resolves the user of an OAuth sign-in: the linked user (whose tokens are refreshed), else
    /// the user with the same e-mail when the policy allows and both sides verified it, else a
    /// new user. Nothing is created or linked on an address the provider has not verified.
    ///
    /// # Errors
    /// [`ManagerError::OAuthInvalidEmail`], [`ManagerError::OAuthEmailNotVerified`],
    /// [`ManagerError::UserAlreadyExists`] when the e-mail belongs to a user it may not be
    /// linked to, or a store failure.
    pub async fn oauth_callback(
        &self,
        sign_in: &OAuthSignIn,
        policy: OAuthPolicy,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let email = crate::email::normalize_email(&sign_in.account_email)
            .map_err(|_| ManagerError::OAuthInvalidEmail)?;
        if let Some(user) = self.refresh_linked(sign_in, &email).await? {
            return Ok(user);
        }
        if !sign_in.email_verified {
            return Err(ManagerError::OAuthEmailNotVerified);
        }
        if let Some(user) = self.store().get_by_email(&email).await? {
            if !(policy.associate_by_email && user.is_verified) {
                return Err(ManagerError::UserAlreadyExists);
            }
            return match self.link(&user, sign_in, &email).await {
                Ok(()) => {
                    let (user, changed) = self.fill_from_profile(user, sign_in).await?;
                    if changed.as_object().is_some_and(|c| !c.is_empty()) {
                        self.hooks().on_after_update(&user, &changed, request).await;
                    }
                    Ok(user)
                }
                // A concurrent sign-in linked the account first: it signs in as its owner.
                Err(ManagerError::OAuthAccountAlreadyLinked) => self
                    .refresh_linked(sign_in, &email)
                    .await?
                    .ok_or(ManagerError::OAuthAccountAlreadyLinked),
                Err(e) => Err(e),
            };
        }
        let mut fields = self
            .hooks()
            .on_oauth_profile(&sign_in.profile, None)
            .await
            .unwrap_or_default();
        // The profile is the user's own input, as a self-registration's body is.
        fields.reset_privileged();
        let new = NewUser {
            id: S::Id::generate(),
            email: email.clone(),
            hashed_password: PasswordHash::unusable(),
            is_active: true,
            is_superuser: false,
            is_verified: policy.is_verified_by_default,
            fields,
        };
        let user = match self
            .store()
            .create_with_oauth_account(new, sign_in.new_account(self.key_ring(), &email))
            .await
        {
            Ok(user) => user,
            // Another first sign-in of the same person won the race: use what it made.
            Err(StoreError::DuplicateEmail | StoreError::DuplicateOAuthAccount) => {
                return self
                    .refresh_linked(sign_in, &email)
                    .await?
                    .ok_or(ManagerError::UserAlreadyExists);
            }
            Err(e) => return Err(e.into()),
        };
        self.hooks().on_after_register(&user, request).await;
        self.audit(crate::AuditEvent::Registered, Some(&user.id), request)
            .await;
        self.audit(
            crate::AuditEvent::ProviderLinked {
                provider: sign_in.oauth_name.clone(),
            },
            Some(&user.id),
            request,
        )
        .await;
        Ok(user)
    }

    /// Signs in through a provider: the same steps as a password sign-in (throttle seam,
    /// rules, second factor seam, token, `on_after_login`, event), with the provider's word
    /// instead of a password.
    ///
    /// # Errors
    /// Those of [`UserManager::oauth_callback`] and of the sign-in rules.
    pub async fn login_with_oauth(
        &self,
        sign_in: &OAuthSignIn,
        policy: OAuthPolicy,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
        redirect: Option<&str>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let method = SignInMethod::OAuth(sign_in.oauth_name.clone());
        let account = sign_in.account_key();
        self.throttled(&method, &account, request, async {
            let user = self.oauth_callback(sign_in, policy, request).await?;
            let answer = match redirect {
                Some(url) => LoginResponse::Redirect(url),
                None => LoginResponse::Transport,
            };
            self.finish_login(
                user,
                &method,
                &account,
                backend,
                request,
                answer,
                crate::login::Proof::OneFactor,
            )
            .await
        })
        .await
    }

    /// Records a just-issued one-time login code (its `jti`) in the store's second-factor
    /// challenges, so that of its redemptions on any node exactly one wins
    /// ([`Self::spend_login_code`]); a store without them leaves it to each node's memory.
    pub(crate) async fn remember_login_code(
        &self,
        user_id: &S::Id,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), ManagerError> {
        let Some(mfa) = self.store().mfa_store() else {
            return Ok(());
        };
        let challenge = MfaChallenge::new(user_id.clone(), "", LOGIN_CODE_METHOD, expires_at);
        // Expired records go when new ones come, as the second-factor challenges do.
        mfa.prune_mfa_challenges(now_unix()).await?;
        mfa.create_mfa_challenge(&self.login_code_key(jti), &challenge)
            .await?;
        Ok(())
    }

    /// Spends the shared record of a login code: `true` for the one redemption that deletes it.
    pub(crate) async fn spend_login_code(&self, jti: &str) -> Result<bool, ManagerError> {
        let Some(mfa) = self.store().mfa_store() else {
            return Ok(true);
        };
        Ok(mfa
            .take_mfa_challenge(&self.login_code_key(jti), now_unix(), 1)
            .await?)
    }

    /// The record's key: a MAC under the login codes' own sub-key, so it can never be the key
    /// of a second-factor token (those are MACs under another).
    fn login_code_key(&self, jti: &str) -> String {
        self.key_ring()
            .mac(Purpose::LoginCode, &[b"spent", jti.as_bytes()])
    }

    /// Resolves a provider sign-in without issuing a token, for a redirect that hands the
    /// front end a one-time login code instead: the rules are checked again when the code is
    /// redeemed.
    ///
    /// # Errors
    /// Those of [`UserManager::oauth_callback`], and [`ManagerError::BadCredentials`] for an
    /// inactive user.
    pub async fn oauth_resolve(
        &self,
        sign_in: &OAuthSignIn,
        policy: OAuthPolicy,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let method = SignInMethod::OAuth(sign_in.oauth_name.clone());
        self.throttled(&method, &sign_in.account_key(), request, async {
            let user = self.oauth_callback(sign_in, policy, request).await?;
            if !user.is_active {
                return Err(ManagerError::BadCredentials);
            }
            Ok(user)
        })
        .await
    }

    /// Links an external account to `user` (or refreshes it when already theirs) and fires
    /// `on_after_update` with the fields `on_oauth_profile` changed (`{}` when none). Returns the user as stored, with the fields
    /// `on_oauth_profile` filled on a new link.
    ///
    /// # Errors
    /// [`ManagerError::OAuthAccountAlreadyLinked`] when another user has it, or a store failure.
    pub async fn oauth_associate(
        &self,
        user: &UserOf<S>,
        sign_in: &OAuthSignIn,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        // The same rules for the provider's address as a sign-in: validated and normalised.
        let email = crate::email::normalize_email(&sign_in.account_email)
            .map_err(|_| ManagerError::OAuthInvalidEmail)?;
        let user = match self
            .store()
            .get_by_oauth_account(&sign_in.oauth_name, &sign_in.account_id)
            .await?
        {
            Some(owner) if owner.id != user.id => {
                return Err(ManagerError::OAuthAccountAlreadyLinked);
            }
            Some(_) => {
                self.refresh_linked(sign_in, &email).await?;
                (user.clone(), json!({}))
            }
            None => {
                self.link(user, sign_in, &email).await?;
                self.fill_from_profile(user.clone(), sign_in).await?
            }
        };
        let (user, changed) = user;
        self.hooks().on_after_update(&user, &changed, request).await;
        Ok(user)
    }

    /// A provider link as the store keeps it: its tokens encrypted with the provider-token
    /// sub-key, as a sign-in stores them. For imports that write through a store's own batch
    /// method ([`OAuthAccountStore::add_oauth_account`] takes the result as well).
    pub fn sealed_oauth_account(&self, mut account: NewOAuthAccount) -> NewOAuthAccount {
        account.access_token = seal(self.key_ring(), &account.access_token);
        account.refresh_token = account
            .refresh_token
            .as_ref()
            .map(|t| seal(self.key_ring(), t));
        account
    }

    /// The accounts linked to a user, with their provider tokens decrypted.
    ///
    /// # Errors
    /// A store failure.
    pub async fn oauth_accounts(
        &self,
        user: &UserOf<S>,
    ) -> Result<Vec<OAuthAccount<S::Id>>, ManagerError> {
        let mut accounts = self.store().list_oauth_accounts(&user.id).await?;
        for account in &mut accounts {
            account.access_token = open_sealed(self.key_ring(), &account.access_token);
            account.refresh_token = account
                .refresh_token
                .as_ref()
                .map(|t| open_sealed(self.key_ring(), t));
        }
        Ok(accounts)
    }

    /// Unlinks one account, unless it is the user's last way to sign in (no password and no
    /// other linked account).
    ///
    /// # Errors
    /// [`ManagerError::OAuthAccountNotFound`], [`ManagerError::LastSignInMethod`], or a store failure.
    pub async fn oauth_unlink(
        &self,
        user: &UserOf<S>,
        account_id: &S::Id,
    ) -> Result<(), ManagerError> {
        // The provider's name, for the audit log (unlinking is rare: one more read).
        let provider = self
            .store()
            .list_oauth_accounts(&user.id)
            .await?
            .into_iter()
            .find(|a| &a.id == account_id)
            .map(|a| a.oauth_name)
            .unwrap_or_default();
        match self
            .store()
            .unlink_oauth_account(&user.id, account_id)
            .await?
        {
            Unlink::Removed => {
                let event = crate::AuditEvent::ProviderUnlinked { provider };
                self.audit(event, Some(&user.id), None).await;
                Ok(())
            }
            Unlink::NotFound => Err(ManagerError::OAuthAccountNotFound),
            Unlink::LastSignInMethod => Err(ManagerError::LastSignInMethod),
        }
    }

    /// The user linked to the sign-in's account, after writing the new tokens to the link.
    async fn refresh_linked(
        &self,
        sign_in: &OAuthSignIn,
        email: &str,
    ) -> Result<Option<UserOf<S>>, ManagerError> {
        let Some(user) = self
            .store()
            .get_by_oauth_account(&sign_in.oauth_name, &sign_in.account_id)
            .await?
        else {
            return Ok(None);
        };
        for mut account in self.store().list_oauth_accounts(&user.id).await? {
            if account.oauth_name == sign_in.oauth_name && account.account_id == sign_in.account_id
            {
                sign_in.refresh(self.key_ring(), &mut account, email);
                self.store().update_oauth_account(&account).await?;
            }
        }
        Ok(Some(user))
    }

    /// Lets the hooks fill `user`'s fields from the profile of an account just linked to them;
    /// returns the user as stored and the fields that changed, as an `on_after_update` dict.
    async fn fill_from_profile(
        &self,
        user: UserOf<S>,
        sign_in: &OAuthSignIn,
    ) -> Result<(UserOf<S>, serde_json::Value), ManagerError> {
        let Some(proposed) = self
            .hooks()
            .on_oauth_profile(&sign_in.profile, Some(&user))
            .await
        else {
            return Ok((user, json!({})));
        };
        let Some((fields, changed)) = unprivileged_merge(&user.fields, proposed) else {
            tracing::warn!("on_oauth_profile's fields do not read as an update; ignored");
            return Ok((user, json!({})));
        };
        let changes = UserChanges {
            fields: Some(fields),
            ..UserChanges::default()
        };
        let user = self
            .store()
            .update(&user.id, changes)
            .await?
            .unwrap_or(user);
        Ok((user, changed))
    }

    async fn link(
        &self,
        user: &UserOf<S>,
        sign_in: &OAuthSignIn,
        email: &str,
    ) -> Result<(), ManagerError> {
        match self
            .store()
            .add_oauth_account(&user.id, sign_in.new_account(self.key_ring(), email))
            .await
        {
            Ok(_) => {
                let event = crate::AuditEvent::ProviderLinked {
                    provider: sign_in.oauth_name.clone(),
                };
                self.audit(event, Some(&user.id), None).await;
                Ok(())
            }
            Err(StoreError::DuplicateOAuthAccount) => Err(ManagerError::OAuthAccountAlreadyLinked),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::NoHooks;
    use crate::manager::{Privilege, TokenSettings, UserCreate};
    use crate::memory::MemoryStore;
    use crate::password::{Argon2Params, PasswordHasher};

    /// A manager on `store` with cheap hashing (a node, when two share the store).
    fn manager(store: MemoryStore<uuid::Uuid>) -> UserManager<MemoryStore<uuid::Uuid>, NoHooks> {
        let hasher = PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        UserManager::new(
            store,
            NoHooks,
            hasher,
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap()
    }

    /// Two nodes on one store: a leaked login code redeemed on one cannot be redeemed on the
    /// other (before, each node only remembered what it had spent itself).
    #[tokio::test]
    async fn a_login_code_is_spent_once_across_nodes() {
        let store = MemoryStore::<uuid::Uuid>::new();
        let (one, two) = (manager(store.clone()), manager(store));
        let user = uuid::Uuid::new_v4();
        one.remember_login_code(&user, "jti-1", now_unix() + 60)
            .await
            .unwrap();
        let (a, b) = tokio::join!(one.spend_login_code("jti-1"), two.spend_login_code("jti-1"));
        assert_eq!(
            [a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(),
            1,
            "exactly one redemption wins"
        );
        assert!(!two.spend_login_code("jti-1").await.unwrap());
        assert!(!one.spend_login_code("never-issued").await.unwrap());
        one.remember_login_code(&user, "jti-old", now_unix() - 1)
            .await
            .unwrap();
        assert!(!two.spend_login_code("jti-old").await.unwrap(), "expired");
        // The expired record goes when the next code comes: the table holds a minute of codes.
        one.remember_login_code(&user, "jti-2", now_unix() + 60)
            .await
            .unwrap();
        let mfa = crate::UserStore::mfa_store(one.store()).unwrap();
        assert_eq!(mfa.prune_mfa_challenges(now_unix()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn linking_applies_the_register_rules_to_the_provider_address() {
        let m = manager(MemoryStore::<uuid::Uuid>::new());
        let user = m
            .create(
                UserCreate::new("me@example.com", "linking-passphrase-9"),
                Privilege::SelfService,
                None,
            )
            .await
            .unwrap();
        let mut sign_in = OAuthSignIn {
            oauth_name: "github".into(),
            access_token: Secret::new("gho_x"),
            expires_at: None,
            refresh_token: None,
            account_id: "1".into(),
            account_email: "not-an-address".into(),
            email_verified: true,
            profile: OAuthProfile::default(),
        };
        assert!(matches!(
            m.oauth_associate(&user, &sign_in, None).await,
            Err(ManagerError::OAuthInvalidEmail)
        ));
        assert!(
            m.oauth_accounts(&user).await.unwrap().is_empty(),
            "nothing linked"
        );
        sign_in.account_email = "Me@EXAMPLE.com".into();
        m.oauth_associate(&user, &sign_in, None).await.unwrap();
        let linked = m.oauth_accounts(&user).await.unwrap();
        assert_eq!(
            linked[0].account_email, "Me@example.com",
            "normalised as register does"
        );
    }

    #[tokio::test]
    async fn a_sealed_account_is_stored_encrypted_and_read_back_in_clear() {
        let hasher = PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let store = MemoryStore::<uuid::Uuid>::new();
        let m = UserManager::new(
            store.clone(),
            NoHooks,
            hasher,
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap();
        let user = m
            .create(
                UserCreate::new("sealed@example.com", "sealing-passphrase-9"),
                Privilege::SelfService,
                None,
            )
            .await
            .unwrap();
        let sealed = m.sealed_oauth_account(NewOAuthAccount {
            oauth_name: "github".into(),
            access_token: Secret::new("gho_plain"),
            expires_at: None,
            refresh_token: Some(Secret::new("ghr_plain")),
            account_id: "7".into(),
            account_email: "sealed@example.com".into(),
        });
        store.add_oauth_account(&user.id, sealed).await.unwrap();
        let raw = store.list_oauth_accounts(&user.id).await.unwrap();
        assert!(!raw[0].access_token.expose().contains("gho_plain"));
        assert!(
            !raw[0]
                .refresh_token
                .as_ref()
                .unwrap()
                .expose()
                .contains("ghr_plain")
        );
        let read = m.oauth_accounts(&user).await.unwrap();
        assert_eq!(read[0].access_token.expose(), "gho_plain");
        assert_eq!(
            read[0].refresh_token.as_ref().unwrap().expose(),
            "ghr_plain"
        );
    }
}
