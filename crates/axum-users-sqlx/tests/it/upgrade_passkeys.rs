//! Migration 9 (passkeys) upgrades a database written by the schema before it (migrations 1
//! to 8) in place: the users and their second factors are kept, and passkeys work on the
//! upgraded tables.

use axum_users::{PasskeyRecord, UserStore, testing};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{SqlStore, StoreOptions};
use uuid::Uuid;

use crate::upgrade::{HASH, exec};

async fn upgrade_to_passkeys(url: &str) {
    let store = SqlStore::<Uuid>::connect_with(url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.migrate_to(8).await.unwrap(), 7, "the schema before 9");
    let ada = Uuid::new_v4();
    for sql in [
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch, created_at, updated_at) VALUES ('{ada}', \
             'ada@example.com', 'ada@example.com', '{HASH}', TRUE, FALSE, TRUE, '{{}}', 0, \
             1767225600, 1767225600)"
        ),
        format!(
            "INSERT INTO mfa_totp (user_id, sealed_secret, confirmed, last_step, created_at) \
             VALUES ('{ada}', 'v1.sealed', TRUE, 7, 1767225600)"
        ),
    ] {
        exec(store.pool(), sql).await;
    }
    assert_eq!(store.migrate_to(9).await.unwrap(), 1, "migration 9");
    let user = store.get(&ada).await.unwrap().expect("ada is kept");
    assert_eq!(user.hashed_password.0, HASH);
    let totp = store.mfa_store().unwrap().get_totp(&ada).await.unwrap();
    assert!(
        totp.is_some_and(|t| t.confirmed),
        "her second factor is kept"
    );

    let passkeys = store.passkey_store().unwrap();
    let record = PasskeyRecord::new(
        "0123456789abcdef0123456789abcdef",
        ada,
        "a".repeat(64),
        Uuid::new_v4().to_string(),
        "Laptop",
        "{}",
        0,
        1767225600,
        None,
    );
    assert!(passkeys.create_passkey(&record).await.unwrap());
    assert_eq!(passkeys.list_passkeys(&ada).await.unwrap(), vec![record]);
    assert!(store.delete(&ada).await.unwrap());
    assert!(
        passkeys.list_passkeys(&ada).await.unwrap().is_empty(),
        "they go with her"
    );
    testing::passkey_store(&store).await;
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_passkeys_keeps_users_and_factors() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_to_passkeys(&format!("sqlite://{}", dir.path().join("v8.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_to_passkeys_keeps_users_and_factors() {
    let Some(server) = testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_passkeys(&db.url).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mysql_upgrade_to_passkeys_keeps_users_and_factors() {
    let Some(server) = testing::service_url("TEST_MYSQL_URL", "MariaDB/MySQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_passkeys(&db.url).await;
    db.drop_database().await.unwrap();
}
