//! The admin API and the audit log against the real server, on SQLite and (when set)
//! PostgreSQL and MariaDB: listing with filters and keyset pages, creating users with and
//! without a password, the linked accounts, the audit events and who may read them.

use std::collections::BTreeSet;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{
    BIN, Server, client, databases, detail, login, patch, post_json, read, register, start_env,
    test_env, try_login,
};

/// A superuser made with the CLI on the server's database, logged in.
pub(crate) async fn root(s: &Server, env: &[(&str, String)]) -> String {
    let mut command = Command::new(BIN);
    command.current_dir(s.dir.path()).env_clear();
    for (k, v) in test_env(s.dir.path()) {
        command.env(k, v);
    }
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command
        .args([
            "create-superuser",
            "--email",
            "root@example.com",
            "--password",
            "rootpass",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    login(s, "root@example.com", "rootpass").await
}

async fn delete(s: &Server, path: &str, token: &str) -> StatusCode {
    let answer = client()
        .delete(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    answer.status()
}

async fn get(s: &Server, path: &str, token: &str) -> (StatusCode, Value) {
    read(
        client()
            .get(s.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn emails(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn superusers_list_filter_and_page_through_users() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let admin = root(&s, &env).await;
        let mut made = BTreeSet::new();
        for n in 0..5 {
            let email = format!("lister{n}@example.com");
            if n == 4 {
                // Times are whole seconds: the newest must be newer, not tied.
                tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
            }
            register(&s, &email, "listerpass-1").await;
            made.insert(email);
        }
        // Pages of 2 by e-mail: 2 + 2 + 1, in order, every user once, no cursor after the last.
        let mut seen = Vec::new();
        let mut path = "/users?sort=email&q=LISTER&limit=2".to_owned();
        for round in 0.. {
            assert!(round < 5, "{}: the pages never end", db.name);
            let (status, page) = get(&s, &path, &admin).await;
            assert_eq!(status, StatusCode::OK, "{}: {page}", db.name);
            assert!(page["items"].as_array().unwrap().len() <= 2);
            seen.extend(emails(&page));
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!("/users?sort=email&q=LISTER&limit=2&cursor={cursor}")
                }
                None => break,
            }
        }
        assert_eq!(
            seen,
            made.iter().cloned().collect::<Vec<_>>(),
            "{}",
            db.name
        );

        let (_, page) = get(&s, "/users?sort=-created_at&limit=1", &admin).await;
        assert_eq!(
            emails(&page),
            ["lister4@example.com"],
            "{}: newest first",
            db.name
        );
        let user = &page["items"][0];
        for field in ["created_at", "updated_at"] {
            assert!(
                user[field].as_str().unwrap().ends_with('Z'),
                "{}: {user}",
                db.name
            );
        }
        assert!(
            user["last_login_at"].is_null(),
            "{}: never signed in",
            db.name
        );
        assert!(user.get("hashed_password").is_none());

        login(&s, "lister1@example.com", "listerpass-1").await;
        let (_, page) = get(&s, "/users?q=lister1", &admin).await;
        assert!(
            page["items"][0]["last_login_at"].is_string(),
            "{}: {page}",
            db.name
        );
        let (_, page) = get(&s, "/users?is_superuser=true", &admin).await;
        assert_eq!(emails(&page), ["root@example.com"], "{}", db.name);
        let (_, page) = get(&s, "/users?created_after=2100-01-01T00:00:00Z", &admin).await;
        assert_eq!(emails(&page), Vec::<String>::new(), "{}", db.name);
        let (_, page) = get(
            &s,
            "/users?created_before=2100-01-01T00:00:00Z&q=lister",
            &admin,
        )
        .await;
        assert_eq!(emails(&page).len(), 5, "{}", db.name);

        // Bad parameters are 422s naming them; a cursor of another sort is no cursor.
        let (_, first) = get(&s, "/users?sort=email&limit=1", &admin).await;
        let email_cursor = first["next_cursor"].as_str().unwrap().to_owned();
        for (query, name) in [
            ("limit=101", "limit"),
            ("limit=0", "limit"),
            ("is_active=maybe", "is_active"),
            ("sort=id", "sort"),
            ("cursor=garbage", "cursor"),
            (
                &format!("sort=created_at&cursor={email_cursor}") as &str,
                "cursor",
            ),
            ("created_after=yesterday", "created_after"),
        ] {
            let (status, body) = get(&s, &format!("/users?{query}"), &admin).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {query}: {body}",
                db.name
            );
            assert_eq!(detail(&body)[0]["loc"], json!(["query", name]), "{query}");
        }
        // `GET /users/{id}` as a superuser carries the times; `/users/me` does not.
        let id = user["id"].as_str().unwrap();
        let (status, one) = get(&s, &format!("/users/{id}"), &admin).await;
        assert_eq!(status, StatusCode::OK);
        assert!(one["created_at"].is_string(), "{one}");
        let (_, me) = get(&s, "/users/me", &admin).await;
        assert!(
            me.get("created_at").is_none(),
            "the reference's shape: {me}"
        );
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn superusers_create_users_with_or_without_a_password() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let admin = root(&s, &env).await;
        let c = client();
        let (status, made) = read(
            c.post(s.url("/users"))
                .bearer_auth(&admin)
                .json(&json!({"email": "Made@Example.com", "password": "made-passphrase-1", "is_verified": true}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {made}", db.name);
        assert_eq!(
            (made["is_verified"].clone(), made["created_at"].is_string()),
            (json!(true), true)
        );
        login(&s, "made@example.com", "made-passphrase-1").await;
        let (status, body) = read(
            c.post(s.url("/users"))
                .bearer_auth(&admin)
                .json(&json!({"email": "made@example.com"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(detail(&body), "REGISTER_USER_ALREADY_EXISTS");
        let (status, body) = read(
            c.post(s.url("/users"))
                .bearer_auth(&admin)
                .json(&json!({"email": "weak@example.com", "password": "ab"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(detail(&body)["code"], "REGISTER_INVALID_PASSWORD");

        // Without a password: no sign-in until the mailed set-password link is used.
        let (status, invited) = read(
            c.post(s.url("/users"))
                .bearer_auth(&admin)
                .json(&json!({"email": "invited@example.com", "send_set_password_link": true}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{}: {invited}", db.name);
        assert_eq!(
            try_login(&s, "invited@example.com", "anything-at-all")
                .await
                .0,
            StatusCode::BAD_REQUEST
        );
        let token = s.wait_token("invited@example.com", 1).await;
        let (status, _) = post_json(
            &c,
            s.url("/auth/reset-password"),
            json!({"token": token, "password": "invited-passphrase-1"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", db.name);
        login(&s, "invited@example.com", "invited-passphrase-1").await;

        // The admin's acts are in the log with the admin as actor.
        let id = invited["id"].as_str().unwrap();
        let (_, events) = get(
            &s,
            &format!("/audit-events?user_id={id}&type=admin.user_created"),
            &admin,
        )
        .await;
        let root_id = get(&s, "/users/me", &admin).await.1["id"].clone();
        assert_eq!(
            events["items"][0]["actor_id"], root_id,
            "{}: {events}",
            db.name
        );
        // Every superuser act on the user names the superuser, whichever route: PATCH, the
        // sessions it ends, DELETE of the sessions (review R6).
        let invited_token = login(&s, "invited@example.com", "invited-passphrase-1").await;
        let (status, _) = patch(
            &s,
            &format!("/users/{id}"),
            &admin,
            json!({"password": "admin-set-passphrase-1"}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", db.name);
        login(&s, "invited@example.com", "admin-set-passphrase-1").await;
        assert_eq!(
            delete(&s, &format!("/users/{id}/sessions"), &admin).await,
            StatusCode::NO_CONTENT
        );
        for kind in ["admin.user_updated", "password.changed", "session.revoked"] {
            let (_, events) = get(
                &s,
                &format!("/audit-events?user_id={id}&type={kind}"),
                &admin,
            )
            .await;
            let items = events["items"].as_array().unwrap();
            assert!(!items.is_empty(), "{}: {kind}: {events}", db.name);
            for item in items {
                assert_eq!(item["actor_id"], root_id, "{}: {kind}: {item}", db.name);
            }
        }
        // The user's own view says a superuser acted, not which one nor from where (R8).
        let mine = login(&s, "invited@example.com", "admin-set-passphrase-1").await;
        let (_, own) = get(&s, "/users/me/security-events", &mine).await;
        let by_admin: Vec<&Value> = own["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "admin.user_updated")
            .collect();
        assert!(!by_admin.is_empty(), "{}: {own}", db.name);
        for event in by_admin {
            assert_eq!(
                (&event["actor_id"], &event["ip"], &event["user_agent"]),
                (&json!("superuser"), &Value::Null, &Value::Null),
                "{}: {event}",
                db.name
            );
        }
        // The user's own "sign out everywhere else" is recorded with their client, no actor.
        login(&s, "invited@example.com", "admin-set-passphrase-1").await;
        assert_eq!(
            delete(&s, "/users/me/sessions", &mine).await,
            StatusCode::NO_CONTENT
        );
        let (_, events) = get(
            &s,
            &format!("/audit-events?user_id={id}&type=session.revoked"),
            &admin,
        )
        .await;
        let own: Vec<&Value> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor_id"].is_null())
            .collect();
        assert!(!own.is_empty(), "{}: {events}", db.name);
        for event in own {
            assert_eq!(event["ip"], "127.0.0.1", "{}: {event}", db.name);
        }
        let (status, _) = get(&s, "/users/me", &invited_token).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "the PATCH ended the session"
        );
        let (_, accounts) = get(&s, &format!("/users/{id}/oauth-accounts"), &admin).await;
        assert_eq!(accounts, json!([]));
        let (status, _) = get(
            &s,
            &format!("/users/{}/oauth-accounts", uuid::Uuid::new_v4()),
            &admin,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            delete(&s, &format!("/users/{id}"), &admin).await,
            StatusCode::NO_CONTENT
        );
        let (_, events) = get(
            &s,
            &format!("/audit-events?user_id={id}&type=admin.user_deleted"),
            &admin,
        )
        .await;
        assert_eq!(
            events["items"][0]["actor_id"], root_id,
            "{}: {events}",
            db.name
        );
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_non_superuser_cannot_list_users_or_read_others_events() {
    let s = Server::start();
    let ann = register(&s, "ann@example.com", "annpass-long-1").await;
    let bob = register(&s, "bob@example.com", "bobpass-long-1").await;
    let token = login(&s, "ann@example.com", "annpass-long-1").await;
    let bob_id = bob["id"].as_str().unwrap();
    for path in [
        "/users".to_owned(),
        "/audit-events".to_owned(),
        format!("/audit-events?user_id={bob_id}"),
        format!("/users/{bob_id}/oauth-accounts"),
    ] {
        let (status, body) = get(&s, &path, &token).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, _) = read(
        client()
            .post(s.url("/users"))
            .bearer_auth(&token)
            .json(&json!({"email": "new@example.com"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = read(client().get(s.url("/users")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    try_login(&s, "bob@example.com", "wrong-password-1").await;
    // Asking for bob's events through one's own route still answers only one's own.
    let (status, mine) = get(
        &s,
        &format!("/users/me/security-events?user_id={bob_id}"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = mine["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|e| e["user_id"] == ann["id"]), "{mine}");
}

#[tokio::test]
async fn the_audit_log_records_sign_ins_and_holds_no_secret() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let admin = root(&s, &env).await;
        // Times are whole seconds: a second between the acts keeps "newest first" defined.
        let user = register(&s, "audited@example.com", "audited-pass-1").await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let secret_password = "a-Wrong-Secret-77";
        try_login(&s, "audited@example.com", secret_password).await;
        try_login(&s, "nobody@example.com", secret_password).await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let token = login(&s, "audited@example.com", "audited-pass-1").await;
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let r = client()
            .post(s.url("/auth/jwt/logout"))
            .bearer_auth(&token)
            .header("user-agent", "audit-test/1")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let token = login(&s, "audited@example.com", "audited-pass-1").await;
        let (status, mine) = get(&s, "/users/me/security-events?limit=2", &token).await;
        assert_eq!(status, StatusCode::OK, "{}: {mine}", db.name);
        let kinds: Vec<&str> = mine["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["login.succeeded", "logout"],
            "{}: newest first",
            db.name
        );
        let cursor = mine["next_cursor"].as_str().unwrap();
        let (_, older) = get(
            &s,
            &format!("/users/me/security-events?limit=100&cursor={cursor}"),
            &token,
        )
        .await;
        let kinds: Vec<&str> = older["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["login.succeeded", "login.failed", "user.registered"],
            "{}",
            db.name
        );
        let failed = &older["items"][1];
        assert_eq!(
            (failed["outcome"].as_str(), failed["reason"].as_str()),
            (Some("failure"), Some("bad_password"))
        );
        assert_eq!(failed["user_id"], user["id"]);
        assert_eq!(failed["detail"], "password");

        let (_, unknown) = get(&s, "/audit-events?type=login.failed", &admin).await;
        assert!(
            unknown["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["reason"] == "unknown_user" && e["user_id"].is_null()),
            "{}: {unknown}",
            db.name
        );
        let (status, body) = get(&s, "/audit-events?type=nope", &admin).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (_, everything) = get(&s, "/audit-events?limit=100", &admin).await;
        let text = everything.to_string();
        for secret in [
            secret_password,
            "audited-pass-1",
            token.as_str(),
            "nobody@example.com",
        ] {
            assert!(
                !text.contains(secret),
                "{}: the log holds {secret}",
                db.name
            );
        }
        drop(s);
        db.finish().await;
    }
}
