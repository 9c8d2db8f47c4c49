//! The whole axum-users HTTP API on the SeaORM store over SQLite, with a custom `display_name`
//! field on the user entity.
//!
//! ```sh
//! APP_SECRET=$(openssl rand -hex 32) cargo run -p axum-users-sea-orm --example display_name
//! curl -X POST localhost:3000/auth/register -H 'content-type: application/json' \
//!      -d '{"email":"ada@example.com","password":"correct horse","display_name":"Ada"}'
//! ```
//!
//! Sign-ins return a refresh token (`POST /auth/jwt/refresh`), `GET /users/me/sessions` lists
//! the signed-in devices, `POST /users/me/mfa/totp` enrols a second factor,
//! `GET /users/me/security-events` shows the audit log, a superuser lists users with
//! `GET /users`, and `POST /auth/forgot-password` queues the reset mail in the database, which
//! a worker prints (token redacted).
//!
//! `APP_DATABASE_URL` (default `sqlite://display_name.db?mode=rwc`) and `APP_ADDR` (default
//! `127.0.0.1:3000`) change where it keeps data and listens.

// The application module is `pub` throughout, as it would be in a library of its own.
#![allow(unreachable_pub)]

mod app;

use axum::Router;
use axum::routing::get;
use axum_users::{ActiveUser, Argon2Params};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("APP_DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://display_name.db?mode=rwc".into());
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let secret = std::env::var("APP_SECRET")
        .map_err(|_| anyhow::anyhow!("set APP_SECRET to a random string of 32 bytes or more"))?;
    let app::App { users, outbox } = app::users(&url, &secret, Argon2Params::default()).await?;
    // One worker per process sends what the outbox holds (with `SmtpMailer` in production).
    let worker = outbox.worker(app::PrintMail, axum_users_mail::RetryPolicy::default());
    tokio::spawn(worker.run(std::future::pending()));
    let hello = get(
        |ActiveUser(user): ActiveUser<uuid::Uuid, app::Profile>| async move {
            let name = user.fields.display_name.unwrap_or(user.email);
            format!("Hello {name}")
        },
    );
    let router = Router::new()
        .route("/hello", hello)
        .with_state(users.clone())
        .merge(users.router());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, router).await?;
    Ok(())
}
