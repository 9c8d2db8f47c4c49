//! Built-in providers (endpoints, scopes and identity calls of httpx-oauth's clients).

mod discord;
mod facebook;
mod github;
mod gitlab;
mod google;
mod linkedin;
mod microsoft;

pub use discord::Discord;
pub use facebook::Facebook;
pub use github::GitHub;
pub use gitlab::GitLab;
pub use google::Google;
pub use linkedin::LinkedIn;
pub use microsoft::Microsoft;

use serde_json::Value;

use crate::error::OAuthError;

/// Builders and the [`crate::OAuthProvider`] impl shared by every built-in provider.
///
/// The provider struct must have the fields `client: OAuth2Client`, `api: Url`, `name: String`,
/// an inherent `async fn fetch_identity(&self, &OAuthToken) -> Result<ProviderIdentity, OAuthError>`
/// (the e-mail and verified flag as the provider reports them) and an inherent
/// `fn email_trust(&self) -> bool` (whether that flag may be believed; see docs/oauth.md).
macro_rules! oauth2_provider {
    ($provider:ident) => {
        impl $provider {
            /// Uses another provider name (routes and stored OAuth accounts use it).
            pub fn with_name(mut self, name: impl Into<String>) -> Self {
                self.name = name.into();
                self
            }

            /// Rebuilds the HTTP client with other timeouts or User-Agent.
            ///
            /// # Errors
            /// [`OAuthError::InvalidConfig`] if the HTTP client cannot be built.
            pub fn with_http(
                mut self,
                config: &$crate::HttpConfig,
            ) -> Result<Self, $crate::OAuthError> {
                self.client = self.client.with_http(config)?;
                Ok(self)
            }

            /// Replaces the authorize, token and revocation endpoints.
            pub fn with_endpoints(mut self, endpoints: $crate::Endpoints) -> Self {
                self.client = self.client.with_endpoints(endpoints);
                self
            }

            /// Replaces the base URL of the profile API.
            pub fn with_api_base(mut self, api: url::Url) -> Self {
                self.api = api;
                self
            }

            /// Moves every endpoint (OAuth and API) to `base`, keeping the paths: for a fake
            /// provider on loopback in tests, or a proxy.
            pub fn with_base_url(mut self, base: &url::Url) -> Self {
                let endpoints = self.client.endpoints();
                let moved = $crate::Endpoints {
                    authorize: $crate::client::rebase(&endpoints.authorize, base),
                    token: $crate::client::rebase(&endpoints.token, base),
                    revoke: endpoints
                        .revoke
                        .as_ref()
                        .map(|url| $crate::client::rebase(url, base)),
                };
                self.api = $crate::client::rebase(&self.api, base);
                self.client = self.client.with_endpoints(moved);
                self
            }

            /// Overrides the default scopes.
            pub fn with_default_scopes<S: Into<String>>(
                mut self,
                scopes: impl IntoIterator<Item = S>,
            ) -> Self {
                self.client = self.client.with_default_scopes(scopes);
                self
            }

            /// Adds a fixed parameter to every authorization URL (e.g. Google's `access_type=offline`).
            pub fn with_authorize_param(
                mut self,
                name: impl Into<String>,
                value: impl Into<String>,
            ) -> Self {
                self.client = self.client.with_authorize_param(name, value);
                self
            }

            /// The underlying OAuth2 client.
            pub fn oauth2(&self) -> &$crate::OAuth2Client {
                &self.client
            }

            /// The base URL of the profile API.
            pub fn api_base(&self) -> &url::Url {
                &self.api
            }
        }

        impl $crate::OAuthProvider for $provider {
            fn name(&self) -> &str {
                &self.name
            }

            fn authorization_url(
                &self,
                request: &$crate::AuthorizationRequest,
            ) -> Result<url::Url, $crate::OAuthError> {
                Ok(self.client.authorization_url(request, false))
            }

            fn exchange_code<'a>(
                &'a self,
                code: &'a str,
                redirect_uri: &'a str,
                pkce_verifier: Option<&'a $crate::PkceVerifier>,
            ) -> $crate::BoxFuture<'a, Result<$crate::OAuthToken, $crate::OAuthError>> {
                Box::pin(self.client.exchange_code(code, redirect_uri, pkce_verifier))
            }

            fn identity<'a>(
                &'a self,
                token: &'a $crate::OAuthToken,
                _expected_nonce: Option<&'a str>,
            ) -> $crate::BoxFuture<'a, Result<$crate::ProviderIdentity, $crate::OAuthError>> {
                Box::pin(async move {
                    let identity = self.fetch_identity(token).await?;
                    Ok(identity.trusted_if(self.email_trust()))
                })
            }

            fn trusts_email_verified(&self) -> bool {
                self.email_trust()
            }

            fn refresh<'a>(
                &'a self,
                refresh_token: &'a $crate::RefreshToken,
            ) -> $crate::BoxFuture<'a, Result<$crate::OAuthToken, $crate::OAuthError>> {
                Box::pin(self.client.refresh(refresh_token))
            }

            fn revoke<'a>(
                &'a self,
                token: &'a str,
            ) -> $crate::BoxFuture<'a, Result<(), $crate::OAuthError>> {
                Box::pin(self.client.revoke(token))
            }
        }
    };
}
pub(crate) use oauth2_provider;

/// An account id from a JSON value: strings as they are, numbers in decimal.
fn account_id(value: Option<&Value>) -> Result<String, OAuthError> {
    let id = match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        _ => String::new(),
    };
    if id.is_empty() {
        return Err(OAuthError::MissingAccountId);
    }
    Ok(id)
}

/// A non-empty string field.
fn string_field(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// Appends a path to an API base URL (`https://api.github.com` + `/user`).
fn api_url(base: &url::Url, path_and_query: &str) -> Result<url::Url, OAuthError> {
    let joined = format!("{}{}", base.as_str().trim_end_matches('/'), path_and_query);
    crate::client::parse_url(&joined)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AuthorizationRequest, OAuthProvider};

    #[test]
    fn account_ids_from_numbers_and_strings() {
        assert_eq!(account_id(Some(&json!(42))).expect("id"), "42");
        assert_eq!(
            account_id(Some(&json!("people/7"))).expect("id"),
            "people/7"
        );
        assert!(matches!(
            account_id(Some(&json!(""))),
            Err(OAuthError::MissingAccountId)
        ));
        assert!(matches!(
            account_id(None),
            Err(OAuthError::MissingAccountId)
        ));
        assert!(matches!(
            account_id(Some(&Value::Null)),
            Err(OAuthError::MissingAccountId)
        ));
    }

    #[test]
    fn api_url_joins_without_double_slash() {
        let base = url::Url::parse("https://api.github.com/").expect("url");
        assert_eq!(
            api_url(&base, "/user/emails").expect("url").as_str(),
            "https://api.github.com/user/emails"
        );
    }

    fn scope_of(provider: &dyn OAuthProvider) -> (String, url::Url) {
        let url = provider
            .authorization_url(&AuthorizationRequest::new("http://app/cb", "st"))
            .expect("url");
        let scope = url
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        (scope, url)
    }

    #[test]
    fn default_names_scopes_and_hosts() {
        let providers: Vec<(Box<dyn OAuthProvider>, &str, &str, &str)> = vec![
            (
                Box::new(Google::new("id", "secret").expect("google")),
                "google",
                "https://www.googleapis.com/auth/userinfo.profile https://www.googleapis.com/auth/userinfo.email",
                "accounts.google.com",
            ),
            (
                Box::new(GitHub::new("id", "secret").expect("github")),
                "github",
                "user user:email",
                "github.com",
            ),
            (
                Box::new(Microsoft::new("id", "secret").expect("microsoft")),
                "microsoft",
                "User.Read",
                "login.microsoftonline.com",
            ),
            (
                Box::new(Discord::new("id", "secret").expect("discord")),
                "discord",
                "identify email",
                "discord.com",
            ),
            (
                Box::new(Facebook::new("id", "secret").expect("facebook")),
                "facebook",
                "email public_profile",
                "www.facebook.com",
            ),
            (
                Box::new(LinkedIn::new("id", "secret").expect("linkedin")),
                "linkedin",
                "r_emailaddress r_liteprofile r_basicprofile",
                "www.linkedin.com",
            ),
            (
                Box::new(GitLab::new("id", "secret").expect("gitlab")),
                "gitlab",
                "read_user",
                "gitlab.com",
            ),
        ];
        for (provider, name, scope, host) in providers {
            assert_eq!(provider.name(), name);
            let (actual_scope, url) = scope_of(provider.as_ref());
            assert_eq!(actual_scope, scope, "{name}");
            assert_eq!(url.host_str(), Some(host), "{name}");
            assert_eq!(url.scheme(), "https", "{name}");
        }
    }

    #[test]
    fn microsoft_adds_response_mode_and_tenant() {
        let provider = Microsoft::new("id", "secret").expect("microsoft");
        let (_, url) = scope_of(&provider);
        assert_eq!(url.path(), "/common/oauth2/v2.0/authorize");
        assert!(
            url.query_pairs()
                .any(|(k, v)| k == "response_mode" && v == "query")
        );
        let provider = Microsoft::new("id", "secret")
            .expect("microsoft")
            .with_tenant("contoso.onmicrosoft.com")
            .expect("tenant");
        let (_, url) = scope_of(&provider);
        assert_eq!(url.path(), "/contoso.onmicrosoft.com/oauth2/v2.0/authorize");
        assert_eq!(
            provider.oauth2().endpoints().token.path(),
            "/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
    }

    #[test]
    fn gitlab_base_url_moves_every_endpoint() {
        let base = url::Url::parse("https://git.example.org/").expect("url");
        let provider = GitLab::new("id", "secret")
            .expect("gitlab")
            .with_base_url(&base);
        let endpoints = provider.oauth2().endpoints();
        assert_eq!(
            endpoints.authorize.as_str(),
            "https://git.example.org/oauth/authorize"
        );
        assert_eq!(
            endpoints.token.as_str(),
            "https://git.example.org/oauth/token"
        );
        assert_eq!(
            endpoints.revoke.as_ref().map(url::Url::as_str),
            Some("https://git.example.org/oauth/revoke")
        );
        assert_eq!(
            provider.api_base().as_str(),
            "https://git.example.org/api/v4"
        );
    }

    #[test]
    fn token_auth_methods_follow_the_reference() {
        use crate::ClientAuthMethod::{ClientSecretBasic, ClientSecretPost};
        assert_eq!(
            Discord::new("i", "s")
                .expect("discord")
                .oauth2()
                .auth_method(),
            ClientSecretBasic
        );
        assert_eq!(
            GitHub::new("i", "s")
                .expect("github")
                .oauth2()
                .auth_method(),
            ClientSecretPost
        );
        assert_eq!(
            Google::new("i", "s")
                .expect("google")
                .oauth2()
                .auth_method(),
            ClientSecretPost
        );
    }

    #[test]
    fn email_trust_per_provider() {
        let gitlab = || GitLab::new("i", "s").expect("gitlab");
        let trust: Vec<(Box<dyn OAuthProvider>, bool)> = vec![
            (Box::new(Google::new("i", "s").expect("google")), true),
            (Box::new(GitHub::new("i", "s").expect("github")), true),
            (
                Box::new(Microsoft::new("i", "s").expect("microsoft")),
                false,
            ),
            (Box::new(Discord::new("i", "s").expect("discord")), true),
            (Box::new(Facebook::new("i", "s").expect("facebook")), false),
            (Box::new(LinkedIn::new("i", "s").expect("linkedin")), true),
            (Box::new(gitlab()), true),
            (
                Box::new(
                    gitlab()
                        .with_base_url(&url::Url::parse("https://git.example.org/").expect("url")),
                ),
                false,
            ),
            (Box::new(gitlab().trust_email_verified(false)), false),
        ];
        for (provider, trusted) in trust {
            assert_eq!(
                provider.trusts_email_verified(),
                trusted,
                "{}",
                provider.name()
            );
        }
    }

    #[test]
    fn untrusted_identities_are_never_verified() {
        let reported = crate::ProviderIdentity {
            account_id: "1".into(),
            email: Some("a@example.com".into()),
            email_verified: true,
            profile: crate::ProviderProfile::default(),
        };
        assert!(reported.clone().trusted_if(true).email_verified);
        assert!(!reported.clone().trusted_if(false).email_verified);
        let unverified = crate::ProviderIdentity {
            email_verified: false,
            ..reported
        };
        assert!(!unverified.trusted_if(true).email_verified);
    }

    #[test]
    fn providers_never_show_the_secret() {
        let rendered = format!(
            "{:?}{:?}{:?}",
            GitHub::new("id", "top-secret-value").expect("github"),
            Discord::new("id", "top-secret-value").expect("discord"),
            GitLab::new("id", "top-secret-value").expect("gitlab"),
        );
        assert!(!rendered.contains("top-secret-value"));
    }
}
