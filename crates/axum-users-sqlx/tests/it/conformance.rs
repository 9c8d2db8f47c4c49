//! The store conformance suite on SQLite always, and on PostgreSQL and MariaDB/MySQL when
//! TEST_POSTGRES_URL / TEST_MYSQL_URL name a server (each test gets a database of its own).

use std::time::Duration;

use axum_users::{DatabaseStrategy, JwtCodec, JwtStrategy, Secret, UserStore, testing};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{SqlId, SqlStore, StoreOptions};

async fn sqlite<Id: SqlId>() -> (SqlStore<Id>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqlStore::<Id>::connect(&url).await.unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        9,
        "migrations 1, 2, 3 (sessions), 4 (the mail outbox), 5 (second factors), 6 (times, audit log), 8 (webhooks), 9 (passkeys) and 10 (rare filters)"
    );
    assert_eq!(store.migrate().await.unwrap(), 0, "migrations apply once");
    (store, dir)
}

/// Every check of the suite on one store.
async fn suite<Id: SqlId>(store: &SqlStore<Id>) {
    testing::user_store(store).await;
    testing::oauth_account_store(store).await;
    testing::access_token_store(store, store).await;
    testing::session_store(store, store).await;
    testing::concurrent_creates(store, 50).await;
    testing::concurrent_password_replace(store, 20).await;
    testing::concurrent_unlinks(store, 10).await;
    testing::outbox_store(store).await;
    testing::user_directory(store).await;
    testing::audit_store(store).await;
    testing::mfa_store(store).await;
    testing::concurrent_mfa_uses(store, 10).await;
    testing::passkey_store(store).await;
    testing::concurrent_passkey_uses(store, 10).await;
    testing::outbox_store(&store.webhook_outbox()).await;
    let routed = store.clone().with_webhooks(testing::conformance_routes());
    testing::webhook_queueing(&routed, &routed.webhook_outbox(), true).await;
    let user = store
        .create(testing::new_user::<SqlStore<Id>>(&testing::unique_email()))
        .await
        .unwrap();
    testing::strategy(
        &DatabaseStrategy::new(store.clone(), Some(Duration::from_secs(3600))),
        user.id.clone(),
        true,
    )
    .await;
    assert!(store.delete(&user.id).await.unwrap());
}

/// The suite on a fresh database of the server named by `var`, with `Id` keys.
async fn on_server<Id: SqlId>(var: &str, backend: &str) {
    let Some(server) = testing::service_url(var, backend) else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    let options = StoreOptions::default().with_max_connections(20);
    let store = SqlStore::<Id>::connect_with(&db.url, options)
        .await
        .unwrap();
    assert_eq!(
        store.migrate().await.unwrap(),
        9,
        "migrations 1, 2, 3 (sessions), 4 (the mail outbox), 5 (second factors), 6 (times, audit log), 8 (webhooks), 9 (passkeys) and 10 (rare filters)"
    );
    assert_eq!(store.migrate().await.unwrap(), 0, "migrations apply once");
    suite(&store).await;
    store.pool().close().await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn sqlite_uuid_store() {
    let (store, _dir) = sqlite::<uuid::Uuid>().await;
    suite(&store).await;
}

#[tokio::test]
async fn sqlite_integer_store() {
    let (store, _dir) = sqlite::<i64>().await;
    suite(&store).await;
}

#[tokio::test]
async fn postgres_uuid_store() {
    on_server::<uuid::Uuid>("TEST_POSTGRES_URL", "PostgreSQL").await;
}

#[tokio::test]
async fn postgres_integer_store() {
    on_server::<i64>("TEST_POSTGRES_URL", "PostgreSQL").await;
}

#[tokio::test]
async fn mysql_uuid_store() {
    on_server::<uuid::Uuid>("TEST_MYSQL_URL", "MariaDB/MySQL").await;
}

#[tokio::test]
async fn mysql_integer_store() {
    on_server::<i64>("TEST_MYSQL_URL", "MariaDB/MySQL").await;
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = SqlStore::<uuid::Uuid>::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    testing::user_store(&store).await;
}

#[tokio::test]
async fn unknown_schemes_are_refused_with_a_message() {
    let err = SqlStore::<uuid::Uuid>::connect("oracle://db/x")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sqlite:, postgres: or mysql:"), "{err}");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_within_the_timeout() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let started = std::time::Instant::now();
    let err = SqlStore::<uuid::Uuid>::connect_with(
        "postgres://nobody@127.0.0.1:9/none",
        StoreOptions::default().with_timeout(std::time::Duration::from_secs(2)),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{err}"
    );
}

#[tokio::test]
async fn jwt_strategy_passes_the_strategy_checks() {
    let jwt = JwtStrategy::new(
        JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap(),
        Duration::from_secs(60),
    );
    testing::strategy(&jwt, uuid::Uuid::new_v4(), false).await;
}

#[tokio::test]
async fn users_are_listed_by_e_mail_with_limit_and_offset() {
    let store = SqlStore::<uuid::Uuid>::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    for email in ["c@example.com", "A@example.com", "b@example.com"] {
        store
            .create(axum_users::testing::new_user::<SqlStore>(email))
            .await
            .unwrap();
    }
    let emails =
        |users: Vec<axum_users::User>| users.into_iter().map(|u| u.email).collect::<Vec<_>>();
    assert_eq!(
        emails(store.list_users(10, 0).await.unwrap()),
        ["A@example.com", "b@example.com", "c@example.com"]
    );
    assert_eq!(
        emails(store.list_users(1, 1).await.unwrap()),
        ["b@example.com"]
    );
    assert!(store.list_users(10, 3).await.unwrap().is_empty());
}
