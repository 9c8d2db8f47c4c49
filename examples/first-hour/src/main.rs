//! The first hour with axum-users in one file: a SQLite store with `i64` ids and a
//! `display_name` field, mails printed to stdout, Bearer and cookie logins, a `/hello` route
//! for verified users, GitHub sign-in, the OpenAPI document and Swagger UI.
//!
//! ```sh
//! APP_SECRET=$(head -c 48 /dev/urandom | base64) PUBLIC_URL=http://localhost:3000 cargo run -p first-hour
//! curl -X POST localhost:3000/auth/register -H 'content-type: application/json' \
//!      -d '{"email":"ann@example.com","password":"a long password","display_name":"Ann"}'
//! # the printed line "verify ann@example.com: TOKEN" has the token:
//! curl -X POST localhost:3000/auth/verify -H 'content-type: application/json' -d '{"token":"TOKEN"}'
//! curl -X POST localhost:3000/auth/jwt/login -d 'username=ann@example.com&password=a long password'
//! curl localhost:3000/hello -H 'authorization: Bearer ACCESS_TOKEN'
//! ```
//!
//! Environment: `APP_SECRET` (32 bytes or more), `DATABASE_URL`
//! (default `sqlite://first-hour.db?mode=rwc`), `BIND` (default `127.0.0.1:3000`),
//! `PUBLIC_URL` (required: the URL browsers use; cookies are `Secure` unless it is
//! `http://localhost[:port]`), and for GitHub sign-in `GITHUB_CLIENT_ID`,
//! `GITHUB_CLIENT_SECRET`, and, for tests only, `GITHUB_BASE_URL` (a fake GitHub).
//!
//! Development only: the verification and reset tokens are printed to stdout, where anyone
//! who reads the logs can take over the accounts. A real application mails them.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use axum_users::oauth::{GitHub, Url};
use axum_users::{
    AxumUsers, CookieSettings, OAuthClient, OAuthPolicy, OAuthProfile, User, UserFields, UserHooks,
    VerifiedUser,
};
use axum_users_sqlx::SqlStore;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa_swagger_ui::SwaggerUi;

/// This application's own user field: set at registration, read with the user, changed by
/// `PATCH /users/me`, filled from the GitHub profile; the store keeps it in one JSON column.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Profile {
    #[serde(default)]
    display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = Profile;

    fn apply(&mut self, update: Profile) {
        if update.display_name.is_some() {
            self.display_name = update.display_name;
        }
    }
}

/// The store, with `i64` ids; the extractors are written with the same two types.
type Store = SqlStore<i64, Profile>;

/// The application's say in the users' lifecycle.
struct Hooks;

impl UserHooks<i64, Profile> for Hooks {
    /// A real application mails a link; this one prints the token.
    async fn on_after_request_verify(
        &self,
        user: &User<i64, Profile>,
        token: &str,
        _: Option<&Parts>,
    ) {
        println!("development only, a real application mails this token:");
        println!("verify {}: {token}", user.email);
    }

    async fn on_after_forgot_password(
        &self,
        user: &User<i64, Profile>,
        token: &str,
        _: Option<&Parts>,
    ) {
        println!("development only, a real application mails this token:");
        println!("reset {}: {token}", user.email);
    }

    /// The GitHub name becomes the display name, unless the user has one.
    // `..fields` keeps the fields an application adds later (none yet).
    #[allow(clippy::needless_update)]
    async fn on_oauth_profile(
        &self,
        profile: &OAuthProfile,
        user: Option<&User<i64, Profile>>,
    ) -> Option<Profile> {
        let fields = user.map(|user| user.fields.clone()).unwrap_or_default();
        if fields.display_name.is_some() {
            return None;
        }
        Some(Profile {
            display_name: profile.name.clone(),
            ..fields
        })
    }
}

/// For verified users only: 401 without a token, 403 before the e-mail is verified.
async fn hello(VerifiedUser(user): VerifiedUser<i64, Profile>) -> String {
    let name = user.fields.display_name.unwrap_or(user.email);
    format!("Hello {name}")
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secret = std::env::var("APP_SECRET")
        .map_err(|_| anyhow::anyhow!("set APP_SECRET to a random string of 32 bytes or more"))?;
    let public_url: Url = std::env::var("PUBLIC_URL")
        .map_err(|_| anyhow::anyhow!("set PUBLIC_URL, e.g. http://localhost:3000"))?
        .parse()?;
    let store: Store =
        SqlStore::connect(&env("DATABASE_URL", "sqlite://first-hour.db?mode=rwc")).await?;
    store.migrate().await?;

    // Browsers keep `Secure` cookies from plain HTTP only on localhost: turn it off there only.
    let local_http = public_url.scheme() == "http" && public_url.host_str() == Some("localhost");
    let mut builder = AxumUsers::builder(store, secret)
        .hooks(Hooks)
        .cookie(CookieSettings::auth().with_secure(!local_http))
        .send_verification_on_register(true)
        .public_url(public_url.as_str());
    if let Ok(client_id) = std::env::var("GITHUB_CLIENT_ID") {
        let mut github = GitHub::new(client_id, env("GITHUB_CLIENT_SECRET", ""))?;
        // For tests only: GitHub sign-in against a fake GitHub.
        if let Ok(base) = std::env::var("GITHUB_BASE_URL") {
            println!("GITHUB_BASE_URL is set: GitHub sign-in goes to {base} (for tests only)");
            github = github.with_base_url(&base.parse()?);
        }
        // GitHub verifies the addresses it reports as verified: trust them for new users.
        let policy = OAuthPolicy {
            is_verified_by_default: true,
            ..OAuthPolicy::default()
        };
        builder = builder.oauth(OAuthClient::new(Arc::new(github)).with_policy(policy));
    }
    let users = builder.build()?;

    let app: Router = Router::new()
        .route("/hello", get(hello))
        .with_state(users.clone()) // the extractors read the users from the state
        .merge(users.router()) // every route: register, login (jwt, cookie), users, GitHub
        .merge(SwaggerUi::new("/docs").url("/openapi.json", users.openapi_for_explorer()));
    let listener = tokio::net::TcpListener::bind(env("BIND", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
