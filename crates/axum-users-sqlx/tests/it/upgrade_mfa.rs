//! Migration 5 (second factors) upgrades a database of the previous release (migrations 1-4 and
//! 6) in place: its users and sessions are kept, and the new tables work on it (and go with a
//! deleted user).

use axum_users::{MfaChallenge, SessionStore, UserStore, testing};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{SqlStore, StoreOptions};
use uuid::Uuid;

use crate::custom_fields::Profile;
use crate::upgrade::{HASH, exec};

async fn upgrade_to_mfa(url: &str) {
    let store = SqlStore::<Uuid, Profile>::connect_with(url, StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    // Back to what a database of the previous release has: no second-factor tables, no record
    // of 5 (it has 6, which came first).
    for sql in [
        "DROP TABLE mfa_challenges",
        "DROP TABLE mfa_recovery_codes",
        "DROP TABLE mfa_totp",
        "DELETE FROM axum_users_migrations WHERE version = 5",
    ] {
        exec(store.pool(), sql.into()).await;
    }
    let ada = Uuid::new_v4();
    exec(
        store.pool(),
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch) VALUES ('{ada}', 'ada@example.com', \
             'ada@example.com', '{HASH}', TRUE, FALSE, TRUE, '{{}}', 2)"
        ),
    )
    .await;
    let session = testing::new_session(&ada, 3600);
    store.create_session(&session).await.unwrap();

    assert_eq!(
        store.migrate().await.unwrap(),
        1,
        "only migration 5 is applied"
    );
    let user = store.get(&ada).await.unwrap().expect("the user is kept");
    assert_eq!(user.email_epoch, 2);
    let now = axum_users::now_unix();
    assert!(
        store.get_session(&session.id, now).await.unwrap().is_some(),
        "the session is kept"
    );

    let mfa = store.mfa_store().expect("second factors");
    assert!(mfa.begin_totp(&ada, "v1.sealed", now).await.unwrap());
    let codes = vec![axum_users::hash_token("a-code")];
    assert!(
        mfa.confirm_totp(&ada, "v1.sealed", 7, &codes)
            .await
            .unwrap()
    );
    assert!(!mfa.use_totp_step(&ada, 7).await.unwrap());
    assert!(mfa.use_totp_step(&ada, 8).await.unwrap());
    let token = axum_users::hash_token("an-mfa-token");
    let challenge = MfaChallenge::new(ada, "jwt", "password", now + 300);
    mfa.create_mfa_challenge(&token, &challenge).await.unwrap();
    assert!(store.delete(&ada).await.unwrap());
    assert!(
        mfa.get_totp(&ada).await.unwrap().is_none(),
        "gone with the user"
    );
    assert!(mfa.recovery_codes(&ada).await.unwrap().is_empty());
    assert!(mfa.get_mfa_challenge(&token, now).await.unwrap().is_none());
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_mfa_keeps_users_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_to_mfa(&format!("sqlite://{}", dir.path().join("v4.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_to_mfa_keeps_users_and_sessions() {
    let Some(server) = testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_mfa(&db.url).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mysql_upgrade_to_mfa_keeps_users_and_sessions() {
    let Some(server) = testing::service_url("TEST_MYSQL_URL", "MariaDB/MySQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_mfa(&db.url).await;
    db.drop_database().await.unwrap();
}
