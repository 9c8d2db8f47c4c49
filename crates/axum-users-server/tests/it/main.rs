//! End-to-end tests: the real server binary, driven over HTTP.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod abuse;
mod admin;
mod auth;
mod backends;
mod email_change;
mod faults;
mod flow;
mod hashing;
mod import;
mod limits;
mod mail;
mod metrics;
mod mfa;
mod nodes;
mod oauth;
#[path = "../../../axum-users-oauth/tests/support/oidc_provider.rs"]
mod oidc_provider;
mod pages;
mod passkeys;
mod register;
mod server;
mod services;
mod sessions;
mod settings;
mod support;
mod tokens;
mod users;
mod webhooks;
