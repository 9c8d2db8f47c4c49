//! The OAuth rules of the user manager (spec section 8): sign-in, linking and unlinking.

use http::request::Parts;
use serde_json::json;

use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::model::{NewUser, OAuthAccount, PasswordHash, UserId};
use crate::secret::Secret;
use crate::store::{NewOAuthAccount, OAuthAccountStore, StoreError, Unlink};

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
    /// The e-mail the provider reported.
    pub account_email: String,
    /// Whether the provider says it verified that e-mail.
    pub email_verified: bool,
}

impl OAuthSignIn {
    fn new_account(&self) -> NewOAuthAccount {
        NewOAuthAccount {
            oauth_name: self.oauth_name.clone(),
            access_token: self.access_token.clone(),
            expires_at: self.expires_at,
            refresh_token: self.refresh_token.clone(),
            account_id: self.account_id.clone(),
            account_email: self.account_email.clone(),
        }
    }

    fn refresh(&self, account: &mut OAuthAccount<impl UserId>) {
        account.access_token = self.access_token.clone();
        account.expires_at = self.expires_at;
        account.refresh_token = self.refresh_token.clone();
        account.account_email = self.account_email.clone();
    }
}

/// How a sign-in treats an e-mail address that already has an account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthPolicy {
    /// Link to the existing user with that e-mail, when the provider verified the address.
    pub associate_by_email: bool,
    /// New users start verified, when the provider verified the address.
    pub is_verified_by_default: bool,
}

impl<S, H> UserManager<S, H>
where
    S: OAuthAccountStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Resolves the user of an OAuth sign-in: the linked user (whose tokens are refreshed), else
    /// the user with the same verified e-mail when the policy allows, else a new user.
    ///
    /// # Errors
    /// [`ManagerError::UserAlreadyExists`] when the e-mail belongs to another user and may not
    /// be linked, or a store failure.
    pub async fn oauth_callback(
        &self,
        sign_in: &OAuthSignIn,
        policy: OAuthPolicy,
        request: Option<&Parts>,
    ) -> Result<UserOf<S>, ManagerError> {
        if let Some(user) = self.refresh_linked(sign_in).await? {
            return Ok(user);
        }
        if let Some(user) = self.store().get_by_email(&sign_in.account_email).await? {
            if !(policy.associate_by_email && sign_in.email_verified) {
                return Err(ManagerError::UserAlreadyExists);
            }
            return match self.link(&user, sign_in).await {
                Ok(()) => Ok(user),
                // A concurrent sign-in linked the account first: it signs in as its owner.
                Err(ManagerError::OAuthAccountAlreadyLinked) => self
                    .refresh_linked(sign_in)
                    .await?
                    .ok_or(ManagerError::OAuthAccountAlreadyLinked),
                Err(e) => Err(e),
            };
        }
        let new = NewUser {
            id: S::Id::generate(),
            email: sign_in.account_email.clone(),
            hashed_password: PasswordHash::unusable(),
            is_active: true,
            is_superuser: false,
            is_verified: policy.is_verified_by_default && sign_in.email_verified,
            fields: Default::default(),
        };
        let user = match self
            .store()
            .create_with_oauth_account(new, sign_in.new_account())
            .await
        {
            Ok(user) => user,
            // Another first sign-in of the same person won the race: use what it made.
            Err(StoreError::DuplicateEmail | StoreError::DuplicateOAuthAccount) => {
                return self
                    .refresh_linked(sign_in)
                    .await?
                    .ok_or(ManagerError::UserAlreadyExists);
            }
            Err(e) => return Err(e.into()),
        };
        self.hooks().on_after_register(&user, request).await;
        Ok(user)
    }

    /// Links an external account to `user` (or refreshes it when already theirs) and fires
    /// `on_after_update` with `{}`.
    ///
    /// # Errors
    /// [`ManagerError::OAuthAccountAlreadyLinked`] when another user has it, or a store failure.
    pub async fn oauth_associate(
        &self,
        user: &UserOf<S>,
        sign_in: &OAuthSignIn,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        match self
            .store()
            .get_by_oauth_account(&sign_in.oauth_name, &sign_in.account_id)
            .await?
        {
            Some(owner) if owner.id != user.id => {
                return Err(ManagerError::OAuthAccountAlreadyLinked);
            }
            Some(_) => {
                self.refresh_linked(sign_in).await?;
            }
            None => self.link(user, sign_in).await?,
        }
        self.hooks()
            .on_after_update(user, &json!({}), request)
            .await;
        Ok(())
    }

    /// The accounts linked to a user.
    ///
    /// # Errors
    /// A store failure.
    pub async fn oauth_accounts(
        &self,
        user: &UserOf<S>,
    ) -> Result<Vec<OAuthAccount<S::Id>>, ManagerError> {
        Ok(self.store().list_oauth_accounts(&user.id).await?)
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
        match self
            .store()
            .unlink_oauth_account(&user.id, account_id)
            .await?
        {
            Unlink::Removed => Ok(()),
            Unlink::NotFound => Err(ManagerError::OAuthAccountNotFound),
            Unlink::LastSignInMethod => Err(ManagerError::LastSignInMethod),
        }
    }

    /// The user linked to the sign-in's account, after writing the new tokens to the link.
    async fn refresh_linked(
        &self,
        sign_in: &OAuthSignIn,
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
                sign_in.refresh(&mut account);
                self.store().update_oauth_account(&account).await?;
            }
        }
        Ok(Some(user))
    }

    async fn link(&self, user: &UserOf<S>, sign_in: &OAuthSignIn) -> Result<(), ManagerError> {
        match self
            .store()
            .add_oauth_account(&user.id, sign_in.new_account())
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::DuplicateOAuthAccount) => Err(ManagerError::OAuthAccountAlreadyLinked),
            Err(e) => Err(e.into()),
        }
    }
}
