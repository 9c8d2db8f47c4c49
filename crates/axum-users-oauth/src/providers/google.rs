//! Google (the People API gives the account id and the primary e-mail with its `verified` flag).

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// Google sign-in. The account id is the People API `resourceName` (`people/…`, as httpx-oauth
/// stores it); the e-mail is the primary `emailAddresses` entry and `email_verified` its
/// `metadata.verified`. For refresh tokens add `with_authorize_param("access_type", "offline")`.
#[derive(Debug, Clone)]
pub struct Google {
    client: OAuth2Client,
    api: Url,
    name: String,
}

impl Google {
    /// A client with Google's endpoints and the `userinfo.profile` + `userinfo.email` scopes.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = Endpoints {
            authorize: parse_url("https://accounts.google.com/o/oauth2/v2/auth")?,
            token: parse_url("https://oauth2.googleapis.com/token")?,
            revoke: Some(parse_url("https://oauth2.googleapis.com/revoke")?),
        };
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?.with_default_scopes([
                "https://www.googleapis.com/auth/userinfo.profile",
                "https://www.googleapis.com/auth/userinfo.email",
            ]),
            api: parse_url("https://people.googleapis.com")?,
            name: "google".to_owned(),
        })
    }

    /// Google verifies the address before it reports `metadata.verified`.
    fn email_trust(&self) -> bool {
        true
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let url = api_url(
            &self.api,
            "/v1/people/me?personFields=emailAddresses,names,photos",
        )?;
        let person: Value = self
            .client
            .get_json(url, &token.access_token, HeaderMap::new())
            .await?;
        let account_id = account_id(person.get("resourceName"))?;
        let primary = person
            .get("emailAddresses")
            .and_then(Value::as_array)
            .and_then(|list| {
                list.iter().find(|entry| {
                    entry.pointer("/metadata/primary").and_then(Value::as_bool) == Some(true)
                })
            });
        let email = primary.and_then(|entry| string_field(entry.get("value")));
        let email_verified = email.is_some()
            && primary
                .and_then(|entry| entry.pointer("/metadata/verified"))
                .and_then(Value::as_bool)
                == Some(true);
        Ok(ProviderIdentity {
            account_id,
            email,
            email_verified,
            profile: ProviderProfile::from_claims(person, "/names/0/displayName", "/photos/0/url"),
        })
    }
}

oauth2_provider!(Google);
