//! The rules the security review asked for, through HTTP: proof of the current password,
//! cookie requests from other sites, uncached tokens, expiring JWTs, privileged fields.

use axum_users::{AxumUsers, BuildError, ErrorCode, MemoryStore, UserFields};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::library::{FAST, SECRET, call, login, serve};

async fn register(base: &str, email: &str, password: &str) {
    let (status, body) = call(
        Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": email, "password": password})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

fn detail(code: ErrorCode) -> Value {
    json!({"detail": code.as_str()})
}

#[tokio::test]
async fn a_self_change_of_email_or_password_needs_the_current_password() {
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    register(&base, "cp@example.com", "old-phrase-77").await;
    let token = login(&base, "cp@example.com", "old-phrase-77").await;
    let me = format!("{base}/users/me");
    for change in [
        json!({"password": "new-phrase-77"}),
        json!({"email": "cp2@example.com"}),
    ] {
        let (status, body) = call(
            Method::PATCH,
            me.clone(),
            Some(&token),
            Some(change.clone()),
        )
        .await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                detail(ErrorCode::UpdateUserCurrentPasswordRequired)
            )
        );
        let mut wrong = change.clone();
        wrong["current_password"] = json!("guess");
        let (status, body) = call(Method::PATCH, me.clone(), Some(&token), Some(wrong)).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                detail(ErrorCode::UpdateUserBadCurrentPassword)
            )
        );
    }
    // Nothing changed: the old password still logs in at the old address.
    login(&base, "cp@example.com", "old-phrase-77").await;
    // Other fields need no proof; the same address is no change.
    let (status, _) = call(
        Method::PATCH,
        me.clone(),
        Some(&token),
        Some(json!({"email": "cp@example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        Method::PATCH,
        me.clone(),
        Some(&token),
        Some(json!({"password": "new-phrase-77", "current_password": "old-phrase-77"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("current_password").is_none());
    login(&base, "cp@example.com", "new-phrase-77").await;
}

#[tokio::test]
async fn strict_compat_restores_the_reference_patch() {
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .strict_compat(true)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    register(&base, "sc@example.com", "old-phrase-77").await;
    let token = login(&base, "sc@example.com", "old-phrase-77").await;
    let (status, _) = call(
        Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"password": "new-phrase-77"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    login(&base, "sc@example.com", "new-phrase-77").await;
}

async fn cookie_login(base: &str, email: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/cookie/login"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn patch_with_cookie(base: &str, cookie: &str, origin: Option<&str>) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new()
        .patch(format!("{base}/users/me"))
        .header("cookie", cookie)
        .json(&json!({}));
    if let Some(origin) = origin {
        r = r.header("origin", origin);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

/// The API in memory, trusting the front end at `https://app.example.com`.
async fn serve_trusting_app() -> String {
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .trusted_origins(["https://app.example.com"])
        .build()
        .unwrap();
    serve(users.router()).await
}

#[tokio::test]
async fn cookie_requests_that_change_state_from_another_site_are_refused() {
    let base = serve_trusting_app().await;
    register(&base, "csrf@example.com", "cross-site-phrase1").await;
    let cookie = cookie_login(&base, "csrf@example.com", "cross-site-phrase1").await;
    let (status, body) = patch_with_cookie(&base, &cookie, Some("https://evil.example")).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, detail(ErrorCode::CsrfOriginMismatch))
    );
    let (status, _) = patch_with_cookie(&base, &cookie, Some(&base)).await;
    assert_eq!(status, StatusCode::OK, "the API's own origin");
    let (status, _) = patch_with_cookie(&base, &cookie, Some("https://app.example.com")).await;
    assert_eq!(status, StatusCode::OK, "a trusted origin");
    let (status, _) = patch_with_cookie(&base, &cookie, None).await;
    assert_eq!(status, StatusCode::OK, "no browser, no cross-site request");
    // A bearer token is not sent by browsers on their own: no origin check.
    let token = login(&base, "csrf@example.com", "cross-site-phrase1").await;
    let r = reqwest::Client::new()
        .patch(format!("{base}/users/me"))
        .bearer_auth(token)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let compat = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .strict_compat(true)
        .build()
        .unwrap();
    let base = serve(compat.router()).await;
    register(&base, "csrf@example.com", "cross-site-phrase1").await;
    let cookie = cookie_login(&base, "csrf@example.com", "cross-site-phrase1").await;
    let (status, _) = patch_with_cookie(&base, &cookie, Some("https://evil.example")).await;
    assert_eq!(status, StatusCode::OK, "strict_compat: as the reference");
}

/// A cookie login posted with the given headers: its status, and whether it set a cookie.
async fn cookie_login_from(base: &str, headers: &[(&str, &str)]) -> (StatusCode, bool) {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/auth/cookie/login"))
        .form(&[
            ("username", "lcsrf@example.com"),
            ("password", "login-csrf-phrase1"),
        ]);
    for (name, value) in headers {
        r = r.header(*name, *value);
    }
    let r = r.send().await.unwrap();
    (r.status(), r.headers().contains_key("set-cookie"))
}

#[tokio::test]
async fn a_cookie_login_from_another_site_is_refused_and_sets_no_cookie() {
    let base = serve_trusting_app().await;
    register(&base, "lcsrf@example.com", "login-csrf-phrase1").await;
    // Login CSRF: an attacker's page signs the victim's browser into the attacker's account.
    for headers in [
        &[("origin", "https://evil.example")][..],
        &[("sec-fetch-site", "cross-site")],
        &[("origin", "null")],
        &[("origin", "null"), ("sec-fetch-site", "cross-site")],
    ] {
        assert_eq!(
            cookie_login_from(&base, headers).await,
            (StatusCode::FORBIDDEN, false),
            "{headers:?}"
        );
    }
    for headers in [
        &[("origin", base.as_str())][..],
        &[("origin", "https://app.example.com")],
        &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        &[],
    ] {
        assert_eq!(
            cookie_login_from(&base, headers).await,
            (StatusCode::NO_CONTENT, true),
            "{headers:?}"
        );
    }
    // The second step and the refresh of the cookie backend meet the same check.
    for path in [
        "mfa",
        "refresh",
        "logout",
        "passkey/start",
        "passkey/finish",
        "mfa/passkey/start",
        "mfa/passkey/finish",
    ] {
        let r = reqwest::Client::new()
            .post(format!("{base}/auth/cookie/{path}"))
            .header("origin", "https://evil.example")
            .json(&json!({"mfa_token": "x", "code": "123456"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            detail(ErrorCode::CsrfOriginMismatch)
        );
    }
    // The Bearer backend is not a browser's ambient credential: no check.
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("username", "lcsrf@example.com"),
            ("password", "login-csrf-phrase1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let cookie = cookie_login(&base, "lcsrf@example.com", "login-csrf-phrase1").await;
    let (status, body) = patch_with_cookie(&base, &cookie, Some("null")).await;
    assert_eq!(
        (status, body),
        (StatusCode::FORBIDDEN, detail(ErrorCode::CsrfOriginMismatch)),
        "an opaque origin without Fetch Metadata"
    );
}

#[tokio::test]
async fn bearer_tokens_are_not_cached_and_jwts_without_exp_are_refused() {
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    register(&base, "exp@example.com", "cross-site-phrase1").await;
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[
            ("username", "exp@example.com"),
            ("password", "cross-site-phrase1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, me) = call(Method::GET, format!("{base}/users/me"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let codec = axum_users::JwtCodec::hs256(&SECRET.into()).unwrap();
    let forever = codec
        .encode(&json!({"sub": me["id"], "aud": ["fastapi-users:auth"]}))
        .unwrap();
    let (status, _) = call(
        Method::GET,
        format!("{base}/users/me"),
        Some(&forever),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a JWT without exp lives forever: refused"
    );
}

/// Fields with one the user may not set on themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Account {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    plan: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AccountUpdate {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    plan: Option<String>,
}

impl UserFields for Account {
    type Update = AccountUpdate;

    fn apply(&mut self, update: AccountUpdate) {
        if let Some(name) = update.display_name {
            self.display_name = Some(name);
        }
        if let Some(plan) = update.plan {
            self.plan = Some(plan);
        }
    }

    fn drop_privileged(update: &mut AccountUpdate) {
        update.plan = None;
    }

    fn reset_privileged(&mut self) {
        self.plan = None;
    }
}

#[tokio::test]
async fn privileged_fields_are_the_superusers_alone() {
    let store: MemoryStore<uuid::Uuid, Account> = MemoryStore::new();
    let users = AxumUsers::builder(store.clone(), SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    let (status, body) = call(
        Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "plan@example.com", "password": "cross-site-phrase1", "display_name": "P", "plan": "gold"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (body["display_name"].clone(), body["plan"].clone()),
        (json!("P"), Value::Null)
    );
    let token = login(&base, "plan@example.com", "cross-site-phrase1").await;
    let (_, body) = call(
        Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"display_name": "Q", "plan": "gold"})),
    )
    .await;
    assert_eq!(
        (body["display_name"].clone(), body["plan"].clone()),
        (json!("Q"), Value::Null)
    );
    let mut create = axum_users::UserCreate::new("root@example.com", "superuser-phrase-1");
    create.is_superuser = Some(true);
    users
        .manager()
        .create(create, axum_users::Privilege::Superuser, None)
        .await
        .unwrap();
    let root = login(&base, "root@example.com", "superuser-phrase-1").await;
    let (_, body) = call(
        Method::PATCH,
        format!("{base}/users/{}", body["id"].as_str().unwrap()),
        Some(&root),
        Some(json!({"plan": "gold"})),
    )
    .await;
    assert_eq!(body["plan"], "gold");
}

#[cfg(feature = "oauth")]
#[test]
fn an_oauth_provider_needs_a_public_url() {
    let provider = axum_users::oauth::GitHub::new("id", "secret").unwrap();
    let client = axum_users::OAuthClient::new(std::sync::Arc::new(provider));
    let built = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .oauth(client.clone())
        .build();
    assert!(matches!(built, Err(BuildError::PublicUrlRequired)));
    let built = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .oauth(client.clone())
        .public_url("api.example.com")
        .build();
    assert!(matches!(built, Err(BuildError::InvalidPublicUrl(_))));
    let built = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .oauth(client)
        .public_url("https://api.example.com")
        .build();
    assert!(built.is_ok());
}
