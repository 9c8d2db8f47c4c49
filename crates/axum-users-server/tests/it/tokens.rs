//! Reset and verification tokens: purpose binding, single use, invalidation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

async fn forgot(s: &Server, email: &str) {
    assert_eq!(
        post_json(
            &client(),
            s.url("/auth/forgot-password"),
            json!({"email": email})
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
}

async fn reset(s: &Server, token: &str, password: &str) -> (StatusCode, Value) {
    post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": token, "password": password}),
    )
    .await
}

async fn verify(s: &Server, token: &str) -> (StatusCode, Value) {
    post_json(&client(), s.url("/auth/verify"), json!({"token": token})).await
}

fn bad_reset() -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"detail": "RESET_PASSWORD_BAD_TOKEN"}),
    )
}

fn bad_verify() -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"detail": "VERIFY_USER_BAD_TOKEN"}),
    )
}

#[tokio::test]
async fn reset_tokens_are_single_use_and_die_with_any_password_change() {
    let s = Server::start();
    register(&s, "dave@example.com", "davepass").await;
    forgot(&s, "dave@example.com").await;
    let first = s.wait_token("dave@example.com", 1).await;
    forgot(&s, "dave@example.com").await;
    let second = s.wait_token("dave@example.com", 2).await;

    // A refused password does not consume the token; a bad token is reported before the password.
    let (status, body) = reset(&s, &first, "ab").await;
    assert_eq!(
        (status, body["detail"]["code"].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("RESET_PASSWORD_INVALID_PASSWORD")
        )
    );
    assert_eq!(reset(&s, "garbage", "ab").await, bad_reset());
    assert_eq!(
        reset(&s, &first, "newpass1").await,
        (StatusCode::OK, Value::Null)
    );
    assert_eq!(
        reset(&s, &second, "newpass2").await,
        bad_reset(),
        "the hash changed: every older token dies"
    );
    assert_eq!(reset(&s, &first, "newpass3").await, bad_reset());
    login(&s, "dave@example.com", "newpass1").await;

    // A password change through PATCH voids outstanding tokens too.
    forgot(&s, "dave@example.com").await;
    let third = s.wait_token("dave@example.com", 3).await;
    let auth = login(&s, "dave@example.com", "newpass1").await;
    assert_eq!(
        patch(
            &s,
            "/users/me",
            &auth,
            json!({"password": "patched1", "current_password": "newpass1"})
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(reset(&s, &third, "newpass4").await, bad_reset());
    login(&s, "dave@example.com", "patched1").await;

    // A token of another purpose is refused.
    assert_eq!(verify(&s, &second).await, bad_verify());
    assert_eq!(verify(&s, &auth).await, bad_verify());
    assert_eq!(reset(&s, &auth, "whatever").await, bad_reset());
    assert_eq!(verify(&s, "garbage").await, bad_verify());

    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": first}),
    )
    .await;
    assert_eq!(
        (status, body["detail"][0]["loc"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!(["body", "password"])
        )
    );
}

#[tokio::test]
async fn concurrent_use_of_one_reset_token_succeeds_at_most_once_on_every_database() {
    for db in databases().await {
        let s = start_env(&db.env());
        register(&s, "erin@example.com", "erinpass").await;
        forgot(&s, "erin@example.com").await;
        let token = s.wait_token("erin@example.com", 1).await;
        let attempts: Vec<_> = (0..10)
            .map(|i| {
                let (url, token) = (s.url("/auth/reset-password"), token.clone());
                tokio::spawn(async move {
                    post_json(
                        &client(),
                        url,
                        json!({"token": token, "password": format!("pass-{i}")}),
                    )
                    .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, a) in attempts.into_iter().enumerate() {
            let (status, body) = a.await.unwrap();
            match status {
                StatusCode::OK => winners.push(i),
                _ => assert_eq!((status, body), bad_reset(), "{}", db.name),
            }
        }
        assert_eq!(winners.len(), 1, "{}: one reset succeeds", db.name);
        let password = format!("pass-{}", winners[0]);
        login(&s, "erin@example.com", &password).await;
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn verify_tokens_die_with_an_e_mail_change_and_work_for_inactive_users() {
    // An immediate change (a confirmed one bumps the epoch the same way: email_change.rs).
    let s = Server::start_with(&[("AXUM_USERS_EMAIL_CHANGE", "immediate")]);
    let user = register(&s, "frank@example.com", "frankpass").await;
    let token = login(&s, "frank@example.com", "frankpass").await;
    post_json(
        &client(),
        s.url("/auth/request-verify-token"),
        json!({"email": "frank@example.com"}),
    )
    .await;
    let old = s.wait_token("frank@example.com", 1).await;
    patch(
        &s,
        "/users/me",
        &token,
        json!({"email": "frank2@example.com", "current_password": "frankpass"}),
    )
    .await;
    assert_eq!(verify(&s, &old).await, bad_verify());

    post_json(
        &client(),
        s.url("/auth/request-verify-token"),
        json!({"email": "frank2@example.com"}),
    )
    .await;
    let fresh = s.wait_token("frank2@example.com", 1).await;
    let root = superuser(&s, "root@example.com").await;
    patch(
        &s,
        &format!("/users/{}", user["id"].as_str().unwrap()),
        &root,
        json!({"is_active": false}),
    )
    .await;
    let (status, body) = verify(&s, &fresh).await;
    assert_eq!(
        (
            status,
            body["is_verified"].clone(),
            body["is_active"].clone()
        ),
        (StatusCode::OK, json!(true), json!(false))
    );
}

#[tokio::test]
async fn reset_is_refused_for_inactive_users() {
    let s = Server::start();
    let user = register(&s, "gina@example.com", "ginapass").await;
    forgot(&s, "gina@example.com").await;
    let token = s.wait_token("gina@example.com", 1).await;
    let root = superuser(&s, "root@example.com").await;
    patch(
        &s,
        &format!("/users/{}", user["id"].as_str().unwrap()),
        &root,
        json!({"is_active": false}),
    )
    .await;
    assert_eq!(reset(&s, &token, "newpass").await, bad_reset());
}

#[tokio::test]
async fn unknown_e_mails_get_the_same_answer_and_no_mail() {
    let s = Server::start();
    let c = client();
    for route in ["/auth/forgot-password", "/auth/request-verify-token"] {
        assert_eq!(
            post_json(&c, s.url(route), json!({"email": "ghost@example.com"})).await,
            (StatusCode::ACCEPTED, Value::Null)
        );
        let (status, body) = post_json(&c, s.url(route), json!({"email": "not-an-email"})).await;
        assert_eq!(
            (status, body["detail"][0]["type"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!("value_error"))
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.mails_to("ghost@example.com").is_empty());
}

#[tokio::test]
async fn legacy_bcrypt_hashes_log_in_and_are_upgraded_to_argon2id() {
    let s = Server::start();
    let user = register(&s, "hank@example.com", "hankpass").await;
    forgot(&s, "hank@example.com").await;
    let pending = s.wait_token("hank@example.com", 1).await;
    let legacy = bcrypt::hash("legacy-pass", 4).unwrap();
    sqlite(
        &s,
        &format!(
            "UPDATE users SET hashed_password = '{legacy}' WHERE id = '{}'",
            user["id"].as_str().unwrap()
        ),
    )
    .await;
    login(&s, "hank@example.com", "legacy-pass").await;
    let stored = sqlite(
        &s,
        "SELECT hashed_password FROM users WHERE email_key = 'hank@example.com'",
    )
    .await;
    assert!(
        stored.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{stored}"
    );
    login(&s, "hank@example.com", "legacy-pass").await;
    assert_eq!(
        reset(&s, &pending, "whatever").await,
        bad_reset(),
        "the rehash voids pending reset tokens"
    );
}

/// Runs one statement on the server's database file and returns the first column of the first row.
async fn sqlite(s: &Server, sql: &str) -> String {
    use sqlx::Row;
    let pool = sqlx::SqlitePool::connect(&s.db_url()).await.unwrap();
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_optional(&pool)
        .await
        .unwrap();
    pool.close().await;
    row.map(|r| r.try_get::<String, _>(0).unwrap_or_default())
        .unwrap_or_default()
}
