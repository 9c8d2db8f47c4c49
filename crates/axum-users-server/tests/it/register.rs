//! `POST /auth/register` and its errors.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn duplicate_e_mail_is_refused_case_insensitively() {
    let s = Server::start();
    register(&s, "alice@example.com", "alicepass1").await;
    let (status, body) = post_json(
        &client(),
        s.url("/auth/register"),
        json!({"email": "ALICE@example.com", "password": "whatever1"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "REGISTER_USER_ALREADY_EXISTS"})
        )
    );
}

#[tokio::test]
async fn refused_password_has_code_and_reason_and_comes_before_the_duplicate_check() {
    let s = Server::start();
    let (status, body) = post_json(
        &client(),
        s.url("/auth/register"),
        json!({"email": "bob@example.com", "password": "ab"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"detail": {"code": "REGISTER_INVALID_PASSWORD", "reason": "Password should be at least 3 characters"}})
    );
    register(&s, "bob@example.com", "bobpass1").await;
    let (_, body) = post_json(
        &client(),
        s.url("/auth/register"),
        json!({"email": "bob@example.com", "password": "ab"}),
    )
    .await;
    assert_eq!(body["detail"]["code"], "REGISTER_INVALID_PASSWORD");
}

#[tokio::test]
async fn concurrent_registrations_of_one_e_mail_make_exactly_one_user_on_every_database() {
    for db in databases().await {
        let s = start_env(&db.env());
        let c = client();
        let url = s.url("/auth/register");
        let attempts: Vec<_> = (0..50)
            .map(|i| {
                let (c, url) = (c.clone(), url.clone());
                let email = if i % 2 == 0 {
                    "race@example.com"
                } else {
                    "RACE@example.com"
                };
                tokio::spawn(async move {
                    post_json(&c, url, json!({"email": email, "password": "racepass"})).await
                })
            })
            .collect();
        let mut created = 0;
        for attempt in attempts {
            let (status, body) = attempt.await.unwrap();
            match status {
                StatusCode::CREATED => created += 1,
                StatusCode::BAD_REQUEST => {
                    assert_eq!(
                        body["detail"], "REGISTER_USER_ALREADY_EXISTS",
                        "{}",
                        db.name
                    )
                }
                other => panic!("{}: unexpected {other}: {body}", db.name),
            }
        }
        assert_eq!(created, 1, "{}: exactly one 201", db.name);
        drop(s);
        db.finish().await;
    }
}
