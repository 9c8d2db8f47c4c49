//! The secure e-mail change: a self-service change of address waits until the new address
//! proves it receives mail. The request sends a single-use link to the new address and a notice
//! to the old one; the link applies the change.
//!
//! # Why each token dies when it should
//! The token is a purpose-bound JWT (its own HKDF sub-key, [`Purpose::EmailChange`]) naming the
//! user, the new address and the user's `email_epoch` when it was made. Applying it bumps the
//! epoch with a compare-and-swap on that epoch ([`UserChanges::if_email_epoch`]), so:
//! - used once, it is stale (the epoch moved on);
//! - any other change of address (a superuser's, another confirmed request) makes it stale;
//! - of two pending requests confirmed at once, at most one lands (the race of Devise
//!   CVE-2026-32700): both carry the same epoch and only one compare-and-swap can win.
//!
//! A newer request does not bump the epoch by itself; both links stay valid until one of them
//! is used, after which the other is dead.

use std::time::Duration;

use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::hooks::UserHooks;
use crate::keys::Purpose;
use crate::manager::{ManagerError, UserManager};
use crate::model::UserId;
use crate::store::{StoreError, UserChanges, UserOf, UserStore};
use crate::tokens::now_unix;

/// The audience of e-mail change tokens.
const EMAIL_CHANGE_AUDIENCE: &str = "axum-users:email-change";

/// How a self-service change of e-mail address is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum EmailChange {
    /// The new address gets a confirmation link; the change applies when it is used
    /// (the default).
    #[default]
    Confirm,
    /// The change applies at once, unverified (FastAPI Users; what `strict_compat` selects).
    Immediate,
}

impl EmailChange {
    /// The setting's name in the server's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confirm => "confirm",
            Self::Immediate => "immediate",
        }
    }
}

impl std::str::FromStr for EmailChange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "confirm" => Ok(Self::Confirm),
            "immediate" => Ok(Self::Immediate),
            _ => Err("use `confirm` or `immediate`".into()),
        }
    }
}

/// The e-mail change mode and the lifetime of its confirmation tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmailChangeSettings {
    /// Confirm (default) or immediate.
    pub mode: EmailChange,
    /// How long a confirmation link lives (default 24 hours).
    pub lifetime: Duration,
}

impl Default for EmailChangeSettings {
    fn default() -> Self {
        Self {
            mode: EmailChange::Confirm,
            lifetime: Duration::from_secs(24 * 3600),
        }
    }
}

impl EmailChangeSettings {
    /// `mode` with the default lifetime.
    pub fn new(mode: EmailChange) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// The same settings with another token lifetime.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }
}

#[derive(Serialize, Deserialize)]
struct EmailChangeClaims {
    sub: String,
    /// The new address.
    email: String,
    /// The user's `email_epoch` when the request was made.
    epoch: i64,
    /// A keyed fingerprint of the password hash then: a reset or password change (the way a
    /// victim takes an account back) voids a change the intruder asked for before it.
    password_fgpt: String,
    aud: String,
    exp: i64,
    iat: i64,
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Whether a self-service change of address waits for confirmation.
    pub(crate) fn email_change_confirms(&self) -> bool {
        self.email_change_settings().mode == EmailChange::Confirm
    }

    /// A confirmation token for moving `user` to `new_email`, bound to their current epoch.
    ///
    /// # Errors
    /// A signing failure.
    pub fn email_change_token(
        &self,
        user: &UserOf<S>,
        new_email: &str,
    ) -> Result<String, ManagerError> {
        let now = now_unix();
        let claims = EmailChangeClaims {
            sub: user.id.to_string(),
            email: new_email.to_owned(),
            epoch: user.email_epoch,
            password_fgpt: self.password_fingerprint(&user.hashed_password),
            aud: EMAIL_CHANGE_AUDIENCE.into(),
            exp: now + self.email_change_settings().lifetime.as_secs() as i64,
            iat: now,
        };
        Ok(self
            .key_ring()
            .codec(Purpose::EmailChange)?
            .encode(&claims)?)
    }

    /// Issues the token of a change of `user`'s address to `new_email` (already checked: the
    /// current password, a different address) and fires `on_after_request_email_change`, which
    /// mails the link to the new address and a notice to the old one.
    pub(crate) async fn request_email_change(
        &self,
        user: &UserOf<S>,
        new_email: &str,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        let token = self.email_change_token(user, new_email)?;
        self.hooks()
            .on_after_request_email_change(user, new_email, &token, request)
            .await;
        self.audit(
            crate::AuditEvent::EmailChangeRequested,
            Some(&user.id),
            request,
        )
        .await;
        Ok(())
    }

    /// Applies a confirmation token: the address changes, the user is verified (the new address
    /// just proved it receives mail), the epoch moves on (every older token dies) and the
    /// user's other sessions end (all of them when `request` carries none).
    ///
    /// # Errors
    /// [`ManagerError::InvalidEmailChangeToken`] for a malformed, expired, used or superseded
    /// token, one issued before the password changed, or one of an inactive or deleted user; [`ManagerError::UserAlreadyExists`] when
    /// the address was taken meanwhile; or a failure.
    pub async fn confirm_email_change(
        &self,
        token: &str,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        let bad = || ManagerError::InvalidEmailChangeToken;
        let claims: EmailChangeClaims = self
            .key_ring()
            .codec(Purpose::EmailChange)?
            .decode(token, EMAIL_CHANGE_AUDIENCE)
            .map_err(|_| bad())?;
        let id = S::Id::parse(&claims.sub).ok_or_else(bad)?;
        let user = self.store().get(&id).await?.ok_or_else(bad)?;
        let fingerprint = self.password_fingerprint(&user.hashed_password);
        let same_password = crate::secret::constant_time_eq(
            fingerprint.as_bytes(),
            claims.password_fgpt.as_bytes(),
        );
        if claims.epoch != user.email_epoch || !user.is_active || !same_password {
            return Err(bad());
        }
        if self.store().get_by_email(&claims.email).await?.is_some() {
            return Err(ManagerError::UserAlreadyExists);
        }
        let old_email = user.email.clone();
        let changes = UserChanges {
            email: Some(claims.email.clone()),
            is_verified: Some(true),
            if_email_epoch: Some(claims.epoch),
            ..UserChanges::default()
        };
        let user = match self.store().update(&user.id, changes).await {
            Ok(Some(user)) => user,
            // Another change won the compare-and-swap (or the user is gone).
            Ok(None) => return Err(bad()),
            Err(StoreError::DuplicateEmail) => return Err(ManagerError::UserAlreadyExists),
            Err(e) => return Err(e.into()),
        };
        let current = request
            .and_then(|r| r.extensions.get::<crate::sessions::CurrentSession>())
            .map(|c| c.0.as_str());
        self.revoke_sessions_for(&user.id, current, crate::RevokeReason::EmailChange, request)
            .await?;
        self.hooks()
            .on_after_email_change(&user, &old_email, request)
            .await;
        let raw = json!({ "email": user.email });
        self.hooks().on_after_update(&user, &raw, request).await;
        self.audit(
            crate::AuditEvent::EmailChangeConfirmed,
            Some(&user.id),
            request,
        )
        .await;
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::{Privilege, TokenSettings, UserCreate, UserUpdate};
    use crate::password::Argon2Params;
    use crate::{MemoryStore, NoFields, NoHooks, PasswordHasher, Secret};

    fn manager(settings: EmailChangeSettings) -> UserManager<MemoryStore, NoHooks> {
        let hasher = PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("hasher");
        UserManager::new(
            MemoryStore::new(),
            NoHooks,
            hasher,
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .expect("manager")
        .with_email_change(settings)
    }

    async fn user(m: &UserManager<MemoryStore, NoHooks>) -> UserOf<MemoryStore> {
        m.create(
            UserCreate::<NoFields>::new("Old@example.com", "correct horse battery"),
            Privilege::SelfService,
            None,
        )
        .await
        .expect("create")
    }

    fn change(email: &str) -> UserUpdate<NoFields> {
        UserUpdate {
            email: Some(email.into()),
            current_password: Some(Secret::new("correct horse battery")),
            ..UserUpdate::default()
        }
    }

    #[tokio::test]
    async fn confirm_leaves_the_address_until_the_token_is_used_once() {
        let m = manager(EmailChangeSettings::default());
        let u = user(&m).await;
        let (after, pending) = m
            .update_pending(
                u.clone(),
                change("new@example.com"),
                Privilege::SelfService,
                None,
            )
            .await
            .expect("update");
        assert_eq!(after.email, u.email, "the address waits for confirmation");
        assert_eq!(pending.as_deref(), Some("new@example.com"));
        let token = m.email_change_token(&u, "new@example.com").expect("token");
        let moved = m.confirm_email_change(&token, None).await.expect("confirm");
        assert_eq!(
            (moved.email.as_str(), moved.is_verified, moved.email_epoch),
            ("new@example.com", true, 1)
        );
        assert!(matches!(
            m.confirm_email_change(&token, None).await,
            Err(ManagerError::InvalidEmailChangeToken)
        ));
    }

    #[tokio::test]
    async fn immediate_changes_at_once_and_superusers_always_do() {
        let m = manager(EmailChangeSettings::new(EmailChange::Immediate));
        let u = user(&m).await;
        let (after, pending) = m
            .update_pending(u, change("now@example.com"), Privilege::SelfService, None)
            .await
            .expect("update");
        assert_eq!((after.email.as_str(), pending), ("now@example.com", None));

        let m = manager(EmailChangeSettings::default());
        let u = user(&m).await;
        let (after, pending) = m
            .update_pending(u, change("admin@example.com"), Privilege::Superuser, None)
            .await
            .expect("update");
        assert_eq!((after.email.as_str(), pending), ("admin@example.com", None));
    }

    #[tokio::test]
    async fn of_two_pending_changes_at_most_one_lands() {
        let m = manager(EmailChangeSettings::default());
        let u = user(&m).await;
        let a = m.email_change_token(&u, "a@example.com").expect("token");
        let b = m.email_change_token(&u, "b@example.com").expect("token");
        let (ra, rb) = tokio::join!(
            m.confirm_email_change(&a, None),
            m.confirm_email_change(&b, None)
        );
        let landed = [&ra, &rb].iter().filter(|r| r.is_ok()).count();
        assert_eq!(landed, 1, "{ra:?} {rb:?}");
        let stored = m.get(&u.id).await.expect("get");
        assert_eq!(stored.email_epoch, 1);
    }

    #[tokio::test]
    async fn a_token_dies_with_any_other_change_and_on_a_taken_address() {
        let m = manager(EmailChangeSettings::default());
        let u = user(&m).await;
        let token = m
            .email_change_token(&u, "later@example.com")
            .expect("token");
        let (u, _) = m
            .update_pending(u, change("admin@example.com"), Privilege::Superuser, None)
            .await
            .expect("superuser change");
        assert!(matches!(
            m.confirm_email_change(&token, None).await,
            Err(ManagerError::InvalidEmailChangeToken)
        ));
        let token = m
            .email_change_token(&u, "taken@example.com")
            .expect("token");
        m.create(
            UserCreate::<NoFields>::new("taken@example.com", "correct horse battery"),
            Privilege::SelfService,
            None,
        )
        .await
        .expect("create");
        assert!(matches!(
            m.confirm_email_change(&token, None).await,
            Err(ManagerError::UserAlreadyExists)
        ));
        for garbage in ["", "x.y.z", &m.verify_token(&u).expect("verify token")] {
            assert!(matches!(
                m.confirm_email_change(garbage, None).await,
                Err(ManagerError::InvalidEmailChangeToken)
            ));
        }
    }

    #[tokio::test]
    async fn a_password_change_voids_a_pending_change() {
        let m = manager(EmailChangeSettings::default());
        let u = user(&m).await;
        let token = m
            .email_change_token(&u, "intruder@example.com")
            .expect("token");
        let update = UserUpdate {
            password: Some(Secret::new("a brand new passphrase")),
            current_password: Some(Secret::new("correct horse battery")),
            ..UserUpdate::default()
        };
        m.update_pending(u, update, Privilege::SelfService, None)
            .await
            .expect("password change");
        assert!(matches!(
            m.confirm_email_change(&token, None).await,
            Err(ManagerError::InvalidEmailChangeToken)
        ));
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let m = manager(EmailChangeSettings::default().with_lifetime(Duration::ZERO));
        let u = user(&m).await;
        let token = m.email_change_token(&u, "late@example.com").expect("token");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert!(matches!(
            m.confirm_email_change(&token, None).await,
            Err(ManagerError::InvalidEmailChangeToken)
        ));
    }
}
