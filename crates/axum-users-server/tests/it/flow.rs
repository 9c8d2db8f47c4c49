//! The transcript's main flow: register → login → me → patch → forgot → reset from the e-mail →
//! login → request-verify → verify from the e-mail.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn main_flow_end_to_end() {
    let s = Server::start();
    let c = client();

    let user = register(&s, "alice@example.com", "alicepass1").await;
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(
        (
            user["is_active"].clone(),
            user["is_superuser"].clone(),
            user["is_verified"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
    let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["id", "email", "is_active", "is_superuser", "is_verified"]
    );

    let token = login(&s, "alice@example.com", "alicepass1").await;
    let (status, me) = get_me(&s, &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me, user);

    let (status, patched) = patch(
        &s,
        "/users/me",
        &token,
        json!({"is_superuser": true, "is_verified": true, "is_active": false}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patched, user, "safe mode ignores the flags");

    let (status, body) = post_json(
        &c,
        s.url("/auth/forgot-password"),
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, serde_json::Value::Null)
    );
    let reset = s.wait_token("alice@example.com", 1).await;
    let mail = &s.mails_to("alice@example.com")[0];
    assert!(
        mail.contains("https://app.example.com/reset-password?token="),
        "{mail}"
    );
    assert!(mail.contains("Subject: Reset your password"));

    let (status, body) = post_json(
        &c,
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "alicepass2"}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::Value::Null));

    let (status, body) = try_login(&s, "alice@example.com", "alicepass1").await;
    assert_eq!(
        (status, detail(&body).clone()),
        (StatusCode::BAD_REQUEST, json!("LOGIN_BAD_CREDENTIALS"))
    );
    let token = login(&s, "alice@example.com", "alicepass2").await;

    let (status, _) = post_json(
        &c,
        s.url("/auth/request-verify-token"),
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let verify = s.wait_token("alice@example.com", 2).await;
    let (status, verified) = post_json(&c, s.url("/auth/verify"), json!({"token": verify})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(verified["is_verified"], true);
    assert_eq!(get_me(&s, &token).await.1["is_verified"], true);

    // Again: already verified; and asking again sends nothing.
    let (status, body) = post_json(&c, s.url("/auth/verify"), json!({"token": verify})).await;
    assert_eq!(
        (status, detail(&body).clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("VERIFY_USER_ALREADY_VERIFIED")
        )
    );
    let (status, _) = post_json(
        &c,
        s.url("/auth/request-verify-token"),
        json!({"email": "alice@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(s.mails_to("alice@example.com").len(), 2);

    // The consumed reset token is dead.
    let (status, body) = post_json(
        &c,
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "another1"}),
    )
    .await;
    assert_eq!(
        (status, detail(&body).clone()),
        (StatusCode::BAD_REQUEST, json!("RESET_PASSWORD_BAD_TOKEN"))
    );
}
