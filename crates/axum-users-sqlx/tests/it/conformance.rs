//! The store conformance suite on SQLite, with UUID and integer ids.

use axum_users::{DatabaseStrategy, JwtCodec, JwtStrategy, Secret, UserStore, testing};
use axum_users_sqlx::SqliteStore;

async fn sqlite<Id: axum_users_sqlx::SqlId>() -> (SqliteStore<Id>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = SqliteStore::<Id>::connect(&url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), 1);
    assert_eq!(store.migrate().await.unwrap(), 0, "migrations apply once");
    (store, dir)
}

#[tokio::test]
async fn sqlite_uuid_store() {
    let (store, _dir) = sqlite::<uuid::Uuid>().await;
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::access_token_store(&store, &store).await;
    testing::concurrent_creates(&store, 50).await;
}

#[tokio::test]
async fn sqlite_integer_store() {
    let (store, _dir) = sqlite::<i64>().await;
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::access_token_store(&store, &store).await;
    testing::concurrent_creates(&store, 50).await;
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = SqliteStore::<uuid::Uuid>::connect("sqlite::memory:")
        .await
        .unwrap();
    store.migrate().await.unwrap();
    testing::user_store(&store).await;
}

#[tokio::test]
async fn strategies_on_sqlite() {
    let (store, _dir) = sqlite::<uuid::Uuid>().await;
    let user = store
        .create(testing::new_user::<SqliteStore>(&testing::unique_email()))
        .await
        .unwrap();
    testing::strategy(
        &DatabaseStrategy::new(store.clone(), Some(3600)),
        user.id,
        true,
    )
    .await;
    let jwt = JwtStrategy::new(
        JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap(),
        Some(60),
    );
    testing::strategy(&jwt, user.id, false).await;
}
