//! Faults: the database or Redis stops under a running server (503 within the timeout, no
//! hang, no panic), then comes back (the server recovers without a restart). The services are
//! private instances this test owns: the shared ones are never touched.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::services::{PrivatePostgres, PrivateRedis};
use crate::support::*;

const UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";

/// Status and body of a GET with a bearer token, and how long it took.
async fn timed_me(s: &Server, token: &str) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, body) = get_me(s, token).await;
    (status, body, started.elapsed())
}

/// `/ready`'s status and services (its fail-open counters, `abuse.rs`'s business, left out).
async fn ready(s: &Server) -> (StatusCode, Value) {
    let (status, mut body) = read(client().get(s.url("/ready")).send().await.unwrap()).await;
    if let Some(map) = body.as_object_mut() {
        map.remove("limiter_outages");
        map.remove("breached_passwords_outages");
    }
    (status, body)
}

/// Polls `/ready` until it answers 200, for up to 30 s.
async fn wait_ready(s: &Server) -> Value {
    for _ in 0..150 {
        let (status, body) = ready(s).await;
        if status == StatusCode::OK {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the server did not recover: {:?}", ready(s).await);
}

#[tokio::test]
async fn database_outage_gives_503_and_the_server_recovers() {
    if axum_users::testing::service_url("TEST_POSTGRES_URL", "PostgreSQL fault test").is_none() {
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let s = start_env(&[
        ("AXUM_USERS_DATABASE_URL", pg.url()),
        ("AXUM_USERS_SECRET", SECRET.into()),
        ("AXUM_USERS_DB_TOKENS", "true".into()),
        ("AXUM_USERS_DATABASE_TIMEOUT_SECONDS", "2".into()),
    ]);
    register(&s, "olga@example.com", "olgapass").await;
    let jwt = login(&s, "olga@example.com", "olgapass").await;
    let db_token = login_via(&s, "db", "olga@example.com", "olgapass").await;

    pg.stop();
    for token in [&jwt, &db_token] {
        let (status, body, took) = timed_me(&s, token).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"detail": UNAVAILABLE})
            )
        );
        assert!(
            took < Duration::from_secs(5),
            "answered within the timeout: {took:?}"
        );
    }
    let (status, body) = post_json(
        &client(),
        s.url("/auth/register"),
        json!({"email": "pete@example.com", "password": "petepass"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE})
        )
    );
    assert_eq!(
        try_login(&s, "olga@example.com", "olgapass").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE})
        )
    );
    let (status, body) = ready(&s).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "unavailable"})
        )
    );
    let health = read(client().get(s.url("/health")).send().await.unwrap()).await;
    assert_eq!(
        health.0,
        StatusCode::OK,
        "liveness does not depend on the database"
    );

    pg.restart();
    assert_eq!(
        wait_ready(&s).await,
        json!({"status": "ok", "database": "ok"})
    );
    assert_eq!(
        get_me(&s, &jwt).await.0,
        StatusCode::OK,
        "recovered without a restart"
    );
    assert_eq!(
        get_me(&s, &db_token).await.0,
        StatusCode::OK,
        "database tokens survive"
    );
    register(&s, "pete@example.com", "petepass").await;
    let log = s.log.lock().unwrap().join("\n");
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn redis_outage_gives_503_and_the_server_recovers() {
    if axum_users::testing::service_url("TEST_REDIS_URL", "Redis fault test").is_none() {
        return;
    }
    // The server starts before Redis does: it serves, and says it is not ready.
    let mut redis = PrivateRedis::unstarted();
    let s = start_env(&[
        ("AXUM_USERS_REDIS_URL", redis.url()),
        ("AXUM_USERS_REDIS_TIMEOUT_SECONDS", "1".into()),
    ]);
    let (status, body) = ready(&s).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "ok", "redis": "unavailable"})
        )
    );
    register(&s, "rita@example.com", "ritapass").await;
    let (status, body) = try_login_via(&s, "redis").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE})
        )
    );

    redis.start();
    wait_ready(&s).await;
    let token = login_via(&s, "redis", "rita@example.com", "ritapass").await;
    assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);

    redis.stop();
    let (status, body, took) = timed_me(&s, &token).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"detail": UNAVAILABLE})
        )
    );
    assert!(
        took < Duration::from_secs(4),
        "answered within the timeout: {took:?}"
    );
    let (status, _) = try_login_via(&s, "redis").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready(&s).await.0, StatusCode::SERVICE_UNAVAILABLE);
    let jwt = login(&s, "rita@example.com", "ritapass").await;
    assert_eq!(
        get_me(&s, &jwt).await.0,
        StatusCode::OK,
        "JWTs do not need Redis"
    );

    redis.start();
    wait_ready(&s).await;
    // This Redis kept nothing (no persistence): the old token is gone, new ones work.
    assert_eq!(get_me(&s, &token).await.0, StatusCode::UNAUTHORIZED);
    let token = login_via(&s, "redis", "rita@example.com", "ritapass").await;
    assert_eq!(
        get_me(&s, &token).await.0,
        StatusCode::OK,
        "recovered without a restart"
    );
}

async fn try_login_via(s: &Server, backend: &str) -> (StatusCode, Value) {
    read(
        client()
            .post(s.url(&format!("/auth/{backend}/login")))
            .form(&[("username", "rita@example.com"), ("password", "ritapass")])
            .send()
            .await
            .unwrap(),
    )
    .await
}
