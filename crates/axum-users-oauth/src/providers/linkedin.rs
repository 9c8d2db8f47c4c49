//! LinkedIn (the v2 profile API used by httpx-oauth).

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// LinkedIn sign-in. `email_verified` is always false (the API has no verified flag).
/// LinkedIn now recommends "Sign In with LinkedIn using OpenID Connect": for new apps prefer
/// [`crate::OpenIdConnect`] with the issuer `https://www.linkedin.com/oauth`.
#[derive(Debug, Clone)]
pub struct LinkedIn {
    client: OAuth2Client,
    api: Url,
    name: String,
}

impl LinkedIn {
    /// A client with LinkedIn's endpoints and the scopes `r_emailaddress r_liteprofile r_basicprofile`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://www.linkedin.com/oauth/v2/authorization")?,
            token: parse_url("https://www.linkedin.com/oauth/v2/accessToken")?,
            revoke: None,
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?.with_default_scopes([
                "r_emailaddress",
                "r_liteprofile",
                "r_basicprofile",
            ]),
            api: parse_url("https://api.linkedin.com")?,
            name: "linkedin".to_owned(),
        })
    }

    /// LinkedIn's own profile shows only its primary, confirmed address; this legacy API reports no
    /// flag, so identities say unverified anyway (use OpenID Connect for its `email_verified`).
    fn email_trust(&self) -> bool {
        true
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let access_token = &token.access_token;
        let me: Value = self
            .client
            .get_json(
                api_url(&self.api, "/v2/me?projection=(id)")?,
                access_token,
                HeaderMap::new(),
            )
            .await?;
        let account_id = account_id(me.get("id"))?;
        let emails: Value = self
            .client
            .get_json(
                api_url(
                    &self.api,
                    "/v2/emailAddress?q=members&projection=(elements*(handle~))",
                )?,
                access_token,
                HeaderMap::new(),
            )
            .await?;
        Ok(ProviderIdentity {
            account_id,
            email: string_field(emails.pointer("/elements/0/handle~/emailAddress")),
            email_verified: false,
            // The legacy API's `/v2/me` with `projection=(id)` carries no name or picture.
            profile: ProviderProfile {
                claims: me,
                ..ProviderProfile::default()
            },
        })
    }
}

oauth2_provider!(LinkedIn);
