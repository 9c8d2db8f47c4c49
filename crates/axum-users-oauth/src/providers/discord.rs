//! Discord.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{ClientAuthMethod, Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// Discord sign-in (client_secret_basic). As in httpx-oauth the e-mail is reported only when
/// Discord's `verified` flag is true, so `email_verified` is true whenever an e-mail is given.
#[derive(Debug, Clone)]
pub struct Discord {
    client: OAuth2Client,
    api: Url,
    name: String,
}

impl Discord {
    /// A client with Discord's endpoints and the scopes `identify email`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://discord.com/api/oauth2/authorize")?,
            token: parse_url("https://discord.com/api/oauth2/token")?,
            revoke: Some(parse_url("https://discord.com/api/oauth2/token/revoke")?),
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?
                .with_default_scopes(["identify", "email"])
                .with_auth_method(ClientAuthMethod::ClientSecretBasic),
            api: parse_url("https://discord.com/api")?,
            name: "discord".to_owned(),
        })
    }

    /// Discord reports `verified` only for a confirmed address (and we report no e-mail otherwise).
    fn email_trust(&self) -> bool {
        true
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let user: Value = self
            .client
            .get_json(
                api_url(&self.api, "/users/@me")?,
                &token.access_token,
                HeaderMap::new(),
            )
            .await?;
        let account_id = account_id(user.get("id"))?;
        let verified = user.get("verified").and_then(Value::as_bool) == Some(true);
        let email = string_field(user.get("email")).filter(|_| verified);
        let mut profile = ProviderProfile::from_claims(user, "/global_name", "/avatar");
        if profile.name.is_none() {
            profile.name = string_field(profile.claims.get("username"));
        }
        // Discord sends the avatar's hash; its CDN serves it under the account id.
        profile.avatar_url = profile
            .avatar_url
            .map(|hash| format!("https://cdn.discordapp.com/avatars/{account_id}/{hash}.png"));
        Ok(ProviderIdentity {
            account_id,
            email_verified: email.is_some(),
            email,
            profile,
        })
    }
}

oauth2_provider!(Discord);
