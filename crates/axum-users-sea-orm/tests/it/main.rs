//! The SeaORM store against the conformance suite (SQLite always; PostgreSQL and MariaDB when
//! their URL is set), an application's own entities, and the example application over HTTP.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod conformance;
mod custom_entity;
mod databases;
mod example_app;
mod upgrade;
