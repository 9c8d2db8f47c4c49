//! The library driven over HTTP on a real port: OAuth against a real OpenID provider, hooks,
//! custom fields, integer ids.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod email_change;
mod library;
mod mfa;
mod mfa_abuse;
mod oauth;
#[path = "../../../axum-users-oauth/tests/support/oidc_provider.rs"]
mod oidc_provider;
#[cfg(feature = "openapi")]
mod openapi;
mod passkeys;
mod routes;
mod security;
mod sessions;
