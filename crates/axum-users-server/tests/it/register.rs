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
async fn invalid_bodies_get_fastapi_422s() {
    let s = Server::start();
    let c = client();
    let (status, body) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "bob", "password": "bobpass1"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"detail": [{"type": "value_error", "loc": ["body", "email"], "msg": "value is not a valid email address: An email address must have an @-sign.", "input": "bob", "ctx": {"reason": "An email address must have an @-sign."}}]})
    );
    let (status, body) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "bob@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body,
        json!({"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": {"email": "bob@example.com"}}]})
    );

    let r = c
        .post(s.url("/auth/register"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"][0]["type"], "json_invalid");
    assert_eq!(body["detail"][0]["loc"], json!(["body", 9]));

    for bad in [
        json!([1, 2]),
        json!("x"),
        json!({"email": 5, "password": "p4ss"}),
        json!({"email": "a@example.com", "password": ["p"]}),
        json!({"email": "a@example.com", "password": "abc", "is_active": "perhaps"}),
    ] {
        let (status, body) = post_json(&c, s.url("/auth/register"), bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} → {body}");
    }
    let (status, _) = read(c.post(s.url("/auth/register")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn flags_in_the_body_are_ignored_and_the_domain_is_lowercased() {
    let s = Server::start();
    let body = register_with(&s, json!({"email": "Dave.Smith@EXAMPLE.com", "password": "davepass", "is_superuser": true, "is_verified": true, "is_active": false, "id": "x"})).await;
    assert_eq!(body["email"], "Dave.Smith@example.com");
    assert_eq!(
        (
            body["is_active"].clone(),
            body["is_superuser"].clone(),
            body["is_verified"].clone()
        ),
        (json!(true), json!(false), json!(false))
    );
}

async fn register_with(s: &Server, body: serde_json::Value) -> serde_json::Value {
    let (status, body) = post_json(&client(), s.url("/auth/register"), body).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
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
