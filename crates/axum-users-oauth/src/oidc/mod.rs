//! A generic OpenID Connect provider configured by discovery from its issuer URL.

mod id_token;

use std::sync::{Arc, RwLock};

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, DiscoveryError, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata,
    RevocationUrl,
};
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::client::{ClientAuthMethod, Endpoints, OAuth2Client};
use crate::error::{IdTokenErrorReason, OAuthError};
use crate::http::{HttpConfig, OidcHttp};
use crate::provider::{
    AuthorizationRequest, BoxFuture, OAuthProvider, ProviderIdentity, ProviderProfile,
};
use crate::secret::{ClientSecret, PkceVerifier, RefreshToken};
use crate::token::OAuthToken;

use id_token::{Expectations, has_unknown_kid, validate, verified_flag};

/// The discovery fields beyond Core's that we use (RFC 7009 revocation, named in RFC 8414).
#[derive(Debug, Clone, Deserialize, Serialize)]
struct RevocationMetadata {
    revocation_endpoint: Option<RevocationUrl>,
}

impl AdditionalProviderMetadata for RevocationMetadata {}

/// `/.well-known/openid-configuration` as `openidconnect` parses and checks it.
type DiscoveredMetadata = ProviderMetadata<
    RevocationMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Settings for [`OpenIdConnect::discover`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OpenIdConnectConfig {
    /// The issuer URL exactly as the provider writes it in `iss` (e.g. `https://accounts.google.com`).
    pub issuer: String,
    /// The OAuth client_id (also the expected id_token audience).
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: ClientSecret,
    /// The provider name used in routes; default `openid` (httpx-oauth's).
    pub name: String,
    /// Scopes requested by default; default `openid email`.
    pub default_scopes: Vec<String>,
    /// HTTP settings used for discovery and every later call.
    pub http: HttpConfig,
    /// Whether this issuer's `email_verified` is trusted; default false (see
    /// [`OpenIdConnectConfig::trust_email_verified`]).
    pub trust_email_verified: bool,
}

impl OpenIdConnectConfig {
    /// Settings with the default name, scopes and HTTP settings.
    pub fn new(
        issuer: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            name: "openid".to_owned(),
            default_scopes: vec!["openid".to_owned(), "email".to_owned()],
            http: HttpConfig::default(),
            trust_email_verified: false,
        }
    }

    /// Trusts this issuer's `email_verified` claim. Off by default: any server can claim a
    /// verified address, so turn it on only for an issuer known to verify e-mail addresses
    /// (Google, LinkedIn, your own identity provider). Untrusted, every identity reports
    /// `email_verified = false`.
    pub fn trust_email_verified(mut self, trusted: bool) -> Self {
        self.trust_email_verified = trusted;
        self
    }

    /// Uses another provider name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Requests these scopes by default (keep `openid`).
    pub fn with_default_scopes<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Uses other HTTP settings.
    pub fn with_http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Runs discovery; see [`OpenIdConnect::discover`].
    ///
    /// # Errors
    /// As [`OpenIdConnect::discover`].
    pub async fn discover(self) -> Result<OpenIdConnect, OAuthError> {
        OpenIdConnect::discover(self).await
    }
}

/// A generic OpenID Connect provider: endpoints from discovery, id_tokens checked against the
/// provider's JWKS by `openidconnect` (algorithm, signature, `iss`, `aud`, `exp`, `iat`, `nonce`)
/// and here (`azp`, `sub`); docs/oauth.md lists every check in order.
///
/// `identity` reads `sub`, `email` and `email_verified` from the id_token; when the id_token
/// carries no e-mail it asks the userinfo endpoint (whose `sub` must match). `email_verified` is
/// reported only with [`OpenIdConnectConfig::trust_email_verified`].
#[derive(Debug)]
pub struct OpenIdConnect {
    name: String,
    issuer: IssuerUrl,
    client: OAuth2Client,
    userinfo: Option<Url>,
    jwks_uri: JsonWebKeySetUrl,
    jwks: RwLock<Arc<CoreJsonWebKeySet>>,
    http: OidcHttp,
    trust_email_verified: bool,
}

impl OpenIdConnect {
    /// Fetches `{issuer}/.well-known/openid-configuration`, checks that its `issuer` equals the
    /// configured one, fetches the JWKS and picks the token auth method (post or basic, in the
    /// provider's order of `token_endpoint_auth_methods_supported`, default basic).
    ///
    /// # Errors
    /// [`OAuthError::Discovery`] if a document cannot be fetched or does not match;
    /// [`OAuthError::InvalidConfig`] if no supported auth method is offered.
    pub async fn discover(config: OpenIdConnectConfig) -> Result<Self, OAuthError> {
        let http = OidcHttp(config.http.build_client()?);
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|error| OAuthError::InvalidConfig(format!("bad issuer URL: {error}")))?;
        // Fetches the document, refuses one naming another issuer, then fetches the JWKS.
        let metadata = DiscoveredMetadata::discover_async(issuer, &http)
            .await
            .map_err(discovery_error)?;
        let token = metadata
            .token_endpoint()
            .ok_or_else(|| OAuthError::Discovery("no token_endpoint".into()))?;
        let endpoints = Endpoints {
            authorize: metadata.authorization_endpoint().url().clone(),
            token: token.url().clone(),
            revoke: metadata
                .additional_metadata()
                .revocation_endpoint
                .as_ref()
                .map(|url| url.url().clone()),
        };
        let auth_method = choose_auth_method(
            metadata
                .token_endpoint_auth_methods_supported()
                .map(Vec::as_slice),
        )?;
        let supports_refresh = metadata
            .grant_types_supported()
            .is_some_and(|grants| grants.contains(&CoreGrantType::RefreshToken));
        let client = OAuth2Client::new(config.client_id, config.client_secret, endpoints)?
            .with_http(&config.http)?
            .with_default_scopes(config.default_scopes)
            .with_auth_method(auth_method)
            .with_refresh(supports_refresh);
        Ok(Self {
            name: config.name,
            issuer: metadata.issuer().clone(),
            client,
            userinfo: metadata.userinfo_endpoint().map(|url| url.url().clone()),
            jwks_uri: metadata.jwks_uri().clone(),
            jwks: RwLock::new(Arc::new(metadata.jwks().clone())),
            http,
            trust_email_verified: config.trust_email_verified,
        })
    }

    /// The verified issuer.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// The underlying OAuth2 client (endpoints, auth method).
    pub fn oauth2(&self) -> &OAuth2Client {
        &self.client
    }

    fn keys(&self) -> Arc<CoreJsonWebKeySet> {
        match self.jwks.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the JWKS (the provider rotated its keys).
    async fn refresh_keys(&self) -> Result<Arc<CoreJsonWebKeySet>, OAuthError> {
        let keys = CoreJsonWebKeySet::fetch_async(&self.jwks_uri, &self.http)
            .await
            .map_err(discovery_error)?;
        let keys = Arc::new(keys);
        match self.jwks.write() {
            Ok(mut slot) => *slot = keys.clone(),
            Err(poisoned) => *poisoned.into_inner() = keys.clone(),
        }
        Ok(keys)
    }

    async fn fetch_identity(
        &self,
        token: &OAuthToken,
        expected_nonce: Option<&str>,
    ) -> Result<ProviderIdentity, OAuthError> {
        let id_token = token
            .id_token
            .as_ref()
            .ok_or(OAuthError::IdTokenInvalid(IdTokenErrorReason::Missing))?
            .secret();
        let mut keys = self.keys();
        if has_unknown_kid(id_token, &keys) {
            keys = self.refresh_keys().await?;
        }
        let expectations = Expectations {
            issuer: &self.issuer,
            client_id: self.client.client_id(),
            nonce: expected_nonce,
        };
        let claims =
            validate(id_token, &keys, &expectations).map_err(OAuthError::IdTokenInvalid)?;
        if claims.email.is_some() {
            return Ok(ProviderIdentity {
                account_id: claims.subject,
                email: claims.email,
                email_verified: claims.email_verified,
                profile: oidc_profile(claims.all),
            });
        }
        let Some(userinfo_url) = &self.userinfo else {
            return Ok(ProviderIdentity {
                account_id: claims.subject,
                email: None,
                email_verified: false,
                profile: oidc_profile(claims.all),
            });
        };
        let userinfo: Value = self
            .client
            .get_json(userinfo_url.clone(), &token.access_token, HeaderMap::new())
            .await?;
        // Core §5.3.2: the userinfo `sub` must be the id_token's.
        if userinfo.get("sub").and_then(Value::as_str) != Some(claims.subject.as_str()) {
            return Err(OAuthError::ProfileFetch(
                "userinfo sub differs from the id_token".into(),
            ));
        }
        let email = userinfo
            .get("email")
            .and_then(Value::as_str)
            .filter(|email| !email.is_empty())
            .map(str::to_owned);
        let email_verified = email.is_some() && verified_flag(userinfo.get("email_verified"));
        let mut all = claims.all;
        if let (Some(merged), Value::Object(answer)) = (all.as_object_mut(), userinfo) {
            merged.extend(answer);
        }
        Ok(ProviderIdentity {
            account_id: claims.subject,
            email_verified,
            email,
            profile: oidc_profile(all),
        })
    }
}

/// OpenID Connect's standard claims `name` and `picture` (Core §5.1).
fn oidc_profile(claims: Value) -> ProviderProfile {
    ProviderProfile::from_claims(claims, "/name", "/picture")
}

impl OAuthProvider for OpenIdConnect {
    fn name(&self) -> &str {
        &self.name
    }

    fn authorization_url(&self, request: &AuthorizationRequest) -> Result<Url, OAuthError> {
        Ok(self.client.authorization_url(request, true))
    }

    fn exchange_code<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        pkce_verifier: Option<&'a PkceVerifier>,
    ) -> BoxFuture<'a, Result<OAuthToken, OAuthError>> {
        Box::pin(self.client.exchange_code(code, redirect_uri, pkce_verifier))
    }

    fn identity<'a>(
        &'a self,
        token: &'a OAuthToken,
        expected_nonce: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ProviderIdentity, OAuthError>> {
        Box::pin(async move {
            let identity = self.fetch_identity(token, expected_nonce).await?;
            Ok(identity.trusted_if(self.trust_email_verified))
        })
    }

    fn trusts_email_verified(&self) -> bool {
        self.trust_email_verified
    }

    fn refresh<'a>(
        &'a self,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<OAuthToken, OAuthError>> {
        Box::pin(self.client.refresh(refresh_token))
    }

    fn revoke<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), OAuthError>> {
        Box::pin(self.client.revoke(token))
    }
}

/// The first of the provider's methods we support (OpenID Discovery's default is basic).
fn choose_auth_method(
    supported: Option<&[CoreClientAuthMethod]>,
) -> Result<ClientAuthMethod, OAuthError> {
    let Some(supported) = supported else {
        return Ok(ClientAuthMethod::ClientSecretBasic);
    };
    supported
        .iter()
        .find_map(|method| match method {
            CoreClientAuthMethod::ClientSecretPost => Some(ClientAuthMethod::ClientSecretPost),
            CoreClientAuthMethod::ClientSecretBasic => Some(ClientAuthMethod::ClientSecretBasic),
            _ => None,
        })
        .ok_or_else(|| {
            OAuthError::InvalidConfig(format!(
                "the provider supports none of client_secret_post/basic: {supported:?}"
            ))
        })
}

/// A discovery or JWKS failure: time-outs stay [`OAuthError::Timeout`], the rest is
/// [`OAuthError::Discovery`] (never with the response body, which the provider controls).
fn discovery_error(error: DiscoveryError<OAuthError>) -> OAuthError {
    match error {
        DiscoveryError::Request(OAuthError::Http(message)) => OAuthError::Discovery(message),
        DiscoveryError::Request(other) => other,
        DiscoveryError::Response(status, _, message) => {
            OAuthError::Discovery(format!("status {}: {message}", status.as_u16()))
        }
        DiscoveryError::Parse(error) => OAuthError::Discovery(format!("bad document: {error}")),
        DiscoveryError::Validation(message) => OAuthError::Discovery(message),
        other => OAuthError::Discovery(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(list: &[&str]) -> Vec<CoreClientAuthMethod> {
        list.iter()
            .map(|m| serde_json::from_value(serde_json::json!(m)).expect("method"))
            .collect()
    }

    #[test]
    fn auth_method_follows_the_provider_order() {
        assert_eq!(
            choose_auth_method(Some(&methods(&[
                "private_key_jwt",
                "client_secret_post",
                "client_secret_basic"
            ])))
            .expect("method"),
            ClientAuthMethod::ClientSecretPost
        );
        assert_eq!(
            choose_auth_method(Some(&methods(&[
                "client_secret_basic",
                "client_secret_post"
            ])))
            .expect("method"),
            ClientAuthMethod::ClientSecretBasic
        );
        assert_eq!(
            choose_auth_method(None).expect("method"),
            ClientAuthMethod::ClientSecretBasic
        );
        assert!(matches!(
            choose_auth_method(Some(&methods(&["private_key_jwt"]))),
            Err(OAuthError::InvalidConfig(_))
        ));
    }

    #[test]
    fn config_defaults() {
        let config = OpenIdConnectConfig::new("https://idp.example", "id", "very-secret");
        assert_eq!(config.name, "openid");
        assert_eq!(config.default_scopes, ["openid", "email"]);
        assert!(!format!("{config:?}").contains("very-secret"));
    }
}
