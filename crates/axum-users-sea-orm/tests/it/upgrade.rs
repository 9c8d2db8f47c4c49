//! Upgrades lose nothing: a database made by the first release's migrations (the base schema's
//! migration 1, and the example application's own migration after it) is migrated in place, and
//! every user, password hash, flag, custom column, provider link and access token is still
//! there, with `email_epoch` 0. A database of the last release (migrations 1 and 2) gains the
//! sessions and the mail outbox in place: its rows stay, its access tokens belong to no session
//! and still work, and sessions, session tokens and queued mail work on it at once. A database
//! of the previous release (migrations 1 to 4) gains second factors, the users' times, the
//! audit log and the webhook outbox in place: users get the upgrade's time as `created_at` and
//! their newest session as `last_login_at`, and TOTP, the listing and the log work at once.

use axum_users::{
    AccessTokenStore, AuditEvent, AuditQuery, AuditRecord, NewOutboxMessage, NewUser,
    OAuthAccountStore, OutboxStore, PasswordHash, UserChanges, UserQuery, UserSort, UserStore,
    hash_token, now_unix, testing,
};
use axum_users_sea_orm::SeaOrmStore;
use axum_users_sea_orm::migration::{
    AddEmailEpoch, AddMailOutbox, AddRareFilterIndexes, AddSessions, CreateBaseSchema, Migrator,
    MigratorTrait,
};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Query, SimpleExpr, Table};
use sea_orm_migration::MigrationName;
use sea_orm_migration::MigrationTrait;
use uuid::Uuid;

use crate::databases::{self, TestDb};
use crate::example_app::app;

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";

/// The base schema as the first release shipped it: migration 1 alone.
struct FirstRelease;

impl MigratorTrait for FirstRelease {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateBaseSchema::<Uuid>::default())]
    }
}

/// The base schema as the last release shipped it: migrations 1 and 2.
struct LastRelease;

impl MigratorTrait for LastRelease {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateBaseSchema::<Uuid>::default()),
            Box::new(AddEmailEpoch),
        ]
    }
}

/// The base schema as the previous release shipped it: migrations 1 to 4 (sessions, outbox).
struct PreviousRelease;

impl MigratorTrait for PreviousRelease {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateBaseSchema::<Uuid>::default()),
            Box::new(AddEmailEpoch),
            Box::new(AddSessions::<Uuid>::default()),
            Box::new(AddMailOutbox),
        ]
    }
}

/// The example application as it was: the first base migration, then its own.
struct FirstReleaseApp;

impl MigratorTrait for FirstReleaseApp {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateBaseSchema::<Uuid>::default()),
            Box::new(app::AddDisplayName),
        ]
    }
}

/// Drops what an earlier run left.
async fn clean(test: &TestDb) {
    for table in [
        "webhook_outbox",
        "audit_event",
        "mfa_challenge",
        "mfa_recovery_code",
        "mfa_totp",
        "mail_outbox",
        "session_rotated_token",
        "access_token",
        "session",
        "oauth_account",
        "user",
        "seaql_migrations",
    ] {
        let drop = Table::drop().table(table).if_exists().to_owned();
        test.db.execute(&drop).await.unwrap();
    }
}

async fn insert(test: &TestDb, table: &str, columns: &[&str], values: Vec<SimpleExpr>) {
    let columns: Vec<String> = columns.iter().map(|c| (*c).to_owned()).collect();
    let statement = Query::insert()
        .into_table(table.to_owned())
        .columns(columns)
        .values_panic(values)
        .to_owned();
    test.db.execute(&statement).await.unwrap();
}

const USER: &[&str] = &[
    "id",
    "email",
    "email_key",
    "hashed_password",
    "is_active",
    "is_superuser",
    "is_verified",
];
const LINK: &[&str] = &[
    "id",
    "user_id",
    "oauth_name",
    "access_token",
    "expires_at",
    "refresh_token",
    "account_id",
    "account_email",
];

/// Writes Ada (password, flags, a GitHub link, an access token) and Kim (no password, a
/// Google link) as the old schema holds them; returns their ids.
async fn old_rows(test: &TestDb, extra: Option<(&str, &str)>) -> (Uuid, Uuid, String) {
    let (ada, kim) = (Uuid::new_v4(), Uuid::new_v4());
    let mut columns = USER.to_vec();
    let mut values: Vec<SimpleExpr> = vec![
        ada.into(),
        "Ada@example.com".into(),
        "ada@example.com".into(),
        HASH.into(),
        false.into(),
        true.into(),
        true.into(),
    ];
    if let Some((column, value)) = extra {
        columns.push(column);
        values.push(value.into());
    }
    insert(test, "user", &columns, values).await;
    let kim_row: Vec<SimpleExpr> = vec![
        kim.into(),
        "kim@example.com".into(),
        "kim@example.com".into(),
        "!unusable!abc".into(),
        true.into(),
        false.into(),
        false.into(),
    ];
    insert(test, "user", USER, kim_row).await;
    let github: Vec<SimpleExpr> = vec![
        Uuid::new_v4().into(),
        ada.into(),
        "github".into(),
        "gho_access".into(),
        1767229200_i64.into(),
        "ghr_refresh".into(),
        "583231".into(),
        "ada@example.com".into(),
    ];
    insert(test, "oauth_account", LINK, github).await;
    let google: Vec<SimpleExpr> = vec![
        Uuid::new_v4().into(),
        kim.into(),
        "google".into(),
        "ya29_access".into(),
        Option::<i64>::None.into(),
        Option::<String>::None.into(),
        "1093".into(),
        "kim@example.com".into(),
    ];
    insert(test, "oauth_account", LINK, google).await;
    let token = hash_token("a-database-strategy-token");
    let row: Vec<SimpleExpr> = vec![token.clone().into(), ada.into(), 1767225600_i64.into()];
    insert(
        test,
        "access_token",
        &["token", "user_id", "created_at"],
        row,
    )
    .await;
    (ada, kim, token)
}

/// What every upgraded store must still hold.
async fn check<S>(store: &S, (ada, kim, token): (Uuid, Uuid, String))
where
    S: OAuthAccountStore + UserStore<Id = Uuid> + AccessTokenStore<Id = Uuid>,
{
    let user = store.get(&ada).await.unwrap().unwrap();
    assert_eq!(
        (
            user.email.as_str(),
            &user.hashed_password,
            user.is_active,
            user.is_superuser,
            user.is_verified,
            user.email_epoch
        ),
        (
            "Ada@example.com",
            &PasswordHash(HASH.into()),
            false,
            true,
            true,
            0
        )
    );
    assert_eq!(
        store
            .get_by_email("ADA@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(ada)
    );
    let kim_user = store.get(&kim).await.unwrap().unwrap();
    assert_eq!(
        (kim_user.hashed_password.is_usable(), kim_user.email_epoch),
        (false, 0)
    );
    let links = store.list_oauth_accounts(&ada).await.unwrap();
    assert_eq!(links.len(), 1);
    let link = &links[0];
    assert_eq!(
        (
            link.access_token.expose(),
            link.expires_at,
            link.refresh_token.as_ref().map(|t| t.expose()),
            link.account_id.as_str(),
        ),
        (
            "gho_access",
            Some(1767229200),
            Some("ghr_refresh"),
            "583231"
        )
    );
    assert_eq!(
        store
            .get_by_oauth_account("google", "1093")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(kim)
    );
    assert_eq!(store.find_token(&token, None).await.unwrap(), Some(ada));
    let mut change = UserChanges::default();
    change.email = Some("ada@lovelace.example".into());
    let moved = store.update(&ada, change).await.unwrap().unwrap();
    assert_eq!((moved.email_epoch, moved.is_active), (1, false));
}

async fn upgrade(test: TestDb) {
    clean(&test).await;
    FirstRelease::up(&test.db, None).await.unwrap();
    let rows = old_rows(&test, None).await;
    assert_eq!(
        Migrator::get_pending_migrations(&test.db)
            .await
            .unwrap()
            .len(),
        7,
        "email_epoch, sessions, mail outbox, second factors, times and audit log, webhooks, rare \
         filter indexes"
    );
    Migrator::up(&test.db, None).await.unwrap();
    let store: SeaOrmStore = SeaOrmStore::new(test.db.clone()).unwrap();
    check(&store, rows).await;

    // An application's own entity and migration on top of the base schema.
    clean(&test).await;
    FirstReleaseApp::up(&test.db, None).await.unwrap();
    let rows = old_rows(&test, Some(("display_name", "Ada"))).await;
    app::Migrator::up(&test.db, None).await.unwrap();
    assert!(
        app::Migrator::get_pending_migrations(&test.db)
            .await
            .unwrap()
            .is_empty()
    );
    let store = app::Store::new(test.db.clone()).unwrap();
    let ada = store.get(&rows.0).await.unwrap().unwrap();
    assert_eq!(ada.fields.display_name.as_deref(), Some("Ada"));
    check(&store, rows).await;
}

/// A database of the last release upgraded to sessions and the outbox.
async fn upgrade_to_sessions(test: TestDb) {
    clean(&test).await;
    LastRelease::up(&test.db, None).await.unwrap();
    let rows = old_rows(&test, None).await;
    let pending = Migrator::get_pending_migrations(&test.db).await.unwrap();
    assert_eq!(
        pending.len(),
        6,
        "sessions, the mail outbox, second factors, times and audit log, webhooks, rare filter \
         indexes"
    );
    Migrator::up(&test.db, None).await.unwrap();
    let store: SeaOrmStore = SeaOrmStore::new(test.db.clone()).unwrap();
    let (ada, _, token) = rows.clone();
    assert_eq!(
        store.find_session_token(&token, None).await.unwrap(),
        Some((ada, None)),
        "an access token of before belongs to no session and still works"
    );
    check(&store, rows).await;

    // Sessions work on the upgraded database, and revoking the others takes the old token.
    let sessions = store.session_store().unwrap();
    let session = testing::new_session(&ada, 3600);
    sessions.create_session(&session).await.unwrap();
    let new_token = hash_token("a-session-token");
    store
        .create_session_token(&new_token, &ada, &session.id, now_unix())
        .await
        .unwrap();
    let (user, found) = sessions
        .user_of_session(&session.id, now_unix())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((user.id, found), (ada, session.clone()));
    let gone = sessions
        .delete_sessions(&ada, None, Some(&session.id))
        .await
        .unwrap();
    assert!(gone.is_empty());
    assert_eq!(store.find_token(&token, None).await.unwrap(), None);
    assert_eq!(
        store.find_session_token(&new_token, None).await.unwrap(),
        Some((ada, Some(session.id.clone())))
    );

    // The outbox too.
    store
        .enqueue(NewOutboxMessage::new(
            "ada@example.com",
            "reset",
            "v1.x".into(),
        ))
        .await
        .unwrap();
    assert_eq!(store.list_outbox(10).await.unwrap().len(), 1);
}

/// A database of the previous release upgraded to second factors, times, the audit log and
/// webhooks.
async fn upgrade_to_second_factors_and_audit(test: TestDb) {
    clean(&test).await;
    PreviousRelease::up(&test.db, None).await.unwrap();
    let rows = old_rows(&test, None).await;
    let (ada, kim, _) = rows.clone();
    let session: Vec<SimpleExpr> = vec![
        "a-session-of-ada".into(),
        ada.into(),
        1767225000_i64.into(),
        1767225000_i64.into(),
        (now_unix() + 3600).into(),
        "password".into(),
        "jwt".into(),
    ];
    let columns = [
        "id",
        "user_id",
        "created_at",
        "last_seen_at",
        "expires_at",
        "method",
        "backend",
    ];
    insert(&test, "session", &columns, session).await;
    let pending = Migrator::get_pending_migrations(&test.db).await.unwrap();
    assert_eq!(
        pending.len(),
        4,
        "second factors, times and audit log, webhooks, rare filter indexes"
    );
    let before = now_unix();
    Migrator::up(&test.db, None).await.unwrap();
    let store: SeaOrmStore = SeaOrmStore::new(test.db.clone()).unwrap();
    check(&store, rows).await;

    // Existing users have times: the upgrade's, and their newest session as the last sign-in.
    let directory = store.directory().expect("the base user entity has times");
    let times = directory.user_times(&kim).await.unwrap().unwrap();
    assert!(times.created_at >= before && times.created_at <= now_unix());
    assert_eq!(times.last_login_at, None, "Kim never had a session");
    let times = directory.user_times(&ada).await.unwrap().unwrap();
    assert_eq!(times.last_login_at, Some(1767225000));
    let page = directory
        .list_users(&UserQuery {
            q: Some("example.com".into()),
            ..UserQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1, "Kim (Ada moved to lovelace.example)");

    // Second factors, the audit log and webhooks work on the upgraded database.
    let mfa = store.mfa_store().unwrap();
    assert!(mfa.begin_totp(&ada, "v1.sealed", now_unix()).await.unwrap());
    assert!(!mfa.get_totp(&ada).await.unwrap().unwrap().confirmed);
    let log = store.audit_store().unwrap();
    let mut record = AuditRecord::new(AuditEvent::Logout);
    record.user_id = Some(ada.to_string());
    log.append(&record).await.unwrap();
    let query = AuditQuery {
        user_id: Some(ada.to_string()),
        ..AuditQuery::default()
    };
    assert_eq!(log.list_events(&query).await.unwrap().items, vec![record]);
    let routed = store.clone().with_webhooks(testing::conformance_routes());
    routed
        .audit_store()
        .unwrap()
        .append(&AuditRecord::new(AuditEvent::Logout))
        .await
        .unwrap();
    assert_eq!(routed.webhook_outbox().depth().await.unwrap(), (1, 0));
    assert!(store.delete(&ada).await.unwrap());
    assert_eq!(mfa.get_totp(&ada).await.unwrap(), None);
}

/// The base schema as the release before the rare filters' indexes shipped it: every migration
/// but the last.
struct BeforeRareFilters;

impl MigratorTrait for BeforeRareFilters {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all = Migrator::migrations();
        assert_eq!(all.pop().unwrap().name(), AddRareFilterIndexes.name());
        all
    }
}

/// The addresses of every page of `query`, pages of one.
async fn walk(store: &SeaOrmStore, mut query: UserQuery) -> Vec<String> {
    let directory = store.directory().expect("the base user entity has times");
    query.limit = 1;
    let mut emails = Vec::new();
    loop {
        let page = directory.list_users(&query).await.unwrap();
        emails.extend(page.items.iter().map(|(u, _)| u.email.clone()));
        match page.next_cursor {
            Some(cursor) => query.after = Some(cursor),
            None => return emails,
        }
    }
}

/// A database of the release before gains the rare filters' indexes in place; its users
/// are kept and every rare filter finds exactly its users, in both orders, over pages.
async fn upgrade_to_rare_filters(test: TestDb) {
    clean(&test).await;
    BeforeRareFilters::up(&test.db, None).await.unwrap();
    let store: SeaOrmStore = SeaOrmStore::new(test.db.clone()).unwrap();
    // (address, active, superuser, verified)
    for (email, is_active, is_superuser, is_verified) in [
        ("ada@example.com", true, true, true),
        ("bob@example.com", false, false, true),
        ("cy@example.com", true, false, false),
        ("dee@example.com", false, true, false),
        ("eve@example.com", true, false, true),
    ] {
        store
            .create(NewUser {
                is_active,
                is_superuser,
                is_verified,
                ..testing::new_user::<SeaOrmStore>(email)
            })
            .await
            .unwrap();
    }
    let pending = Migrator::get_pending_migrations(&test.db).await.unwrap();
    assert_eq!(pending.len(), 1, "the rare filters' indexes");
    Migrator::up(&test.db, None).await.unwrap();

    for sort in [UserSort::Email, UserSort::EmailDesc, UserSort::CreatedAt] {
        let query = |f: fn(&mut UserQuery)| {
            let mut q = UserQuery {
                sort,
                ..UserQuery::default()
            };
            f(&mut q);
            q
        };
        let sorted = |mut found: Vec<String>| {
            if sort == UserSort::EmailDesc {
                found.reverse();
            } else if sort == UserSort::CreatedAt {
                found.sort();
            }
            found
        };
        let found = walk(&store, query(|q| q.is_superuser = Some(true))).await;
        assert_eq!(
            sorted(found),
            ["ada@example.com", "dee@example.com"],
            "{sort:?}"
        );
        let found = walk(&store, query(|q| q.is_active = Some(false))).await;
        assert_eq!(
            sorted(found),
            ["bob@example.com", "dee@example.com"],
            "{sort:?}"
        );
        let found = walk(&store, query(|q| q.is_verified = Some(false))).await;
        assert_eq!(
            sorted(found),
            ["cy@example.com", "dee@example.com"],
            "{sort:?}"
        );
        let found = walk(&store, query(|q| q.is_superuser = Some(false))).await;
        assert_eq!(found.len(), 3, "the common value: {sort:?}");
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
}

#[tokio::test]
async fn sqlite_upgrade_to_the_rare_filters_indexes_keeps_users_and_finds_them() {
    upgrade_to_rare_filters(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_upgrade_to_the_rare_filters_indexes_keeps_users_and_finds_them() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_upgrade5").await {
        upgrade_to_rare_filters(test).await;
    }
}

#[tokio::test]
async fn mariadb_upgrade_to_the_rare_filters_indexes_keeps_users_and_finds_them() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_upgrade5").await {
        upgrade_to_rare_filters(test).await;
    }
}

#[tokio::test]
async fn sqlite_upgrade_from_the_previous_release_adds_second_factors_and_the_audit_log() {
    upgrade_to_second_factors_and_audit(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_upgrade_from_the_previous_release_adds_second_factors_and_the_audit_log() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_upgrade4").await {
        upgrade_to_second_factors_and_audit(test).await;
    }
}

#[tokio::test]
async fn mariadb_upgrade_from_the_previous_release_adds_second_factors_and_the_audit_log() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_upgrade4").await {
        upgrade_to_second_factors_and_audit(test).await;
    }
}

#[tokio::test]
async fn sqlite_upgrade_from_the_last_release_adds_sessions_and_the_outbox() {
    upgrade_to_sessions(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_upgrade_from_the_last_release_adds_sessions_and_the_outbox() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_upgrade3").await {
        upgrade_to_sessions(test).await;
    }
}

#[tokio::test]
async fn mariadb_upgrade_from_the_last_release_adds_sessions_and_the_outbox() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_upgrade3").await {
        upgrade_to_sessions(test).await;
    }
}

#[tokio::test]
async fn sqlite_upgrade_from_the_first_schema_keeps_everything() {
    upgrade(databases::sqlite().await).await;
}

#[tokio::test]
async fn postgres_upgrade_from_the_first_schema_keeps_everything() {
    if let Some(test) = databases::server("TEST_POSTGRES_URL", "axum_users_seaorm_upgrade").await {
        upgrade(test).await;
    }
}

#[tokio::test]
async fn mariadb_upgrade_from_the_first_schema_keeps_everything() {
    if let Some(test) = databases::server("TEST_MYSQL_URL", "axum_users_seaorm_upgrade").await {
        upgrade(test).await;
    }
}
