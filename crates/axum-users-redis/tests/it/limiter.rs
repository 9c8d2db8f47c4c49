//! The Redis limiter against a real Redis (TEST_REDIS_URL): atomic under concurrency, the
//! failure log's window, no raw key stored, and an error (not a hang) when Redis is away.

use std::sync::Arc;
use std::time::Duration;

use axum_users::{Limiter, Rule, testing};
use axum_users_redis::RedisLimiter;
use redis::AsyncCommands;
use uuid::Uuid;

fn prefix() -> String {
    format!("axum_users_test_abuse_{}:", Uuid::new_v4().simple())
}

#[tokio::test]
async fn concurrent_hits_on_one_key_allow_exactly_the_limit() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let limiter = Arc::new(RedisLimiter::connect(&url, prefix(), Duration::from_secs(2)).unwrap());
    let rule = Rule::per_seconds(25, 60);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.hit("login:ip:203.0.113.9", rule).await.unwrap() })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        match task.await.unwrap() {
            None => allowed += 1,
            Some(wait) => assert!(wait <= Duration::from_millis(2400), "{wait:?}"),
        }
    }
    assert_eq!(allowed, 25, "one Lua call per hit: no lost update");
    assert!(
        limiter
            .hit("login:ip:203.0.113.10", rule)
            .await
            .unwrap()
            .is_none(),
        "keys are separate"
    );
}

#[tokio::test]
async fn failures_block_for_their_window_and_keys_are_hashed() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let prefix = prefix();
    let limiter = RedisLimiter::connect(&url, prefix.clone(), Duration::from_secs(2)).unwrap();
    let rule = Rule::new(3, Duration::from_millis(400));
    let key = "login_failures:victim@example.com";
    for _ in 0..2 {
        limiter.record_failure(key, rule).await.unwrap();
    }
    assert_eq!(limiter.blocked(key, rule).await.unwrap(), None);
    limiter.record_failure(key, rule).await.unwrap();
    let wait = limiter.blocked(key, rule).await.unwrap().expect("blocked");
    assert!(wait <= Duration::from_millis(400), "{wait:?}");
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys.len(), 1);
    assert!(!keys[0].contains("victim"), "no address in Redis: {keys:?}");
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        limiter.blocked(key, rule).await.unwrap(),
        None,
        "never permanent"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_within_the_timeout() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let limiter = RedisLimiter::connect(
        &format!("redis://127.0.0.1:{port}"),
        prefix(),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert!(limiter.hit("k", Rule::per_seconds(1, 1)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}
