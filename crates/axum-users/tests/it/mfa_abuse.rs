//! Second factors against abuse by a holder of a session (found by the attacker's review):
//! code and password guesses on the account routes meet the login throttle of the account, and
//! confirming a factor ends the sessions that never passed it.

use axum_users::{AxumUsers, LoginThrottle, MemoryStore, Privilege, UserCreate};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, TOTP};

use crate::library::{FAST, SECRET, call, login, serve};

const PASSWORD: &str = "a-long-enough-passphrase-42";

/// An app allowing 3 failed sign-ins per account, with one user signed in: (base, e-mail,
/// access token).
async fn signed_in() -> (String, String, String) {
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .login_throttle(LoginThrottle::new(3, std::time::Duration::from_secs(600)))
        .build()
        .unwrap();
    let email = "victim@example.com".to_owned();
    users
        .manager()
        .create(
            UserCreate::new(&email, PASSWORD),
            Privilege::Superuser,
            None,
        )
        .await
        .unwrap();
    let base = serve(users.router()).await;
    let token = login(&base, &email, PASSWORD).await;
    (base, email, token)
}

async fn send(base: &str, method: Method, path: &str, token: &str, body: Value) -> StatusCode {
    call(method, format!("{base}{path}"), Some(token), Some(body))
        .await
        .0
}

/// The code of `secret` for the step `offset` steps from now.
fn code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new());
    totp.generate(((axum_users::now_unix() / 30 + offset) * 30) as u64)
}

/// Enrols and confirms TOTP with the step of now; the secret.
async fn enrol(base: &str, token: &str) -> String {
    let (status, body) = call(
        Method::POST,
        format!("{base}/users/me/mfa/totp"),
        Some(token),
        Some(json!({"current_password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    let confirm = json!({"code": code(&secret, 0)});
    let status = send(
        base,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        token,
        confirm,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    secret
}

/// A code that is not the one of `secret` now, a step before or after.
fn wrong(secret: &str) -> String {
    let right: Vec<String> = (-1..=1).map(|o| code(secret, o)).collect();
    (0..4)
        .map(|n| format!("{:06}", n * 111_111))
        .find(|c| !right.contains(c))
        .unwrap()
}

/// guessing the code on `POST /users/me/mfa/recovery-codes` (a session, no
/// authenticator) must meet the account's throttle, as guesses at the sign-in do.
#[tokio::test]
async fn code_guesses_on_the_account_routes_meet_the_login_throttle() {
    let (base, _, token) = signed_in().await;
    let secret = enrol(&base, &token).await;
    for _ in 0..3 {
        let guess = json!({"code": wrong(&secret)});
        let status = send(
            &base,
            Method::POST,
            "/users/me/mfa/recovery-codes",
            &token,
            guess,
        );
        assert_eq!(status.await, StatusCode::BAD_REQUEST);
    }
    let hit = json!({"code": code(&secret, 1)});
    let status = send(
        &base,
        Method::POST,
        "/users/me/mfa/recovery-codes",
        &token,
        hit,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "after 3 wrong codes (throttle 3) a guessed code still yields new recovery codes"
    );
}

/// the current password of an enrolment is checked behind the account's throttle.
#[tokio::test]
async fn password_guesses_at_enrolment_meet_the_login_throttle() {
    let (base, _, token) = signed_in().await;
    for n in 0..3 {
        let guess = json!({"current_password": format!("guess {n}")});
        let status = send(&base, Method::POST, "/users/me/mfa/totp", &token, guess).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let hit = json!({"current_password": PASSWORD});
    let status = send(&base, Method::POST, "/users/me/mfa/totp", &token, hit).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "after 3 wrong passwords (throttle 3) the 4th guess is still checked"
    );
}

/// confirming a factor ends the sessions that never passed it (the confirming one stays).
#[tokio::test]
async fn confirming_a_factor_ends_the_other_sessions() {
    let (base, email, a) = signed_in().await;
    let b = login(&base, &email, PASSWORD).await;
    enrol(&base, &a).await;
    let me = |token: String| {
        let url = format!("{base}/users/me");
        async move { call(Method::GET, url, Some(&token), None).await.0 }
    };
    assert_eq!(me(a).await, StatusCode::OK);
    assert_eq!(
        me(b).await,
        StatusCode::UNAUTHORIZED,
        "a session from before the enrolment goes on without the second factor"
    );
}
