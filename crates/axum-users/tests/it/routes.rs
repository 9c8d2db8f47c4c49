//! Route contracts of the library, driven in process through `testing::TestApp` (no port, no
//! server binary): login and register errors in FastAPI's shapes, the cookie jar of the cookie
//! backend.

use axum_users::testing::TestApp;
use axum_users::{AxumUsers, CookieSettings, MemoryStore};
use http::StatusCode;
use serde_json::json;

use crate::library::FAST;

fn app() -> TestApp {
    let users = AxumUsers::builder(
        MemoryStore::<uuid::Uuid>::new(),
        "routes-test-secret-of-at-least-32-bytes",
    )
    .argon2(FAST)
    .cookie(CookieSettings::auth().with_secure(false))
    .build()
    .unwrap();
    TestApp::new(users.router())
}

const PASSWORD: &str = "a long and rare passphrase";

#[tokio::test]
async fn login_errors() {
    let app = app();
    app.register("alice@example.com", PASSWORD).await;
    for (user, pass) in [
        ("alice@example.com", "not the passphrase"),
        ("ghost@example.com", "not the passphrase"),
        ("not-an-email", "x"),
    ] {
        let r = app
            .post("/auth/jwt/login")
            .form(&[("username", user), ("password", pass)])
            .send()
            .await;
        assert_eq!(
            r.pair(),
            (
                StatusCode::BAD_REQUEST,
                json!({"detail": "LOGIN_BAD_CREDENTIALS"})
            ),
            "{user}"
        );
        assert!(r.header("www-authenticate").is_none(), "{user}");
    }
    app.login("ALICE@EXAMPLE.COM", PASSWORD).await;

    let r = app
        .post("/auth/jwt/login")
        .json(&json!({"username": "alice@example.com", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(
        r.pair(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [
                {"type": "missing", "loc": ["body", "username"], "msg": "Field required", "input": null},
                {"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": null}
            ]})
        )
    );
    let r = app
        .post("/auth/jwt/login")
        .form(&[
            ("grant_type", "client_credentials"),
            ("username", "alice@example.com"),
            ("password", PASSWORD),
        ])
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["detail"][0]["type"], "string_pattern_mismatch");
    let r = app
        .post("/auth/jwt/login")
        .form(&[("username", ""), ("password", "x")])
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn invalid_register_bodies_get_fastapi_422s() {
    let app = app();
    let r = app
        .post("/auth/register")
        .json(&json!({"email": "bob", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(
        r.pair(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "value_error", "loc": ["body", "email"], "msg": "value is not a valid email address: An email address must have an @-sign.", "input": "bob", "ctx": {"reason": "An email address must have an @-sign."}}]})
        )
    );
    let r = app
        .post("/auth/register")
        .json(&json!({"email": "bob@example.com"}))
        .send()
        .await;
    assert_eq!(
        r.pair(),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"detail": [{"type": "missing", "loc": ["body", "password"], "msg": "Field required", "input": {"email": "bob@example.com"}}]})
        )
    );
    let r = app
        .post("/auth/register")
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["detail"][0]["type"], "json_invalid");
    assert_eq!(r.json()["detail"][0]["loc"], json!(["body", 9]));

    for bad in [
        json!([1, 2]),
        json!("x"),
        json!({"email": 5, "password": PASSWORD}),
        json!({"email": "a@example.com", "password": ["p"]}),
        json!({"email": "a@example.com", "password": PASSWORD, "is_active": "perhaps"}),
    ] {
        let r = app.post("/auth/register").json(&bad).send().await;
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} → {}",
            r.text()
        );
    }
    let r = app.post("/auth/register").send().await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn flags_in_the_register_body_are_ignored_and_the_domain_is_lowercased() {
    let app = app();
    let r = app
        .post("/auth/register")
        .json(&json!({"email": "Dave.Smith@EXAMPLE.com", "password": PASSWORD, "is_superuser": true, "is_verified": true, "is_active": false, "id": "x"}))
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text());
    let body = r.json();
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

#[tokio::test]
async fn the_cookie_backend_signs_in_reads_and_signs_out_through_the_jar() {
    let app = app();
    app.register("carol@example.com", PASSWORD).await;
    let r = app
        .post("/auth/cookie/login")
        .form(&[("username", "carol@example.com"), ("password", PASSWORD)])
        .send()
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", r.text());
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(app.cookie("fastapiusersauth").is_some(), "{cookie}");

    let me = app.get("/users/me").send().await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(me.json()["email"], "carol@example.com");

    // A cross-site request that rides on the cookie is refused and changes nothing.
    let forged = app
        .post("/auth/cookie/logout")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(
        forged.pair(),
        (
            StatusCode::FORBIDDEN,
            json!({"detail": "CSRF_ORIGIN_MISMATCH"})
        )
    );
    assert!(app.cookie("fastapiusersauth").is_some());

    let out = app.post("/auth/cookie/logout").send().await;
    assert_eq!(out.status(), StatusCode::NO_CONTENT, "{}", out.text());
    assert!(app.cookie("fastapiusersauth").is_none());
    assert_eq!(
        app.get("/users/me").send().await.pair(),
        (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
    );
}
