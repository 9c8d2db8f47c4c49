//! The Redis limiter against a real Redis (TEST_REDIS_URL): atomic under concurrency, the
//! failure log's window and its one-step check and count, keys named by a keyed hash, the
//! scripts reloaded after `SCRIPT FLUSH`, and an error (not a hang) when Redis is away.

use std::sync::Arc;
use std::time::Duration;

use axum_users::{CounterKeys, Limiter, Rule, Secret, hash_token, testing};
use axum_users_redis::RedisLimiter;
use redis::AsyncCommands;
use uuid::Uuid;

fn prefix() -> String {
    format!("axum_users_test_abuse_{}:", Uuid::new_v4().simple())
}

fn names() -> CounterKeys {
    CounterKeys::new(Secret::new("s".repeat(32)))
}

fn limiter(url: &str, prefix: String) -> RedisLimiter {
    RedisLimiter::connect(url, prefix, names(), Duration::from_secs(2)).unwrap()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_hits_on_one_key_allow_exactly_the_limit() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let limiter = Arc::new(limiter(&url, prefix()));
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
async fn failures_block_for_their_window_and_keys_are_keyed_hashes() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let prefix = prefix();
    let limiter = limiter(&url, prefix.clone());
    let rule = Rule::new(3, Duration::from_millis(400));
    let key = "login_failures:victim@example.com";
    for id in [1, 3] {
        assert_eq!(limiter.attempt(key, rule, id).await.unwrap(), None);
    }
    limiter.forget(key, 3).await.unwrap();
    assert_eq!(
        limiter.attempt(key, rule, 5).await.unwrap(),
        None,
        "3 was taken back"
    );
    assert_eq!(limiter.attempt(key, rule, 7).await.unwrap(), None);
    let wait = limiter
        .attempt(key, rule, 9)
        .await
        .unwrap()
        .expect("blocked");
    assert!(wait <= Duration::from_millis(400), "{wait:?}");
    let keys: Vec<String> = raw(&url).await.keys(format!("{prefix}*")).await.unwrap();
    assert_eq!(keys, vec![format!("{prefix}{}", names().name(key))]);
    assert!(!keys[0].contains("victim"), "no address in Redis: {keys:?}");
    assert!(
        !keys[0].contains(&hash_token(key)),
        "no unkeyed hash a dictionary of addresses reverses"
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(
        limiter.attempt(key, rule, 11).await.unwrap(),
        None,
        "never permanent"
    );
}

#[tokio::test]
async fn concurrent_attempts_at_the_last_failure_pass_once() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let limiter = Arc::new(limiter(&url, prefix()));
    let rule = Rule::per_seconds(5, 60);
    let key = "login_failures:race@example.com";
    for id in 0..4u64 {
        assert_eq!(limiter.attempt(key, rule, 2 * id + 1).await.unwrap(), None);
    }
    let tasks: Vec<_> = (0..20u64)
        .map(|i| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.attempt(key, rule, 101 + 2 * i).await.unwrap() })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        passed += usize::from(task.await.unwrap().is_none());
    }
    assert_eq!(passed, 1, "the check and the count are one script");
}

#[tokio::test]
async fn the_scripts_are_called_by_their_sha_and_reloaded_after_a_flush() {
    let Some(url) = testing::service_url("TEST_REDIS_URL", "Redis") else {
        return;
    };
    let limiter = limiter(&url, prefix());
    let rule = Rule::per_seconds(2, 60);
    let mut raw = raw(&url).await;
    let before = evalsha_calls(&mut raw).await;
    assert_eq!(limiter.hit("k", rule).await.unwrap(), None);
    assert!(
        evalsha_calls(&mut raw).await > before,
        "called by its SHA-1, not sent whole each time"
    );
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        limiter.hit("k", rule).await.unwrap().is_none(),
        "NOSCRIPT: loaded again and called"
    );
    assert!(
        limiter.hit("k", rule).await.unwrap().is_some(),
        "the count survived"
    );
}

/// `EVALSHA` calls Redis has served (every client's), from `INFO commandstats`.
async fn evalsha_calls(raw: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
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
        names(),
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    assert!(limiter.hit("k", Rule::per_seconds(1, 1)).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
}
