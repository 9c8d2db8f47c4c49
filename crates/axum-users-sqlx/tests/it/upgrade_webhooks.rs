//! Migration 8 (webhook deliveries) upgrades a database written by the schema before it
//! (migrations 1 to 6) in place: the users, the audit log and the queued mail are kept, and
//! an event appended after the upgrade queues its deliveries.

use axum_users::{AuditEvent, AuditQuery, AuditRecord, OutboxStore, UserStore, testing};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{SqlStore, StoreOptions};
use uuid::Uuid;

use crate::upgrade::{HASH, exec};

async fn upgrade_to_webhooks(url: &str) {
    let store = SqlStore::<Uuid>::connect_with(url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.migrate_to(6).await.unwrap(), 6, "the schema before 8");
    let ada = Uuid::new_v4();
    for sql in [
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields, email_epoch, created_at, updated_at) VALUES ('{ada}', \
             'ada@example.com', 'ada@example.com', '{HASH}', TRUE, FALSE, TRUE, '{{}}', 0, \
             1767225600, 1767225600)"
        ),
        format!(
            "INSERT INTO audit_events (id, created_at, event_type, user_id, outcome) VALUES \
             ('0123456789abcdef0123456789abcdef', 1767225600, 'logout', '{ada}', 'success')"
        ),
        "INSERT INTO mail_outbox (id, recipient, kind, sealed, status, attempts, \
         next_attempt_at, locked_until, created_at) VALUES ('m1', 'ada@example.com', 'reset', \
         'v1.x', 'pending', 0, 1767225600, 0, 1767225600)"
            .to_owned(),
    ] {
        exec(store.pool(), sql).await;
    }
    assert!(
        store.migrate().await.unwrap() >= 1,
        "migration 8 (and any other not applied yet)"
    );
    let user = store.get(&ada).await.unwrap().expect("ada is kept");
    assert_eq!(user.hashed_password.0, HASH);
    let mine = AuditQuery {
        user_id: Some(ada.to_string()),
        ..AuditQuery::default()
    };
    let log = store.audit_store().unwrap();
    assert_eq!(log.list_events(&mine).await.unwrap().items.len(), 1);
    let mail = store.list_outbox(10).await.unwrap();
    assert_eq!(mail.len(), 1, "queued mail is kept");
    assert!(
        store
            .webhook_outbox()
            .list_outbox(10)
            .await
            .unwrap()
            .is_empty()
    );

    let routed = store.clone().with_webhooks(testing::conformance_routes());
    let mut record = AuditRecord::new(AuditEvent::PasswordChanged);
    record.user_id = Some(ada.to_string());
    routed.audit_store().unwrap().append(&record).await.unwrap();
    let queued = routed.webhook_outbox().list_outbox(10).await.unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].id, format!("msg_{}_all", record.id));
    assert_eq!(routed.webhook_outbox().depth().await.unwrap(), (1, 0));
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_webhooks_keeps_users_events_and_mail() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_to_webhooks(&format!("sqlite://{}", dir.path().join("v6.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_to_webhooks_keeps_users_events_and_mail() {
    let Some(server) = testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_webhooks(&db.url).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mysql_upgrade_to_webhooks_keeps_users_events_and_mail() {
    let Some(server) = testing::service_url("TEST_MYSQL_URL", "MariaDB/MySQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_webhooks(&db.url).await;
    db.drop_database().await.unwrap();
}
