//! The database and Redis token backends (`/auth/db`, `/auth/redis`), on every database.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn database_and_redis_tokens_log_in_and_out_on_every_database() {
    let redis = axum_users::testing::service_url("TEST_REDIS_URL", "Redis");
    for db in databases().await {
        let mut env = db.env();
        env.push(("AXUM_USERS_DB_TOKENS", "true".into()));
        let mut backends = vec!["db"];
        if let Some(redis) = &redis {
            env.push(("AXUM_USERS_REDIS_URL", redis.clone()));
            env.push((
                "AXUM_USERS_REDIS_KEY_PREFIX",
                format!("e2e_{}:", uuid::Uuid::new_v4().simple()),
            ));
            backends.push("redis");
        }
        let s = start_env(&env);
        let user = register(&s, "dana@example.com", "danapass").await;
        for backend in &backends {
            let token = login_via(&s, backend, "dana@example.com", "danapass").await;
            assert_eq!(
                token.len(),
                43,
                "{}/{backend}: 256-bit opaque token",
                db.name
            );
            let other = login_via(&s, backend, "dana@example.com", "danapass").await;
            assert_ne!(token, other);
            let (status, me) = get_me(&s, &token).await;
            assert_eq!(
                (status, &me["id"]),
                (StatusCode::OK, &user["id"]),
                "{}",
                db.name
            );

            assert_eq!(
                logout_via(&s, backend, &token).await,
                StatusCode::NO_CONTENT
            );
            assert_eq!(
                get_me(&s, &token).await,
                (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"})),
                "{}/{backend}: logout revokes the token",
                db.name
            );
            assert_eq!(
                logout_via(&s, backend, &token).await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(
                get_me(&s, &other).await.0,
                StatusCode::OK,
                "other sessions live on"
            );
            assert_eq!(get_me(&s, "not-a-token").await.0, StatusCode::UNAUTHORIZED);
        }
        let (status, ready) = read(client().get(s.url("/ready")).send().await.unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{ready}");
        assert_eq!(ready["database"], "ok");
        if redis.is_some() {
            assert_eq!(ready["redis"], "ok");
        }
        let (_, doc) = read(client().get(s.url("/openapi.json")).send().await.unwrap()).await;
        for backend in &backends {
            assert!(
                doc["paths"][format!("/auth/{backend}/login")]["post"].is_object(),
                "/auth/{backend}/login is documented"
            );
        }
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn database_tokens_expire_after_their_lifetime() {
    let s = Server::start_with(&[
        ("AXUM_USERS_DB_TOKENS", "true"),
        ("AXUM_USERS_DB_TOKEN_LIFETIME_SECONDS", "1"),
    ]);
    register(&s, "ed@example.com", "edpass").await;
    let token = login_via(&s, "db", "ed@example.com", "edpass").await;
    assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(get_me(&s, &token).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn without_configuration_there_is_no_db_or_redis_backend() {
    let s = Server::start();
    for backend in ["db", "redis"] {
        let (status, _) = read(
            client()
                .post(s.url(&format!("/auth/{backend}/login")))
                .form(&[("username", "x@example.com"), ("password", "x")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (_, ready) = read(client().get(s.url("/ready")).send().await.unwrap()).await;
    assert!(ready.get("redis").is_none(), "{ready}");
}
