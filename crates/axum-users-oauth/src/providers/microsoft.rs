//! Microsoft identity platform v2.0 + Microsoft Graph.

use reqwest::header::HeaderMap;
use serde_json::Value;
use url::Url;

use super::{account_id, api_url, oauth2_provider, string_field};
use crate::client::{Endpoints, OAuth2Client, parse_url};
use crate::error::OAuthError;
use crate::provider::{ProviderIdentity, ProviderProfile};
use crate::secret::ClientSecret;
use crate::token::OAuthToken;

/// Microsoft sign-in (tenant `common` unless [`Microsoft::with_tenant`]). The e-mail is Graph's
/// `userPrincipalName`, as in httpx-oauth; `email_verified` is always false because neither the
/// UPN nor `mail` is proven to be a mailbox the user controls. Every authorization URL carries
/// `response_mode=query`.
#[derive(Debug, Clone)]
pub struct Microsoft {
    client: OAuth2Client,
    api: Url,
    name: String,
}

fn tenant_endpoints(login_base: &str, tenant: &str) -> Result<Endpoints, OAuthError> {
    let tenant: String = url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
    Ok(Endpoints {
        authorize: parse_url(&format!("{login_base}/{tenant}/oauth2/v2.0/authorize"))?,
        token: parse_url(&format!("{login_base}/{tenant}/oauth2/v2.0/token"))?,
        revoke: None,
    })
}

impl Microsoft {
    /// A client for the `common` tenant with the scope `User.Read`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Result<Self, OAuthError> {
        let endpoints = tenant_endpoints("https://login.microsoftonline.com", "common")?;
        Ok(Self {
            client: OAuth2Client::new(client_id, client_secret, endpoints)?
                .with_default_scopes(["User.Read"])
                .with_authorize_param("response_mode", "query"),
            api: parse_url("https://graph.microsoft.com")?,
            name: "microsoft".to_owned(),
        })
    }

    /// Uses another tenant (`organizations`, `consumers`, a tenant id or domain) on
    /// `login.microsoftonline.com`.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the tenant makes an invalid URL.
    pub fn with_tenant(mut self, tenant: &str) -> Result<Self, OAuthError> {
        let endpoints = tenant_endpoints("https://login.microsoftonline.com", tenant)?;
        self.client = self.client.with_endpoints(endpoints);
        Ok(self)
    }

    /// Graph's `userPrincipalName`/`mail` carry no verification signal; Microsoft documents the
    /// `email` claim as unverified and offers only the optional `xms_edov` id_token claim, which
    /// this Graph-based client does not receive.
    fn email_trust(&self) -> bool {
        false
    }

    async fn fetch_identity(&self, token: &OAuthToken) -> Result<ProviderIdentity, OAuthError> {
        let me: Value = self
            .client
            .get_json(
                api_url(&self.api, "/v1.0/me")?,
                &token.access_token,
                HeaderMap::new(),
            )
            .await?;
        Ok(ProviderIdentity {
            account_id: account_id(me.get("id"))?,
            email: string_field(me.get("userPrincipalName")),
            email_verified: false,
            // Graph serves the photo as bytes at `/me/photo/$value`, not as a URL.
            profile: ProviderProfile {
                name: string_field(me.get("displayName")),
                avatar_url: None,
                claims: me,
            },
        })
    }
}

oauth2_provider!(Microsoft);
