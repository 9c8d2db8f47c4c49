//! End-to-end tests: the real server binary, driven over HTTP.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod auth;
mod backends;
mod faults;
mod flow;
mod nodes;
mod register;
mod server;
mod services;
mod support;
mod tokens;
mod users;
