//! Upgrades lose nothing: a database written by the first release's schema (migration 1, its
//! DDL copied here as it shipped) is migrated in place, and every user, password hash, flag,
//! custom field, provider link and access token is still there, with `email_epoch` 0.

use axum_users::{
    AccessTokenStore, OAuthAccountStore, PasswordHash, User, UserChanges, UserStore, testing,
};
use axum_users_sqlx::testing::TempDatabase;
use axum_users_sqlx::{Dialect, SqlPool, SqlStore, StoreOptions};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::custom_fields::Profile;

pub(crate) const HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

/// Migration 1 as the first release made it, with UUID keys, and its record.
pub(crate) fn first_release_schema(dialect: Dialect) -> Vec<String> {
    let (pk, fk) = match dialect {
        Dialect::Sqlite => ("CHAR(36) PRIMARY KEY NOT NULL", "CHAR(36) NOT NULL"),
        _ => ("VARCHAR(36) PRIMARY KEY NOT NULL", "VARCHAR(36) NOT NULL"),
    };
    let table = match dialect {
        Dialect::MySql => " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        _ => "",
    };
    vec![
        "CREATE TABLE IF NOT EXISTS axum_users_migrations \
         (version BIGINT PRIMARY KEY NOT NULL, applied_at BIGINT NOT NULL)"
            .into(),
        format!(
            "CREATE TABLE users (
                id {pk},
                email VARCHAR(320) NOT NULL,
                email_key VARCHAR(320) NOT NULL,
                hashed_password VARCHAR(1024) NOT NULL,
                is_active BOOLEAN NOT NULL,
                is_superuser BOOLEAN NOT NULL,
                is_verified BOOLEAN NOT NULL,
                fields TEXT NOT NULL,
                CONSTRAINT users_email_key_unique UNIQUE (email_key)
            ){table}"
        ),
        format!(
            "CREATE TABLE oauth_accounts (
                id {pk},
                user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                oauth_name VARCHAR(100) NOT NULL,
                access_token TEXT NOT NULL,
                expires_at BIGINT,
                refresh_token TEXT,
                account_id VARCHAR(320) NOT NULL,
                account_email VARCHAR(320) NOT NULL,
                CONSTRAINT oauth_accounts_provider_unique UNIQUE (oauth_name, account_id)
            ){table}"
        ),
        "CREATE INDEX oauth_accounts_user_id ON oauth_accounts (user_id)".into(),
        format!(
            "CREATE TABLE access_tokens (
                token_hash VARCHAR(64) PRIMARY KEY NOT NULL,
                user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
                created_at BIGINT NOT NULL
            ){table}"
        ),
        "CREATE INDEX access_tokens_user_id ON access_tokens (user_id)".into(),
        "CREATE INDEX access_tokens_created_at ON access_tokens (created_at)".into(),
        "INSERT INTO axum_users_migrations (version, applied_at) VALUES (1, 1767225600)".into(),
    ]
}

/// The migrations after the first release's: 2 (e-mail epochs), 3 (sessions), 4 (the mail
/// outbox), 5 (second factors), 6 (times, audit log), 8 (webhooks), 9 (passkeys) and 10 (the
/// listing's rare filters).
fn store_migrations_after_the_first() -> usize {
    8
}

pub(crate) async fn exec(pool: &SqlPool, sql: String) {
    let sql = AssertSqlSafe(sql);
    match pool {
        SqlPool::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        SqlPool::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        SqlPool::MySql(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        _ => unreachable!("every driver is compiled in for the tests"),
    }
    .unwrap();
}

async fn upgrade(url: String) {
    let options = StoreOptions::default().with_max_connections(4);
    let store = SqlStore::<Uuid, Profile>::connect_with(&url, options)
        .await
        .unwrap();
    for sql in first_release_schema(store.dialect()) {
        exec(store.pool(), sql).await;
    }
    let (ada, oauth_only) = (Uuid::new_v4(), Uuid::new_v4());
    let (github, google) = (Uuid::new_v4(), Uuid::new_v4());
    let token_hash = axum_users::hash_token("a-database-strategy-token");
    for sql in [
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields) VALUES ('{ada}', 'Ada@example.com', 'ada@example.com', \
             '{HASH}', FALSE, TRUE, TRUE, '{{\"display_name\":\"Ada\"}}')"
        ),
        format!(
            "INSERT INTO users (id, email, email_key, hashed_password, is_active, is_superuser, \
             is_verified, fields) VALUES ('{oauth_only}', 'kim@example.com', 'kim@example.com', \
             '!unusable!abc', TRUE, FALSE, FALSE, '{{}}')"
        ),
        format!(
            "INSERT INTO oauth_accounts (id, user_id, oauth_name, access_token, expires_at, \
             refresh_token, account_id, account_email) VALUES ('{github}', '{ada}', 'github', \
             'gho_access', 1767229200, 'ghr_refresh', '583231', 'ada@example.com')"
        ),
        format!(
            "INSERT INTO oauth_accounts (id, user_id, oauth_name, access_token, expires_at, \
             refresh_token, account_id, account_email) VALUES ('{google}', '{oauth_only}', \
             'google', 'ya29_access', NULL, NULL, '1093', 'kim@example.com')"
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
        store_migrations_after_the_first(),
        "only the new migrations (2, 3, 4, 5, 6, 8, 9, 10) are applied"
    );
    assert_eq!(store.migrate().await.unwrap(), 0);

    let expected = User {
        id: ada,
        email: "Ada@example.com".into(),
        hashed_password: PasswordHash(HASH.into()),
        is_active: false,
        is_superuser: true,
        is_verified: true,
        email_epoch: 0,
        fields: Profile {
            display_name: Some("Ada".into()),
        },
    };
    assert_eq!(store.get(&ada).await.unwrap().as_ref(), Some(&expected));
    assert_eq!(
        store
            .get_by_email("ADA@example.com")
            .await
            .unwrap()
            .as_ref(),
        Some(&expected),
        "the e-mail key still finds the user"
    );
    let kim = store.get(&oauth_only).await.unwrap().unwrap();
    assert_eq!(
        (kim.hashed_password.is_usable(), kim.email_epoch),
        (false, 0)
    );

    let links = store.list_oauth_accounts(&ada).await.unwrap();
    assert_eq!(links.len(), 1);
    let link = &links[0];
    assert_eq!(
        (
            link.id,
            link.oauth_name.as_str(),
            link.access_token.expose(),
            link.expires_at,
            link.refresh_token.as_ref().map(|t| t.expose()),
            link.account_id.as_str(),
            link.account_email.as_str(),
        ),
        (
            github,
            "github",
            "gho_access",
            Some(1767229200),
            Some("ghr_refresh"),
            "583231",
            "ada@example.com"
        )
    );
    assert_eq!(
        store
            .get_by_oauth_account("google", "1093")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(oauth_only)
    );
    assert_eq!(
        store.find_token(&token_hash, None).await.unwrap(),
        Some(ada),
        "access tokens survive"
    );

    // The new column works on the upgraded table.
    let mut change = UserChanges::default();
    change.email = Some("ada@lovelace.example".into());
    let moved = store.update(&ada, change).await.unwrap().unwrap();
    assert_eq!((moved.email_epoch, moved.is_active), (1, false));

    // Migration 4: the mail outbox exists on the upgraded database and works.
    testing::outbox_store(&store).await;
    store.pool().close().await;
}

/// A database an upgrade test writes its old schema into: a SQLite file, or a fresh database
/// on the PostgreSQL or MariaDB/MySQL server of `TEST_POSTGRES_URL` / `TEST_MYSQL_URL`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// Runs `upgrade` on the URL of a new, empty database of `backend` (SKIPPED without the
/// server's URL), then drops it.
pub(crate) async fn on_fresh_database<F, Fut>(backend: Backend, upgrade: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (variable, name) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            upgrade(format!("sqlite://{}", dir.path().join("old.db").display())).await;
            return;
        }
        Backend::Postgres => ("TEST_POSTGRES_URL", "PostgreSQL"),
        Backend::MySql => ("TEST_MYSQL_URL", "MariaDB/MySQL"),
    };
    let Some(server) = testing::service_url(variable, name) else {
        return;
    };
    let db = TempDatabase::create(&server).await.unwrap();
    upgrade(db.url.clone()).await;
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn sqlite_upgrade_from_the_first_schema_keeps_everything() {
    on_fresh_database(Backend::Sqlite, upgrade).await;
}

#[tokio::test]
async fn postgres_upgrade_from_the_first_schema_keeps_everything() {
    on_fresh_database(Backend::Postgres, upgrade).await;
}

#[tokio::test]
async fn mysql_upgrade_from_the_first_schema_keeps_everything() {
    on_fresh_database(Backend::MySql, upgrade).await;
}
