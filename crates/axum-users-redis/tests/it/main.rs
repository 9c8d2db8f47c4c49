//! The Redis strategy against a real Redis (TEST_REDIS_URL), and its behaviour when none answers.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod limiter;

use std::time::{Duration, Instant};

use axum_users::{Strategy, StrategyError, hash_token, testing};
use axum_users_redis::{RedisOptions, RedisStrategy};
use redis::AsyncCommands;
use uuid::Uuid;

fn options() -> RedisOptions {
    RedisOptions::default().with_key_prefix(format!("axum_users_test_{}:", Uuid::new_v4().simple()))
}

#[tokio::test]
async fn strategy_conformance_on_redis() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let strategy = RedisStrategy::<Uuid>::connect(&url, options()).unwrap();
    strategy.ping().await.unwrap();
    testing::strategy(&strategy, Uuid::new_v4(), true).await;
    let integer = RedisStrategy::<i64>::connect(&url, options()).unwrap();
    testing::strategy(&integer, 42, true).await;
}

#[tokio::test]
async fn keys_are_prefixed_hashes_with_the_lifetime_as_ttl() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let options = options().with_lifetime(Some(Duration::from_secs(120)));
    let prefix = options.key_prefix.clone();
    let strategy = RedisStrategy::<Uuid>::connect(&url, options).unwrap();
    let user = Uuid::new_v4();
    let token = strategy
        .write_token(&user)
        .await
        .unwrap()
        .access_token
        .expose()
        .to_owned();

    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = raw.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(
        keys,
        vec![format!("{prefix}{}", hash_token(&token))],
        "only the hash is a key"
    );
    assert!(!keys[0].contains(&token), "the raw token is nowhere");
    let value: String = raw.get(&keys[0]).await.unwrap();
    assert_eq!(value, user.to_string());
    let ttl: i64 = raw.ttl(&keys[0]).await.unwrap();
    assert!((100..=120).contains(&ttl), "TTL = lifetime: {ttl}");

    strategy.destroy_token(&token).await.unwrap();
    let exists: bool = raw.exists(&keys[0]).await.unwrap();
    assert!(!exists, "logout deletes the key");

    let forever =
        RedisStrategy::<Uuid>::connect(&url, self::options().with_lifetime(None)).unwrap();
    let token = forever
        .write_token(&user)
        .await
        .unwrap()
        .access_token
        .expose()
        .to_owned();
    let key = format!("{}{}", forever.options().key_prefix, hash_token(&token));
    let ttl: i64 = raw.ttl(&key).await.unwrap();
    assert_eq!(ttl, -1, "no lifetime: no expiry");
    forever.destroy_token(&token).await.unwrap();
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let strategy =
        RedisStrategy::<Uuid>::connect(&url, options().with_lifetime(Some(Duration::from_secs(1))))
            .unwrap();
    let token = strategy
        .write_token(&Uuid::new_v4())
        .await
        .unwrap()
        .access_token
        .expose()
        .to_owned();
    assert!(strategy.read_token(&token).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(strategy.read_token(&token).await.unwrap(), None);
}

#[tokio::test]
async fn no_redis_is_unavailable_within_the_timeout() {
    // Nothing listens on the discard port of loopback.
    let strategy = RedisStrategy::<Uuid>::connect(
        "redis://127.0.0.1:9",
        RedisOptions::default().with_timeout(Duration::from_millis(500)),
    )
    .unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let read = strategy.read_token("some-token").await;
        assert!(
            matches!(read, Err(StrategyError::Unavailable(_))),
            "{read:?}"
        );
        let write = strategy.write_token(&Uuid::new_v4()).await;
        assert!(
            matches!(write, Err(StrategyError::Unavailable(_))),
            "{write:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "no hang");
    }
    assert!(matches!(
        strategy.ping().await,
        Err(axum_users::StoreError::Unavailable(_))
    ));
    assert!(format!("{strategy:?}").contains("RedisStrategy"));
}

#[tokio::test]
async fn a_value_without_a_session_is_marked_as_needing_one() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let strategy = RedisStrategy::<Uuid>::connect(&url, options()).unwrap();
    let user = Uuid::new_v4();
    let old = strategy.write_token(&user).await.unwrap();
    let owner = strategy
        .read_token_owner(old.access_token.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (owner.session_id, owner.needs_session),
        (None, true),
        "no revocation reaches it: refused where the store keeps sessions"
    );
    let new = strategy.write_session_token(&user, "sid").await.unwrap();
    let owner = strategy
        .read_token_owner(new.access_token.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.session_id.as_deref(), Some("sid"));
    for token in [old, new] {
        strategy
            .destroy_token(token.access_token.expose())
            .await
            .unwrap();
    }
}
