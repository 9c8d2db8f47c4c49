//! GitHub (OAuth apps and GitHub apps).

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// GitHub sign-in. The e-mail is `/user`'s public e-mail, else the primary entry of
/// `/user/emails`; `email_verified` is that entry's `verified` flag.
#[derive(Debug, Clone)]
pub struct GitHub {
    client: OAuth2Client,
    api: Url,
    name: String,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

impl GitHub {
    /// A client with GitHub's endpoints and the scopes `user user:email`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://github.com/login/oauth/authorize")?,
            token: parse_url("https://github.com/login/oauth/access_token")?,
            revoke: None,
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?
                .with_default_scopes(["user", "user:email"]),
            api: parse_url("https://api.github.com")?,
            name: "github".to_owned(),
        })
    }

    fn api_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static("2022-11-28"),
        );
        headers
    }

    /// GitHub's `/user/emails` `verified` flag is set only after the user confirmed the address.
    fn email_trust(&self) -> bool {
        true
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let access_token = &token.access_token;
        let profile: Value = self
            .client
            .get_json(
                api_url(&self.api, "/user")?,
                access_token,
                Self::api_headers(),
            )
            .await?;
        let account_id = account_id(profile.get("id"))?;
        let emails = self
            .client
            .get_json::<Vec<GitHubEmail>>(
                api_url(&self.api, "/user/emails")?,
                access_token,
                Self::api_headers(),
            )
            .await;
        let (email, email_verified) = match string_field(profile.get("email")) {
            // The public e-mail: its verified flag comes from /user/emails when we may read it.
            Some(public) => {
                let verified = emails
                    .ok()
                    .and_then(|list| list.into_iter().find(|entry| entry.email == public))
                    .is_some_and(|entry| entry.verified);
                (Some(public), verified)
            }
            None => match emails?.into_iter().find(|entry| entry.primary) {
                Some(primary) => (Some(primary.email), primary.verified),
                None => (None, false),
            },
        };
        Ok(ProviderIdentity {
            account_id,
            email,
            email_verified,
            profile: ProviderProfile::from_claims(profile, "/name", "/avatar_url"),
        })
    }
}

oauth2_provider!(GitHub);
