//! End-to-end tests: the real server binary, driven over HTTP.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod auth;
mod flow;
mod register;
mod server;
mod support;
mod tokens;
mod users;
