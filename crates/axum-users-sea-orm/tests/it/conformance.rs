//! The store conformance suite on the base entities, with UUID and integer keys: users, OAuth
//! accounts, tokens, sessions, the mail outbox, second factors, the users directory, the audit
//! log and the webhook deliveries.

use std::time::Duration;

use axum_users::{DatabaseStrategy, JwtCodec, JwtStrategy, Secret, UserStore, testing};
use axum_users_sea_orm::migration::{IntegerMigrator, Migrator, MigratorTrait};
use axum_users_sea_orm::{IntegerStore, SeaOrmStore};

use crate::databases::{self, TestDb};

/// Drops what an earlier run left and applies the migrations again; they leave none pending.
async fn run<M: MigratorTrait>(test: TestDb) -> TestDb {
    M::fresh(&test.db).await.unwrap();
    let pending = M::get_pending_migrations(&test.db).await.unwrap();
    assert!(pending.is_empty(), "every migration is applied");
    assert_eq!(
        M::get_applied_migrations(&test.db).await.unwrap().len(),
        8,
        "base schema, email_epoch, sessions, mail outbox, second factors, times and audit log, webhooks, rare filter indexes"
    );
    test
}

async fn uuid_suite(test: TestDb) {
    let test = run::<Migrator>(test).await;
    let store: SeaOrmStore = SeaOrmStore::new(test.db.clone()).unwrap();
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::access_token_store(&store, &store).await;
    testing::session_store(&store, &store).await;
    testing::concurrent_creates(&store, 50).await;
    testing::concurrent_unlinks(&store, 10).await;
    testing::outbox_store(&store).await;
    the_rest(&store).await;
    strategies(&store).await;
}

/// The suites of second factors, the directory, the audit log and webhooks, on any store over
/// the base entities.
async fn the_rest<U, O, T, S, R, M>(store: &SeaOrmStore<U, O, T, S, R, M>)
where
    U: axum_users_sea_orm::UserEntity<Fields = axum_users::NoFields>,
    O: axum_users_sea_orm::StoreEntity,
    T: axum_users_sea_orm::StoreEntity,
    S: axum_users_sea_orm::StoreEntity,
    R: axum_users_sea_orm::StoreEntity,
    M: axum_users_sea_orm::MfaEntities,
{
    testing::concurrent_password_replace(store, 20).await;
    testing::mfa_store(store).await;
    testing::concurrent_mfa_uses(store, 10).await;
    testing::user_directory(store).await;
    testing::audit_store(store).await;
    testing::outbox_store(&store.webhook_outbox()).await;
    let routed = store.clone().with_webhooks(testing::conformance_routes());
    testing::webhook_queueing(&routed, &routed.webhook_outbox(), true).await;
}

async fn integer_suite(test: TestDb) {
    let test = run::<IntegerMigrator>(test).await;
    let store = IntegerStore::new(test.db.clone()).unwrap();
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::access_token_store(&store, &store).await;
    testing::session_store(&store, &store).await;
    testing::concurrent_creates(&store, 50).await;
    testing::concurrent_unlinks(&store, 10).await;
    testing::outbox_store(&store).await;
    the_rest(&store).await;
    let first = store
        .create(testing::new_user::<IntegerStore>(&testing::unique_email()))
        .await
        .unwrap();
    let second = store
        .create(testing::new_user::<IntegerStore>(&testing::unique_email()))
        .await
        .unwrap();
    assert!(second.id > first.id, "the database assigns increasing keys");
}

async fn strategies(store: &SeaOrmStore) {
    let user = store
        .create(testing::new_user::<SeaOrmStore>(&testing::unique_email()))
        .await
        .unwrap();
    testing::strategy(
        &DatabaseStrategy::new(store.clone(), Some(Duration::from_secs(3600))),
        user.id,
        true,
    )
    .await;
    let jwt = JwtStrategy::new(
        JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap(),
        Duration::from_secs(60),
    );
    testing::strategy(&jwt, user.id, false).await;
}

#[tokio::test]
async fn sqlite_uuid_store() {
    uuid_suite(databases::sqlite().await).await;
}

#[tokio::test]
async fn sqlite_integer_store() {
    integer_suite(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_uuid_store() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_uuid").await {
        uuid_suite(test).await;
    }
}

#[tokio::test]
async fn postgres_integer_store() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_int").await {
        integer_suite(test).await;
    }
}

#[tokio::test]
async fn mariadb_uuid_store() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_uuid").await {
        uuid_suite(test).await;
    }
}

#[tokio::test]
async fn mariadb_integer_store() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_int").await {
        integer_suite(test).await;
    }
}

#[tokio::test]
async fn in_memory_sqlite_through_connect() {
    let store: SeaOrmStore = SeaOrmStore::connect("sqlite::memory:").await.unwrap();
    Migrator::up(store.connection(), None).await.unwrap();
    testing::user_store(&store).await;
    testing::oauth_account_store(&store).await;
    testing::concurrent_creates(&store, 10).await;
    testing::concurrent_unlinks(&store, 2).await;
}
