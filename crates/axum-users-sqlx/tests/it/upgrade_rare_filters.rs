//! Migration 10 (the listing's rare filters) upgrades a database written by the schema before
//! it (migrations 1 to 9) in place: the users are kept, the new indexes exist, and every rare
//! filter, in both orders and over pages, finds exactly its users.

use axum_users::{UserDirectory, UserQuery, UserSort, testing};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{Dialect, SqlPool, SqlStore, StoreOptions};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::upgrade::{HASH, exec};

/// The addresses of every page of `query`, pages of one.
async fn walk(store: &SqlStore<Uuid>, mut query: UserQuery) -> Vec<String> {
    query.limit = 1;
    let mut emails = Vec::new();
    loop {
        let page = UserDirectory::list_users(store, &query).await.unwrap();
        emails.extend(page.items.iter().map(|(u, _)| u.email.clone()));
        match page.next_cursor {
            Some(cursor) => query.after = Some(cursor),
            None => return emails,
        }
    }
}

async fn upgrade_to_rare_filters(url: &str) {
    let store = SqlStore::<Uuid>::connect_with(url, StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        store.migrate_to(9).await.unwrap(),
        8,
        "the schema before 10"
    );
    // (address, active, superuser, verified, created at)
    let users = [
        ("ada@example.com", true, true, true, 30),
        ("bob@example.com", false, false, true, 10),
        ("cy@example.com", true, false, false, 20),
        ("dee@example.com", false, true, false, 40),
        ("eve@example.com", true, false, true, 50),
    ];
    for (email, active, superuser, verified, at) in users {
        exec(
            store.pool(),
            format!(
                "INSERT INTO users (id, email, email_key, hashed_password, is_active, \
                 is_superuser, is_verified, fields, email_epoch, created_at, updated_at) VALUES \
                 ('{}', '{email}', '{email}', '{HASH}', {active}, {superuser}, {verified}, \
                 '{{}}', 0, {at}, {at})",
                Uuid::new_v4()
            ),
        )
        .await;
    }
    assert_eq!(store.migrate().await.unwrap(), 1, "migration 10");

    let names = "('users_superusers_created_at', 'users_superusers_email', \
                 'users_inactive_created_at', 'users_inactive_email', \
                 'users_unverified_created_at', 'users_unverified_email')";
    let indexes = match store.dialect() {
        Dialect::Sqlite => {
            format!("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN {names}")
        }
        Dialect::Postgres => format!(
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = 'users' AND indexname IN {names}"
        ),
        Dialect::MySql => format!(
            "SELECT COUNT(DISTINCT index_name) FROM information_schema.statistics WHERE \
             table_schema = DATABASE() AND table_name = 'users' AND index_name IN {names}"
        ),
    };
    let indexes = AssertSqlSafe(indexes);
    let count: i64 = match store.pool() {
        SqlPool::Sqlite(p) => sqlx::query_scalar(indexes).fetch_one(p).await,
        SqlPool::Postgres(p) => sqlx::query_scalar(indexes).fetch_one(p).await,
        SqlPool::MySql(p) => sqlx::query_scalar(indexes).fetch_one(p).await,
        _ => unreachable!("every driver is compiled in for the tests"),
    }
    .unwrap();
    assert_eq!(count, 6, "two indexes per rare filter");

    for (sort, superusers, inactive, unverified) in [
        (
            UserSort::CreatedAt,
            ["ada@example.com", "dee@example.com"],
            ["bob@example.com", "dee@example.com"],
            ["cy@example.com", "dee@example.com"],
        ),
        (
            UserSort::EmailDesc,
            ["dee@example.com", "ada@example.com"],
            ["dee@example.com", "bob@example.com"],
            ["dee@example.com", "cy@example.com"],
        ),
    ] {
        let query = |f: fn(&mut UserQuery)| {
            let mut q = UserQuery {
                sort,
                ..UserQuery::default()
            };
            f(&mut q);
            q
        };
        let found = walk(&store, query(|q| q.is_superuser = Some(true))).await;
        assert_eq!(found, superusers, "{sort:?}");
        let found = walk(&store, query(|q| q.is_active = Some(false))).await;
        assert_eq!(found, inactive, "{sort:?}");
        let found = walk(&store, query(|q| q.is_verified = Some(false))).await;
        assert_eq!(found, unverified, "{sort:?}");
        // The common values still walk the listing's index, rare ones combine.
        let found = walk(&store, query(|q| q.is_superuser = Some(false))).await;
        assert_eq!(found.len(), 3, "{sort:?}");
        let found = walk(
            &store,
            query(|q| {
                q.is_active = Some(false);
                q.is_superuser = Some(true);
            }),
        )
        .await;
        assert_eq!(found, ["dee@example.com"], "{sort:?}");
    }
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_upgrade_to_rare_filters_keeps_users_and_finds_them() {
    let dir = tempfile::tempdir().unwrap();
    upgrade_to_rare_filters(&format!("sqlite://{}", dir.path().join("v9.db").display())).await;
}

#[tokio::test]
async fn postgres_upgrade_to_rare_filters_keeps_users_and_finds_them() {
    let Some(server) = testing::service_url("TEST_POSTGRES_URL", "PostgreSQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_rare_filters(&db.url).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn mysql_upgrade_to_rare_filters_keeps_users_and_finds_them() {
    let Some(server) = testing::service_url("TEST_MYSQL_URL", "MariaDB/MySQL") else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade_to_rare_filters(&db.url).await;
    db.drop_database().await.unwrap();
}
