//! The plain OAuth2 client every provider is built on (the counterpart of httpx-oauth's
//! `BaseOAuth2`): authorization URL, code exchange, refresh, revoke, authenticated GETs.

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::OAuthError;
use crate::http::HttpConfig;
use crate::provider::AuthorizationRequest;
use crate::secret::{AccessToken, ClientSecret, PkceVerifier, RefreshToken};
use crate::token::{OAuthToken, parse_token_response, rejection_from_body, unix_now};

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuthMethod {
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// HTTP Basic with the url-encoded `client_id:client_secret`.
    ClientSecretBasic,
}

impl ClientAuthMethod {
    /// The name used in OpenID discovery documents.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// The endpoints of an OAuth2 provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Where the browser is sent to sign in.
    pub authorize: Url,
    /// Where codes and refresh tokens are exchanged.
    pub token: Url,
    /// RFC 7009 revocation endpoint, if the provider has one.
    pub revoke: Option<Url>,
}

/// Parses a URL known at compile time or given in configuration.
pub(crate) fn parse_url(value: &str) -> Result<Url, OAuthError> {
    Url::parse(value)
        .map_err(|error| OAuthError::InvalidConfig(format!("bad URL {value}: {error}")))
}

/// Moves a URL to another scheme/host/port, keeping its path and query (for loopback fakes).
pub(crate) fn rebase(url: &Url, base: &Url) -> Url {
    let mut moved = base.clone();
    let prefix = base.path().trim_end_matches('/');
    moved.set_path(&format!("{prefix}{}", url.path()));
    moved.set_query(url.query());
    moved
}

/// A configured OAuth2 client: identity, endpoints, scopes and one HTTP client.
#[derive(Debug, Clone)]
pub struct OAuth2Client {
    client_id: String,
    client_secret: ClientSecret,
    endpoints: Endpoints,
    auth_method: ClientAuthMethod,
    default_scopes: Vec<String>,
    supports_refresh: bool,
    extra_authorize_params: Vec<(String, String)>,
    http: reqwest::Client,
}

impl OAuth2Client {
    /// A client with `client_secret_post`, no default scopes, refresh enabled and default HTTP settings.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn new(
        client_id: impl Into<String>,
        client_secret: impl Into<ClientSecret>,
        endpoints: Endpoints,
    ) -> Result<Self, OAuthError> {
        Ok(Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            endpoints,
            auth_method: ClientAuthMethod::ClientSecretPost,
            default_scopes: Vec::new(),
            supports_refresh: true,
            extra_authorize_params: Vec::new(),
            http: HttpConfig::default().build_client()?,
        })
    }

    /// Sets the scopes requested when the caller names none.
    pub fn with_default_scopes<S: Into<String>>(
        mut self,
        scopes: impl IntoIterator<Item = S>,
    ) -> Self {
        self.default_scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets how the client authenticates at the token and revocation endpoints.
    pub fn with_auth_method(mut self, method: ClientAuthMethod) -> Self {
        self.auth_method = method;
        self
    }

    /// Declares whether the token endpoint accepts `grant_type=refresh_token`.
    pub fn with_refresh(mut self, supported: bool) -> Self {
        self.supports_refresh = supported;
        self
    }

    /// Adds a fixed parameter to every authorization URL (e.g. Microsoft's `response_mode=query`).
    pub fn with_authorize_param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.extra_authorize_params
            .push((name.into(), value.into()));
        self
    }

    /// Replaces the endpoints.
    pub fn with_endpoints(mut self, endpoints: Endpoints) -> Self {
        self.endpoints = endpoints;
        self
    }

    /// Rebuilds the HTTP client with other timeouts or User-Agent.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
    pub fn with_http(mut self, config: &HttpConfig) -> Result<Self, OAuthError> {
        self.http = config.build_client()?;
        Ok(self)
    }

    /// The OAuth client_id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The token-endpoint authentication method.
    pub fn auth_method(&self) -> ClientAuthMethod {
        self.auth_method
    }

    /// The HTTP client (redirects disabled, timeouts set) for provider-specific calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Builds the authorization URL: `response_type=code`, `client_id`, `redirect_uri`, `state`,
    /// `scope` (space-joined), PKCE S256 parameters and, when `send_nonce`, the nonce.
    pub fn authorization_url(&self, request: &AuthorizationRequest, send_nonce: bool) -> Url {
        let mut url = self.endpoints.authorize.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("response_type", "code")
                .append_pair("client_id", &self.client_id)
                .append_pair("redirect_uri", &request.redirect_uri)
                .append_pair("state", &request.state);
            let scopes = request.scopes.as_ref().unwrap_or(&self.default_scopes);
            if !scopes.is_empty() {
                query.append_pair("scope", &scopes.join(" "));
            }
            if let Some(challenge) = &request.code_challenge {
                query
                    .append_pair("code_challenge", challenge)
                    .append_pair("code_challenge_method", "S256");
            }
            if let (true, Some(nonce)) = (send_nonce, &request.nonce) {
                query.append_pair("nonce", nonce);
            }
            for (name, value) in &self.extra_authorize_params {
                query.append_pair(name, value);
            }
        }
        url
    }

    /// Exchanges an authorization code (`grant_type=authorization_code`).
    ///
    /// # Errors
    /// [`OAuthError::TokenRejected`] when the provider refuses; transport errors otherwise.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: Option<&PkceVerifier>,
    ) -> Result<OAuthToken, OAuthError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
        ];
        if let Some(verifier) = pkce_verifier {
            form.push(("code_verifier", verifier.secret()));
        }
        self.token_request(&form).await
    }

    /// Exchanges a refresh token; keeps the old refresh token if the response has none.
    ///
    /// # Errors
    /// [`OAuthError::NotSupported`] if the provider has no refresh grant, else as [`Self::exchange_code`].
    pub async fn refresh(&self, refresh_token: &RefreshToken) -> Result<OAuthToken, OAuthError> {
        if !self.supports_refresh {
            return Err(OAuthError::NotSupported("refresh"));
        }
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.secret()),
        ];
        let mut token = self.token_request(&form).await?;
        if token.refresh_token.is_none() {
            token.refresh_token = Some(refresh_token.clone());
        }
        Ok(token)
    }

    /// Revokes a token at the RFC 7009 endpoint.
    ///
    /// # Errors
    /// [`OAuthError::NotSupported`] without a revocation endpoint; [`OAuthError::TokenRejected`]
    /// when the provider refuses.
    pub async fn revoke(&self, token: &str) -> Result<(), OAuthError> {
        let Some(endpoint) = &self.endpoints.revoke else {
            return Err(OAuthError::NotSupported("revoke"));
        };
        let response = self
            .authenticated_form(endpoint.clone(), &[("token", token)])
            .send()
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = crate::http::read_body(response).await?;
        Err(rejection_from_body(status.as_u16(), &body))
    }

    /// GETs a JSON resource with the access token as a Bearer credential.
    ///
    /// # Errors
    /// [`OAuthError::ProfileFetch`] on a non-2xx status or a body of the wrong shape.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        url: Url,
        access_token: &AccessToken,
        extra_headers: HeaderMap,
    ) -> Result<T, OAuthError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(access_token.secret())
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .headers(extra_headers)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(OAuthError::ProfileFetch(format!(
                "status {}",
                status.as_u16()
            )));
        }
        let body = crate::http::read_body(response).await?;
        serde_json::from_slice(&body)
            .map_err(|error| OAuthError::ProfileFetch(format!("unexpected body: {error}")))
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<OAuthToken, OAuthError> {
        let response = self
            .authenticated_form(self.endpoints.token.clone(), form)
            .send()
            .await?;
        let status = response.status();
        if status.is_redirection() {
            return Err(OAuthError::InvalidResponse(format!(
                "token endpoint answered a redirect ({}), not followed",
                status.as_u16()
            )));
        }
        let body = crate::http::read_body(response).await?;
        if !status.is_success() {
            return Err(rejection_from_body(status.as_u16(), &body));
        }
        parse_token_response(&body, unix_now())
    }

    fn authenticated_form(&self, url: Url, params: &[(&str, &str)]) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        match self.auth_method {
            ClientAuthMethod::ClientSecretPost => {
                let mut form = params.to_vec();
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.client_secret.secret()));
                request.form(&form)
            }
            ClientAuthMethod::ClientSecretBasic => {
                // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
                let user = form_encode(&self.client_id);
                let password = form_encode(self.client_secret.secret());
                request.basic_auth(user, Some(password)).form(params)
            }
        }
    }
}

fn form_encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> OAuth2Client {
        let endpoints = Endpoints {
            authorize: parse_url("https://idp.example/authorize?prompt=consent").expect("url"),
            token: parse_url("https://idp.example/token").expect("url"),
            revoke: None,
        };
        OAuth2Client::new("my-client", "s3cret", endpoints)
            .expect("client")
            .with_default_scopes(["openid", "email"])
    }

    fn query(url: &Url) -> Vec<(String, String)> {
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[test]
    fn authorization_url_has_every_parameter() {
        let request = AuthorizationRequest {
            redirect_uri: "http://127.0.0.1:8000/cb".into(),
            state: "state-1".into(),
            scopes: None,
            code_challenge: Some("challenge-1".into()),
            nonce: Some("nonce-1".into()),
        };
        let url = client().authorization_url(&request, true);
        assert_eq!(url.host_str(), Some("idp.example"));
        assert_eq!(param(&url, "prompt").as_deref(), Some("consent"));
        assert_eq!(param(&url, "response_type").as_deref(), Some("code"));
        assert_eq!(param(&url, "client_id").as_deref(), Some("my-client"));
        assert_eq!(
            param(&url, "redirect_uri").as_deref(),
            Some("http://127.0.0.1:8000/cb")
        );
        assert_eq!(param(&url, "state").as_deref(), Some("state-1"));
        assert_eq!(param(&url, "scope").as_deref(), Some("openid email"));
        assert_eq!(
            param(&url, "code_challenge").as_deref(),
            Some("challenge-1")
        );
        assert_eq!(
            param(&url, "code_challenge_method").as_deref(),
            Some("S256")
        );
        assert_eq!(param(&url, "nonce").as_deref(), Some("nonce-1"));
        assert!(url.as_str().contains("scope=openid+email"));
    }

    #[test]
    fn requested_scopes_replace_defaults_and_nonce_is_optional() {
        let request = AuthorizationRequest::new("http://app/cb", "s")
            .with_scopes(["a", "b c"])
            .with_nonce("n");
        let url = client().authorization_url(&request, false);
        assert_eq!(param(&url, "scope").as_deref(), Some("a b c"));
        assert_eq!(param(&url, "nonce"), None);
        assert_eq!(param(&url, "code_challenge"), None);
        assert!(
            !query(&url)
                .iter()
                .any(|(k, _)| k == "code_challenge_method")
        );
    }

    #[test]
    fn extra_params_are_appended() {
        let url = client()
            .with_authorize_param("response_mode", "query")
            .authorization_url(&AuthorizationRequest::new("http://app/cb", "s"), false);
        assert_eq!(param(&url, "response_mode").as_deref(), Some("query"));
    }

    #[test]
    fn debug_hides_the_client_secret() {
        let rendered = format!("{:?}", client());
        assert!(!rendered.contains("s3cret"), "{rendered}");
        assert!(rendered.contains("[redacted]"));
    }

    #[test]
    fn rebase_keeps_path_and_query() {
        let url = parse_url("https://github.com/login/oauth/authorize?x=1").expect("url");
        let base = parse_url("http://127.0.0.1:9000/prefix/").expect("url");
        assert_eq!(
            rebase(&url, &base).as_str(),
            "http://127.0.0.1:9000/prefix/login/oauth/authorize?x=1"
        );
    }

    #[tokio::test]
    async fn refresh_and_revoke_report_not_supported() {
        let client = client().with_refresh(false);
        assert!(matches!(
            client.refresh(&RefreshToken::new("rt")).await,
            Err(OAuthError::NotSupported("refresh"))
        ));
        assert!(matches!(
            client.revoke("t").await,
            Err(OAuthError::NotSupported("revoke"))
        ));
    }
}
