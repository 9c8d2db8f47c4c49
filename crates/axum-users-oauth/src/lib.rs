//! # Overview
//!
//! OAuth2 / OpenID Connect sign-in clients, the Rust counterpart of Python's httpx-oauth:
//! Google, GitHub, Microsoft, Discord, Facebook, LinkedIn, GitLab and a generic OpenID Connect
//! provider built by discovery. Every provider implements [`OAuthProvider`], a dyn-compatible
//! trait a router holds as `Arc<dyn OAuthProvider>`.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum_users_oauth::{AuthorizationRequest, GitHub, OAuthProvider, PkcePair, generate_nonce};
//!
//! # async fn run() -> Result<(), axum_users_oauth::OAuthError> {
//! let github: Arc<dyn OAuthProvider> = Arc::new(GitHub::new("client-id", "client-secret")?);
//!
//! // 1. Send the browser to the provider (keep `pkce.verifier` and the state server-side).
//! let pkce = PkcePair::generate();
//! let request = AuthorizationRequest::new("https://app.example/auth/github/callback", "state-123")
//!     .with_pkce(&pkce)
//!     .with_nonce(generate_nonce());
//! let url = github.authorization_url(&request)?;
//! # let _ = url;
//!
//! // 2. In the callback: exchange the code, then ask who the user is.
//! let token = github
//!     .exchange_code("code-from-query", &request.redirect_uri, Some(&pkce.verifier))
//!     .await?;
//! let identity = github.identity(&token, request.nonce.as_deref()).await?;
//! println!("{} {:?} verified={}", identity.account_id, identity.email, identity.email_verified);
//! # Ok(()) }
//! ```
//!
//! # Security
//! Secrets ([`ClientSecret`], [`AccessToken`], [`RefreshToken`], [`IdToken`], [`PkceVerifier`])
//! print `[redacted]` in `Debug`. The HTTP clients never follow redirects and always time out.
//! Only trust [`ProviderIdentity::email`] for account linking when `email_verified` is true; it
//! is true only for providers that really verify addresses
//! ([`OAuthProvider::trusts_email_verified`]).

#![warn(missing_docs)]

mod client;
mod error;
mod http;
mod oidc;
mod pkce;
mod provider;
mod providers;
mod secret;
mod token;

pub use client::{ClientAuthMethod, Endpoints, OAuth2Client};
pub use error::{IdTokenErrorReason, OAuthError};
pub use http::HttpConfig;
pub use oidc::{OpenIdConnect, OpenIdConnectConfig};
pub use pkce::{PkcePair, generate_nonce, random_urlsafe, s256_challenge};
pub use provider::{
    AuthorizationRequest, BoxFuture, OAuthProvider, ProviderIdentity, ProviderProfile,
};
pub use providers::{Discord, Facebook, GitHub, GitLab, Google, LinkedIn, Microsoft};
pub use secret::{AccessToken, ClientSecret, IdToken, PkceVerifier, RefreshToken};
pub use token::OAuthToken;
/// The URL type of the endpoint overrides ([`GitHub::with_base_url`], ...): `"https://..".parse()`.
pub use url::Url;
