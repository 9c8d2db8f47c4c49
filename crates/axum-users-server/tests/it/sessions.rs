//! Sessions end to end, on the real server over HTTP: every revocation reaches a JWT, a
//! database token and a Redis token (SQLite, and PostgreSQL / MariaDB when set; Redis when
//! TEST_REDIS_URL is set); 20 simultaneous refreshes of one token; two nodes on one PostgreSQL
//! see a revocation at once; `prune`.

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const PASSWORD: &str = "s3ssion-pass";

/// A server on `db` with the `db` backend, and the `redis` one when Redis is configured.
fn start(db: &TestDb, extra: &[(&'static str, String)]) -> (Server, Vec<&'static str>) {
    let mut env = db.env();
    env.push(("AXUM_USERS_DB_TOKENS", "true".into()));
    let mut backends = vec!["jwt", "db"];
    if let Some(redis) = axum_users::testing::service_url("TEST_REDIS_URL", "Redis (sessions)") {
        env.push(("AXUM_USERS_REDIS_URL", redis));
        env.push((
            "AXUM_USERS_REDIS_KEY_PREFIX",
            format!("sessions_e2e_{}:", uuid::Uuid::new_v4().simple()),
        ));
        backends.push("redis");
    }
    env.extend(extra.iter().cloned());
    (start_env(&env), backends)
}

/// The server's command line, on its database.
fn cli(s: &Server, db_env: Vec<(&'static str, String)>) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(s.dir.path()).env_clear();
    for (k, v) in test_env(s.dir.path())
        .into_iter()
        .chain(db_env.into_iter().map(|(k, v)| (k.to_owned(), v)))
    {
        command.env(k, v);
    }
    command
}

/// A superuser made with the CLI against the server's database, logged in.
async fn root(s: &Server, db: &TestDb) -> String {
    let out = cli(s, db.env())
        .args(["create-superuser", "--email", "root@example.com"])
        .env("AXUM_USERS_SUPERUSER_PASSWORD", "rootpass")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    login(s, "root@example.com", "rootpass").await
}

/// One token per backend.
async fn tokens(s: &Server, backends: &[&str], email: &str, password: &str) -> Vec<String> {
    let mut out = Vec::new();
    for backend in backends {
        out.push(login_via(s, backend, email, password).await);
    }
    out
}

async fn all_revoked(s: &Server, backends: &[&str], tokens: &[String], what: &str) {
    for (backend, token) in backends.iter().zip(tokens) {
        assert_eq!(
            get_me(s, token).await.0,
            StatusCode::UNAUTHORIZED,
            "{what} revokes the {backend} token"
        );
    }
}

async fn delete_as(s: &Server, path: &str, token: &str) -> StatusCode {
    client()
        .delete(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn refresh(s: &Server, token: &str) -> (StatusCode, Value) {
    post_json(
        &client(),
        s.url("/auth/jwt/refresh"),
        json!({"refresh_token": token}),
    )
    .await
}

/// Forgot password, then reset it to `password` with the mailed token.
async fn reset_password(s: &Server, email: &str, password: &str) {
    post_json(
        &client(),
        s.url("/auth/forgot-password"),
        json!({"email": email}),
    )
    .await;
    let reset = s.wait_token(email, 1).await;
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": password}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn sign_in(s: &Server, email: &str, password: &str) -> Value {
    let (status, body) = try_login(s, email, password).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn every_revocation_reaches_jwt_database_and_redis_tokens() {
    for db in databases().await {
        let (s, backends) = start(&db, &[]);
        let root = root(&s, &db).await;
        let email = "eve@example.com";
        let user = register(&s, email, PASSWORD).await;
        let id = user["id"].as_str().unwrap().to_owned();

        // Logout ends the current session, for every strategy.
        for backend in &backends {
            let token = login_via(&s, backend, email, PASSWORD).await;
            assert_eq!(
                logout_via(&s, backend, &token).await,
                StatusCode::NO_CONTENT
            );
            assert_eq!(
                get_me(&s, &token).await.0,
                StatusCode::UNAUTHORIZED,
                "{}: logout revokes the {backend} token",
                db.name
            );
        }

        // A password change ends every other session; the one making it stays.
        let others = tokens(&s, &backends, email, PASSWORD).await;
        let keeper = login(&s, email, PASSWORD).await;
        let (status, body) = patch(
            &s,
            "/users/me",
            &keeper,
            json!({"password": "n3w-pass", "current_password": PASSWORD}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        all_revoked(&s, &backends, &others, "a password change").await;
        assert_eq!(get_me(&s, &keeper).await.0, StatusCode::OK, "{}", db.name);

        // A reset ends all of them.
        let others = tokens(&s, &backends, email, "n3w-pass").await;
        reset_password(&s, email, PASSWORD).await;
        all_revoked(&s, &backends, &others, "a reset").await;
        assert_eq!(get_me(&s, &keeper).await.0, StatusCode::UNAUTHORIZED);

        // Deactivating ends all of them: reactivated, the old tokens stay dead.
        let others = tokens(&s, &backends, email, PASSWORD).await;
        for active in [false, true] {
            let (status, _) = patch(
                &s,
                &format!("/users/{id}"),
                &root,
                json!({"is_active": active}),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
        all_revoked(&s, &backends, &others, "a deactivation").await;

        // A superuser's "sign out everywhere", and the list they see.
        let others = tokens(&s, &backends, email, PASSWORD).await;
        let (status, list) = read(
            client()
                .get(s.url(&format!("/users/{id}/sessions")))
                .bearer_auth(&root)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), backends.len(), "{list}");
        let status = delete_as(&s, &format!("/users/{id}/sessions"), &root).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        all_revoked(&s, &backends, &others, "an admin's revocation").await;

        // Deleting the user: their tokens die with them.
        let others = tokens(&s, &backends, email, PASSWORD).await;
        let status = delete_as(&s, &format!("/users/{id}"), &root).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        all_revoked(&s, &backends, &others, "a deletion").await;
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn twenty_simultaneous_refreshes_never_fork_the_session() {
    for db in databases().await {
        if db.name == "MariaDB/MySQL" {
            db.finish().await;
            continue;
        }
        let (s, _) = start(
            &db,
            &[("AXUM_USERS_REFRESH_REUSE_GRACE_SECONDS", "2".into())],
        );
        register(&s, "zed@example.com", PASSWORD).await;
        let login = sign_in(&s, "zed@example.com", PASSWORD).await;
        let token = login["refresh_token"].as_str().unwrap().to_owned();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (url, token) = (s.url("/auth/jwt/refresh"), token.clone());
                tokio::spawn(async move {
                    post_json(&client(), url, json!({"refresh_token": token})).await
                })
            })
            .collect();
        let mut issued = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            assert!(
                status == StatusCode::OK || status == StatusCode::UNAUTHORIZED,
                "{}: never a 500: {status} {body}",
                db.name
            );
            if status == StatusCode::OK {
                assert_eq!(
                    get_me(&s, body["access_token"].as_str().unwrap()).await.0,
                    StatusCode::OK
                );
                issued.push(body["refresh_token"].as_str().unwrap().to_owned());
            }
        }
        assert!(!issued.is_empty(), "{}: some refresh succeeded", db.name);
        // One live chain: every token the burst handed out but the last one was rotated out
        // (each grace refresh retires the current token it replaces), so at most one of them
        // refreshes, and presenting a retired one is reuse that ends the session.
        let (mut live, mut reused) = (0, 0);
        for t in &issued {
            let (status, body) = refresh(&s, t).await;
            if status == StatusCode::OK {
                live += 1;
                continue;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {body}", db.name);
            if detail(&body) == &json!("REFRESH_TOKEN_REUSED") {
                reused += 1;
            }
        }
        assert!(live <= 1, "{}: the session did not fork ({live})", db.name);
        if issued.len() > 1 {
            assert!(reused >= 1, "{}: a retired token is reuse", db.name);
            assert_eq!(
                get_me(&s, login["access_token"].as_str().unwrap()).await.0,
                StatusCode::UNAUTHORIZED,
                "{}: reuse revoked the session",
                db.name
            );
        }
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn two_nodes_on_one_postgresql_see_a_revocation_at_once() {
    let db = databases()
        .await
        .into_iter()
        .find(|db| db.name == "PostgreSQL");
    let Some(db) = db else {
        println!("SKIPPED: two nodes on PostgreSQL (set TEST_POSTGRES_URL)");
        return;
    };
    let prefix = format!("sessions_nodes_{}:", uuid::Uuid::new_v4().simple());
    let shared = [("AXUM_USERS_REDIS_KEY_PREFIX", prefix)];
    let (a, backends) = start(&db, &shared);
    let (b, _) = start(&db, &shared);
    register(&a, "nodes@example.com", PASSWORD).await;
    let on_a = tokens(&a, &backends, "nodes@example.com", PASSWORD).await;
    let keeper = login(&b, "nodes@example.com", PASSWORD).await;
    for token in &on_a {
        assert_eq!(get_me(&b, token).await.0, StatusCode::OK);
    }
    // Sign out everywhere else, on B: A's tokens die on A at once.
    let status = delete_as(&b, "/users/me/sessions", &keeper).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    all_revoked(&a, &backends, &on_a, "a revocation on the other node").await;
    assert_eq!(get_me(&a, &keeper).await.0, StatusCode::OK);
    // And a JWT logout on A is seen on B.
    assert_eq!(logout_via(&a, "jwt", &keeper).await, StatusCode::NO_CONTENT);
    assert_eq!(get_me(&b, &keeper).await.0, StatusCode::UNAUTHORIZED);
    drop(a);
    drop(b);
    db.finish().await;
}

#[tokio::test]
async fn prune_removes_expired_sessions_and_says_how_many() {
    let s = Server::start_with(&[
        ("AXUM_USERS_REFRESH_LIFETIME_SECONDS", "1"),
        ("AXUM_USERS_DB_TOKENS", "true"),
    ]);
    register(&s, "old@example.com", PASSWORD).await;
    let jwt = login(&s, "old@example.com", PASSWORD).await;
    let db = login_via(&s, "db", "old@example.com", PASSWORD).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(
        get_me(&s, &jwt).await.0,
        StatusCode::UNAUTHORIZED,
        "the session expired"
    );
    let out = cli(&s, Vec::new()).arg("prune").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().next().unwrap_or_default().trim(),
        "removed 2 expired sessions and 1 access tokens",
        "the JWT's and the database token's sessions, and the token"
    );
    let _ = db;
}

#[tokio::test]
async fn a_reset_deletes_a_database_token_of_no_session() {
    use axum_users::AccessTokenStore;
    for db in databases().await {
        let (s, _) = start(&db, &[]);
        let email = "old@example.com";
        let user = register(&s, email, PASSWORD).await;
        let id: uuid::Uuid = user["id"].as_str().unwrap().parse().unwrap();
        // A database token as written before migration 3: no session.
        let url = db
            .env()
            .into_iter()
            .find(|(k, _)| *k == "AXUM_USERS_DATABASE_URL")
            .map_or_else(|| s.db_url(), |(_, v)| v);
        let store: axum_users_sqlx::SqlStore =
            axum_users_sqlx::SqlStore::connect(&url).await.unwrap();
        let raw = format!("legacy-{}", uuid::Uuid::new_v4().simple());
        store
            .create_token(&axum_users::hash_token(&raw), &id, axum_users::now_unix())
            .await
            .unwrap();
        assert_eq!(get_me(&s, &raw).await.0, StatusCode::OK, "{}", db.name);
        reset_password(&s, email, "an0ther-pass").await;
        assert_eq!(
            get_me(&s, &raw).await.0,
            StatusCode::UNAUTHORIZED,
            "{}: the reset reached the token of no session",
            db.name
        );
        store.pool().close().await;
        drop(s);
        db.finish().await;
    }
}
