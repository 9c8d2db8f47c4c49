//! The provider trait a router holds as `Arc<dyn OAuthProvider>`, with its request and result types.

use std::future::Future;
use std::pin::Pin;

use crate::error::OAuthError;
use crate::pkce::PkcePair;
use crate::secret::{PkceVerifier, RefreshToken};
use crate::token::OAuthToken;

/// A boxed, sendable future: what the dyn-compatible trait methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Everything needed to build the provider's authorization URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// Where the provider sends the browser back; must be registered with the provider.
    pub redirect_uri: String,
    /// Opaque anti-CSRF value echoed back by the provider.
    pub state: String,
    /// Scopes to request; `None` means the provider's default scopes.
    pub scopes: Option<Vec<String>>,
    /// The PKCE S256 `code_challenge`; `None` sends no PKCE parameters.
    pub code_challenge: Option<String>,
    /// The OpenID Connect `nonce` (sent only by OpenID providers).
    pub nonce: Option<String>,
}

impl AuthorizationRequest {
    /// A request with the provider's default scopes and no PKCE or nonce yet.
    pub fn new(redirect_uri: impl Into<String>, state: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            state: state.into(),
            ..Self::default()
        }
    }

    /// Requests these scopes instead of the provider's defaults.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = Some(scopes.into_iter().map(Into::into).collect());
        self
    }

    /// Adds the S256 challenge of a PKCE pair.
    pub fn with_pkce(mut self, pkce: &PkcePair) -> Self {
        self.code_challenge = Some(pkce.challenge.clone());
        self
    }

    /// Adds an OpenID Connect nonce.
    pub fn with_nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = Some(nonce.into());
        self
    }
}

/// Who the user is at the provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderIdentity {
    /// The provider's stable id for the account (OpenID Connect: `sub`).
    pub account_id: String,
    /// The e-mail address the provider reports, if any.
    pub email: Option<String>,
    /// True only when the provider says this e-mail address is verified.
    pub email_verified: bool,
    /// The rest of what the provider says about the person (name, avatar, raw claims).
    pub profile: ProviderProfile,
}

/// What a provider says about the person besides the e-mail, for an application to fill its
/// own user fields (a display name, an avatar) on first sign-in and on link. Nothing here is
/// verified by the provider; treat it as user input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderProfile {
    /// The display name (GitHub/GitLab/Facebook/OpenID `name`, Google's first `displayName`,
    /// Microsoft's `displayName`, Discord's `global_name` else `username`).
    pub name: Option<String>,
    /// The avatar or picture URL, when the provider has one.
    pub avatar_url: Option<String>,
    /// The profile document as the provider sent it: GitHub's and GitLab's `/user`, Google's
    /// `people/me`, Microsoft's `/me`, Discord's `/users/@me`, Facebook's `/me`, LinkedIn's
    /// `/v2/me`; for OpenID Connect the id_token's claims with the userinfo answer over them.
    pub claims: serde_json::Value,
}

impl ProviderProfile {
    /// The longest name kept, in characters (longer ones are cut).
    pub const MAX_NAME_CHARS: usize = 256;
    /// The longest avatar URL kept, in bytes (longer ones are dropped: a cut URL is wrong).
    pub const MAX_AVATAR_URL_BYTES: usize = 2048;

    /// Reads the name and avatar at two JSON pointers (`/name`, `/avatar_url`) of `claims`,
    /// within [`Self::MAX_NAME_CHARS`] and [`Self::MAX_AVATAR_URL_BYTES`].
    pub fn from_claims(claims: serde_json::Value, name: &str, avatar_url: &str) -> Self {
        let text = |pointer: &str| {
            claims
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .filter(|text| !text.is_empty())
                .map(str::to_owned)
        };
        Self {
            name: text(name).map(|n| n.chars().take(Self::MAX_NAME_CHARS).collect()),
            avatar_url: text(avatar_url).filter(|u| u.len() <= Self::MAX_AVATAR_URL_BYTES),
            claims,
        }
    }
}

impl ProviderIdentity {
    /// The identity as the core must see it: `email_verified` only when the provider both
    /// reported it and is trusted to verify e-mail addresses.
    pub fn trusted_if(mut self, trusted: bool) -> Self {
        self.email_verified &= trusted;
        self
    }
}

/// One OAuth2 / OpenID Connect provider. Dyn-compatible: hold it as `Arc<dyn OAuthProvider>`.
pub trait OAuthProvider: Send + Sync {
    /// The name used in routes and stored with OAuth accounts (`google`, `github`, ...).
    fn name(&self) -> &str;

    /// The URL to send the browser to.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the configured endpoint is not a valid URL.
    fn authorization_url(&self, request: &AuthorizationRequest) -> Result<url::Url, OAuthError>;

    /// Exchanges an authorization code for tokens, sending the PKCE verifier when given.
    fn exchange_code<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        pkce_verifier: Option<&'a PkceVerifier>,
    ) -> BoxFuture<'a, Result<OAuthToken, OAuthError>>;

    /// The account id and e-mail of the token's owner. OpenID providers validate the id_token
    /// first and compare its `nonce` with `expected_nonce` when one is given.
    fn identity<'a>(
        &'a self,
        token: &'a OAuthToken,
        expected_nonce: Option<&'a str>,
    ) -> BoxFuture<'a, Result<ProviderIdentity, OAuthError>>;

    /// Whether this provider really verifies the e-mail addresses it calls verified, so that
    /// its `email_verified` may be used to link accounts or mark users verified. The built-in
    /// providers already report `email_verified = false` when this is false.
    ///
    /// The default is false: a provider that verifies addresses says so by overriding it (and
    /// should then report `email_verified` only for addresses it verified).
    fn trusts_email_verified(&self) -> bool {
        false
    }

    /// Gets a new access token. A response without a new refresh token keeps the old one.
    ///
    /// The default answers [`OAuthError::NotSupported`].
    fn refresh<'a>(
        &'a self,
        refresh_token: &'a RefreshToken,
    ) -> BoxFuture<'a, Result<OAuthToken, OAuthError>> {
        let _ = refresh_token;
        Box::pin(async { Err(OAuthError::NotSupported("refresh")) })
    }

    /// Revokes an access or refresh token.
    ///
    /// The default answers [`OAuthError::NotSupported`].
    fn revoke<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), OAuthError>> {
        let _ = token;
        Box::pin(async { Err(OAuthError::NotSupported("revoke")) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_are_cut_and_long_avatar_urls_dropped() {
        let claims = serde_json::json!({
            "name": "é".repeat(1000),
            "avatar_url": format!("https://example.com/{}", "a".repeat(5000)),
        });
        let profile = ProviderProfile::from_claims(claims, "/name", "/avatar_url");
        assert_eq!(
            profile.name.map(|n| n.chars().count()),
            Some(ProviderProfile::MAX_NAME_CHARS)
        );
        assert_eq!(profile.avatar_url, None);
    }

    #[test]
    fn builder_fills_every_field() {
        let pkce = PkcePair::generate();
        let request = AuthorizationRequest::new("http://app/cb", "st")
            .with_scopes(["a", "b"])
            .with_pkce(&pkce)
            .with_nonce("n");
        assert_eq!(request.redirect_uri, "http://app/cb");
        assert_eq!(request.state, "st");
        assert_eq!(request.scopes, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(request.code_challenge, Some(pkce.challenge));
        assert_eq!(request.nonce.as_deref(), Some("n"));
    }
}
