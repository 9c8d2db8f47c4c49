//! The sqlx stores against the conformance suite, and the library driven through its router.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod conformance;
mod custom_fields;
mod upgrade;
mod upgrade_mfa;
mod upgrade_ops;
mod upgrade_passkeys;
mod upgrade_rare_filters;
mod upgrade_sessions;
mod upgrade_webhooks;
