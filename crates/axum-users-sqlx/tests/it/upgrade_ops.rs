//! Migration 6 (times, audit log) upgrades a database written by the schema before it
//! (migrations 1 to 4) in place: users keep their passwords, flags and provider links, get a
//! creation time and their newest session as their last sign-in, and the listing and the
//! audit log work on the upgraded tables.

use axum_users::{
    AuditEvent, AuditQuery, AuditRecord, OAuthAccountStore, UserQuery, UserSort, UserStore, testing,
};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{SqlStore, StoreOptions};
use uuid::Uuid;

use crate::upgrade::{HASH, exec};

async fn upgrade_to_ops(url: &str) {
    let store = SqlStore::<Uuid>::connect_with(url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.migrate_to(4).await.unwrap(), 4, "the schema before 6");
    let (ada, bob, link) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for sql in [
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch) VALUES ('{ada}', 'Ada@example.com', \
             'ada@example.com', '{HASH}', TRUE, TRUE, TRUE, '{{}}', 2)"
        ),
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch) VALUES ('{bob}', 'bob@example.com', \
             'bob@example.com', '!unusable!x', FALSE, FALSE, FALSE, '{{}}', 0)"
        ),
        format!(
            "INSERT INTO oauth_accounts (id, user_id, oauth_name, access_token, expires_at, \
             refresh_token, account_id, account_email) VALUES ('{link}', '{bob}', 'github', \
             'sealed-token', NULL, NULL, '1234', 'bob@example.com')"
        ),
        format!(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, ip, \
             user_agent, method, backend) VALUES ('s1', '{ada}', 1767225600, 1767225600, \
             4102444800, NULL, NULL, 'password', 'jwt')"
        ),
        format!(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, expires_at, ip, \
             user_agent, method, backend) VALUES ('s2', '{ada}', 1767229200, 1767229200, \
             4102444800, NULL, NULL, 'password', 'jwt')"
        ),
    ] {
        exec(store.pool(), sql).await;
    }
    let before = axum_users::now_unix();
    assert!(
        store.migrate().await.unwrap() >= 1,
        "migration 6 (and any other not applied yet)"
    );
    let user = store.get(&ada).await.unwrap().expect("ada is kept");
    assert_eq!(user.hashed_password.0, HASH, "the password hash is kept");
    assert_eq!(
        (
            user.is_active,
            user.is_superuser,
            user.is_verified,
            user.email_epoch
        ),
        (true, true, true, 2)
    );
    let bob_user = store.get(&bob).await.unwrap().expect("bob is kept");
    assert!(!bob_user.is_active && !bob_user.hashed_password.is_usable());
    let links = store.list_oauth_accounts(&bob).await.unwrap();
    assert_eq!(links.len(), 1);
    assert_eq!(
        (links[0].oauth_name.as_str(), links[0].account_id.as_str()),
        ("github", "1234")
    );
    assert_eq!(
        store
            .get_by_oauth_account("github", "1234")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(bob),
        "the provider link still signs bob in"
    );

    let directory = store.directory().unwrap();
    let times = directory.user_times(&ada).await.unwrap().unwrap();
    assert!(
        (before - 5..=axum_users::now_unix() + 5).contains(&times.created_at),
        "existing users are stamped with the upgrade's time: {times:?}"
    );
    assert_eq!(times.updated_at, times.created_at);
    assert_eq!(
        times.last_login_at,
        Some(1767229200),
        "the newest session is the last sign-in"
    );
    let bob_times = directory.user_times(&bob).await.unwrap().unwrap();
    assert_eq!(bob_times.last_login_at, None, "no session, no sign-in");

    let query = UserQuery {
        sort: UserSort::Email,
        ..UserQuery::default()
    };
    let page = directory.list_users(&query).await.unwrap();
    let emails: Vec<&str> = page.items.iter().map(|(u, _)| u.email.as_str()).collect();
    assert_eq!(emails, ["Ada@example.com", "bob@example.com"]);
    let inactive = UserQuery {
        is_active: Some(false),
        ..UserQuery::default()
    };
    assert_eq!(
        directory.list_users(&inactive).await.unwrap().items.len(),
        1
    );

    let created = store
        .create(testing::new_user::<SqlStore<Uuid>>(&testing::unique_email()))
        .await
        .unwrap();
    assert!(directory.user_times(&created.id).await.unwrap().is_some());
    let log = store.audit_store().unwrap();
    let mut record = AuditRecord::new(AuditEvent::Logout);
    record.user_id = Some(ada.to_string());
    log.append(&record).await.unwrap();
    let mine = AuditQuery {
        user_id: Some(ada.to_string()),
        ..AuditQuery::default()
    };
    assert_eq!(log.list_events(&mine).await.unwrap().items, vec![record]);
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_ops_keeps_users_passwords_flags_and_links() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_to_ops(&format!("sqlite://{}", dir.path().join("v4.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_to_ops_keeps_users_passwords_flags_and_links() {
    let Some(server) = testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_ops(&db.url).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mysql_upgrade_to_ops_keeps_users_passwords_flags_and_links() {
    let Some(server) = testing::service_url("TEST_MYSQL_URL", "MariaDB/MySQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_ops(&db.url).await;
    db.drop_database().await.unwrap();
}
