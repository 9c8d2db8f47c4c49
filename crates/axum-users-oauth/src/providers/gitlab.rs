//! GitLab (gitlab.com or a self-hosted instance).

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// GitLab sign-in. Identity from `GET /api/v4/user`: `id`, the primary `email`, and
/// `email_verified` = the account's `confirmed_at` is set (GitLab confirms the primary e-mail).
/// For a self-hosted instance use [`GitLab::with_base_url`]; its `email_verified` is not trusted
/// unless [`GitLab::trust_email_verified`] says so (an instance may turn confirmation off).
#[derive(Debug, Clone)]
pub struct GitLab {
    client: OAuth2Client,
    api: Url,
    name: String,
    trust_email: Option<bool>,
}

impl GitLab {
    /// A client for `https://gitlab.com` with the scope `read_user`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://gitlab.com/oauth/authorize")?,
            token: parse_url("https://gitlab.com/oauth/token")?,
            revoke: Some(parse_url("https://gitlab.com/oauth/revoke")?),
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?
                .with_default_scopes(["read_user"]),
            api: parse_url("https://gitlab.com/api/v4")?,
            name: "gitlab".to_owned(),
            trust_email: None,
        })
    }

    /// Overrides whether `email_verified` is trusted. By default it is on gitlab.com (which
    /// confirms addresses) and not on any other base URL: a self-hosted instance may let users
    /// in without confirming, or be run by anyone.
    pub fn trust_email_verified(mut self, trusted: bool) -> Self {
        self.trust_email = Some(trusted);
        self
    }

    /// gitlab.com unless told otherwise.
    fn email_trust(&self) -> bool {
        self.trust_email
            .unwrap_or_else(|| self.api.host_str() == Some("gitlab.com"))
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let user: Value = self
            .client
            .get_json(
                api_url(&self.api, "/user")?,
                &token.access_token,
                HeaderMap::new(),
            )
            .await?;
        let email = string_field(user.get("email"));
        let confirmed = string_field(user.get("confirmed_at")).is_some();
        Ok(ProviderIdentity {
            account_id: account_id(user.get("id"))?,
            email_verified: email.is_some() && confirmed,
            email,
            profile: ProviderProfile::from_claims(user, "/name", "/avatar_url"),
        })
    }
}

oauth2_provider!(GitLab);
