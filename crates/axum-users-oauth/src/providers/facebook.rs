//! Facebook (Graph API v5.0, as httpx-oauth).

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// Facebook sign-in. `email_verified` is always false: the Graph API gives no verified flag,
/// so the application must verify the address itself before trusting it. No refresh or revoke.
#[derive(Debug, Clone)]
pub struct Facebook {
    client: OAuth2Client,
    api: Url,
    name: String,
}

impl Facebook {
    /// A client with Facebook's endpoints and the scopes `email public_profile`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://www.facebook.com/v5.0/dialog/oauth")?,
            token: parse_url("https://graph.facebook.com/v5.0/oauth/access_token")?,
            revoke: None,
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?
                .with_default_scopes(["email", "public_profile"])
                .with_refresh(false),
            api: parse_url("https://graph.facebook.com/v5.0")?,
            name: "facebook".to_owned(),
        })
    }

    /// The Graph API has no verified flag.
    fn email_trust(&self) -> bool {
        false
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        // The token goes in the Authorization header, never in the URL.
        let me: Value = self
            .client
            .get_json(
                api_url(&self.api, "/me?fields=id,email,name,picture")?,
                &token.access_token,
                HeaderMap::new(),
            )
            .await?;
        Ok(ProviderIdentity {
            account_id: account_id(me.get("id"))?,
            email: string_field(me.get("email")),
            email_verified: false,
            profile: ProviderProfile::from_claims(me, "/name", "/picture/data/url"),
        })
    }
}

oauth2_provider!(Facebook);
