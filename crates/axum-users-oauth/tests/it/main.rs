//! Integration tests: a loopback fake GitHub and a real OpenID provider (oidc-provider 9).

#[path = "../support/oidc_provider.rs"]
mod oidc_provider;

mod github;
mod gitlab;
mod hostile;
mod oidc;
