//! The secure e-mail change through the library's routes: the hook gets the token, the route
//! applies it once; strict_compat keeps the immediate change.

use std::sync::{Arc, Mutex};

use axum_users::{AxumUsers, MemoryStore, NoFields, User, UserHooks};
use http::request::Parts;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::library::{FAST, SECRET, call, login, serve};

#[derive(Clone, Default)]
struct Mailbox(Arc<Mutex<Vec<(String, String, String)>>>);

impl UserHooks<uuid::Uuid, NoFields> for Mailbox {
    async fn on_after_request_email_change(
        &self,
        user: &User<uuid::Uuid, NoFields>,
        new_email: &str,
        token: &str,
        _request: Option<&Parts>,
    ) {
        let sent = (user.email.clone(), new_email.to_owned(), token.to_owned());
        self.0.lock().unwrap().push(sent);
    }
}

async fn started(strict: bool) -> (String, String, Mailbox) {
    let mailbox = Mailbox::default();
    let users = AxumUsers::builder(MemoryStore::<uuid::Uuid>::new(), SECRET)
        .argon2(FAST)
        .strict_compat(strict)
        .hooks(mailbox.clone())
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    let (status, _) = call(
        Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "lib@example.com", "password": "old-phrase-77"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = login(&base, "lib@example.com", "old-phrase-77").await;
    (base, token, mailbox)
}

#[tokio::test]
async fn the_hook_gets_the_token_and_the_route_applies_it_once() {
    let (base, token, mailbox) = started(false).await;
    let change = json!({"email": "lib2@example.com", "current_password": "old-phrase-77"});
    let (status, body) = call(
        Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(change),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["email"], &body["pending_email"]),
        (&json!("lib@example.com"), &json!("lib2@example.com"))
    );
    let (old, new, link) = mailbox.0.lock().unwrap().pop().expect("the hook ran");
    assert_eq!(
        (old.as_str(), new.as_str()),
        ("lib@example.com", "lib2@example.com")
    );
    let url = format!("{base}/auth/confirm-email-change");
    let (status, body) = call(
        Method::POST,
        url.clone(),
        None,
        Some(json!({"token": link})),
    )
    .await;
    assert_eq!(
        (status, &body["email"], &body["is_verified"]),
        (StatusCode::OK, &json!("lib2@example.com"), &json!(true))
    );
    let (status, body) = call(Method::POST, url, None, Some(json!({"token": link}))).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "EMAIL_CHANGE_BAD_TOKEN"})
        )
    );
    login(&base, "lib2@example.com", "old-phrase-77").await;
}

#[tokio::test]
async fn strict_compat_changes_at_once_without_the_hook() {
    let (base, token, mailbox) = started(true).await;
    let (status, body) = call(
        Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"email": "now@example.com"})),
    )
    .await;
    assert_eq!(
        (status, &body["email"]),
        (StatusCode::OK, &json!("now@example.com")),
        "{body}"
    );
    assert!(body.get("pending_email").is_none());
    assert!(mailbox.0.lock().unwrap().is_empty());
}
