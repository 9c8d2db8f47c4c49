//! [`OAuthClient`]: one provider, wired to a backend and a linking policy.

use std::sync::Arc;

use axum_users_oauth::OAuthProvider;

use crate::oauth_manager::OAuthPolicy;

/// One provider's sign-in and linking routes.
#[derive(Clone)]
pub struct OAuthClient {
    /// The provider.
    pub provider: Arc<dyn OAuthProvider>,
    /// The backend that logs the user in after a sign-in (default `jwt`).
    pub backend: String,
    /// Linking by e-mail and verified-by-default.
    pub policy: OAuthPolicy,
    /// The sign-in callback URL registered at the provider; default
    /// `{public_url}/auth/{name}/callback`.
    pub redirect_url: Option<String>,
    /// The linking callback URL; default `{public_url}/auth/associate/{name}/callback`.
    pub associate_redirect_url: Option<String>,
    /// For single-page apps: after a sign-in, answer 303 to this URL instead of the backend's
    /// login response. A cookie backend's cookie rides on the redirect; for a Bearer backend
    /// the URL gets a one-time `code` (valid 60 s) that the front end exchanges with
    /// `POST /auth/{name}/token` for the normal login response: a token is never put in a URL.
    pub after_login_redirect: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider.name())
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// Sign-in with `provider`, logging in through the `jwt` backend, no linking by e-mail.
    pub fn new(provider: Arc<dyn OAuthProvider>) -> Self {
        Self {
            provider,
            backend: "jwt".into(),
            policy: OAuthPolicy::default(),
            redirect_url: None,
            associate_redirect_url: None,
            after_login_redirect: None,
        }
    }

    /// The backend to log in through.
    pub fn with_backend(mut self, backend: impl Into<String>) -> Self {
        self.backend = backend.into();
        self
    }

    /// Linking by verified e-mail and verified-by-default.
    pub fn with_policy(mut self, policy: OAuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Redirect single-page apps here after a sign-in.
    pub fn with_after_login_redirect(mut self, url: impl Into<String>) -> Self {
        self.after_login_redirect = Some(url.into());
        self
    }

    pub(crate) fn name(&self) -> &str {
        self.provider.name()
    }
}
