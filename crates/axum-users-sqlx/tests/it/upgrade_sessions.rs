//! Migration 3 (sessions) upgrades a database of the current schema (migrations 1 and 2) in
//! place: users and access tokens are kept, the old tokens belong to no session and still work,
//! and sessions and session tokens work on the upgraded tables.

use axum_users::{AccessTokenStore, SessionStore, UserStore, testing};
use axum_users_sqlx::{SqlStore, StoreOptions};
use uuid::Uuid;

use crate::custom_fields::Profile;
use crate::upgrade::{Backend, HASH, exec, first_release_schema, on_fresh_database};

/// How many migrations a fresh database gets.
async fn migrations_in_all() -> usize {
    let fresh = SqlStore::<Uuid, Profile>::connect("sqlite::memory:")
        .await
        .unwrap();
    fresh.migrate().await.unwrap()
}

async fn upgrade_to_sessions(url: String) {
    let store = SqlStore::<Uuid, Profile>::connect_with(&url, StoreOptions::default())
        .await
        .unwrap();
    let mut schema = first_release_schema(store.dialect());
    schema.push("ALTER TABLE users ADD COLUMN email_epoch BIGINT NOT NULL DEFAULT 0".into());
    schema.push(
        "INSERT INTO axum_users_migrations (version, applied_at) VALUES (2, 1767225600)".into(),
    );
    for sql in schema {
        exec(store.pool(), sql).await;
    }
    let ada = Uuid::new_v4();
    let token_hash = axum_users::hash_token("a-token-from-before-sessions");
    for sql in [
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch) VALUES ('{ada}', 'Ada@example.com', \
             'ada@example.com', '{HASH}', TRUE, FALSE, TRUE, '{{}}', 4)"
        ),
        format!(
            "INSERT INTO access_tokens (token_hash, user_id, created_at) \
             VALUES ('{token_hash}', '{ada}', 1767225600)"
        ),
    ] {
        exec(store.pool(), sql).await;
    }

    assert_eq!(
        store.migrate().await.unwrap(),
        migrations_in_all().await - 2,
        "only the migrations after 2 are applied"
    );
    let user = store.get(&ada).await.unwrap().expect("the user is kept");
    assert_eq!((user.email_epoch, user.is_verified), (4, true));
    assert_eq!(
        store.find_session_token(&token_hash, None).await.unwrap(),
        Some((ada, None)),
        "an old token survives and belongs to no session"
    );

    let session = testing::new_session(&ada, 3600);
    store.create_session(&session).await.unwrap();
    let new_token = axum_users::hash_token("a-token-of-a-session");
    store
        .create_session_token(&new_token, &ada, &session.id, axum_users::now_unix())
        .await
        .unwrap();
    assert_eq!(
        store.find_session_token(&new_token, None).await.unwrap(),
        Some((ada, Some(session.id.clone())))
    );
    // Rotated-out refresh hashes are kept in their own table, per session.
    let current = session.refresh.current.clone().unwrap();
    let next = axum_users::RefreshState {
        current: Some(axum_users::hash_token("the-next-refresh-token")),
        previous: Some(current.clone()),
        rotated_at: Some(axum_users::now_unix()),
    };
    let retired = axum_users::hash_token("a-retired-refresh-token");
    assert!(
        store
            .swap_refresh(&session.id, &current, &next, Some(&retired))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .find_session_by_refresh(&retired, axum_users::now_unix())
            .await
            .unwrap()
            .map(|s| s.id),
        Some(session.id.clone())
    );
    assert_eq!(
        store
            .delete_sessions(&ada, Some(&session.id), None)
            .await
            .unwrap(),
        vec![session.id]
    );
    assert_eq!(store.find_token(&new_token, None).await.unwrap(), None);
    assert_eq!(
        store.find_token(&token_hash, None).await.unwrap(),
        Some(ada),
        "revoking one session leaves tokens of no session alone"
    );
    store.delete_sessions(&ada, None, None).await.unwrap();
    assert_eq!(
        store.find_token(&token_hash, None).await.unwrap(),
        None,
        "revoking all sessions (reset, deactivation) reaches the old token too"
    );
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_sessions_keeps_users_and_tokens() {
    on_fresh_database(Backend::Sqlite, upgrade_to_sessions).await;
}

#[tokio::test]
async fn postgres_upgrade_to_sessions_keeps_users_and_tokens() {
    on_fresh_database(Backend::Postgres, upgrade_to_sessions).await;
}

#[tokio::test]
async fn mysql_upgrade_to_sessions_keeps_users_and_tokens() {
    on_fresh_database(Backend::MySql, upgrade_to_sessions).await;
}
