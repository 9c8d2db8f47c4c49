//! Passkeys against the real server with `public_url` `http://localhost:PORT`, on SQLite and
//! (when set) PostgreSQL and MariaDB, driven by the software authenticator of
//! `axum_users::testing`: registration with the current password, the passwordless sign-in
//! (the extra origin of `passkey_origins` too), a replayed assertion, a foreign origin, a
//! counter set back (recorded as a possible clone), the passkey as the second factor of a TOTP
//! user, its removal (the current password; the other sessions end), and the audit events in
//! the database.

use axum_users::testing::SoftPasskey;
use axum_users::{AuditEvent, AuditQuery, UserStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::mfa::{PASSWORD, call, enrolled};
use crate::support::{
    Server, client, databases, detail, free_port, get_me, login, read, register, start_env,
    try_login,
};

async fn post(s: &Server, path: &str, body: Value) -> (StatusCode, Value) {
    read(client().post(s.url(path)).json(&body).send().await.unwrap()).await
}

async fn register_passkey(s: &Server, token: &str, key: &mut SoftPasskey) -> (StatusCode, Value) {
    let (status, options) = call(
        s,
        Method::POST,
        "/users/me/passkeys/register/start",
        token,
        json!({"current_password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let credential = key.register(&options);
    call(
        s,
        Method::POST,
        "/users/me/passkeys/register/finish",
        token,
        json!({"challenge_id": options["challenge_id"], "credential": credential}),
    )
    .await
}

async fn passwordless(s: &Server, key: &mut SoftPasskey) -> (Value, (StatusCode, Value)) {
    let (status, options) = post(s, "/auth/jwt/passkey/start", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let body = json!({"challenge_id": options["challenge_id"], "credential": key.assert(&options)});
    let answer = post(s, "/auth/jwt/passkey/finish", body.clone()).await;
    (body, answer)
}

#[tokio::test]
async fn passkeys_sign_in_without_a_password_and_as_the_second_factor() {
    for db in databases().await {
        let port = free_port();
        let origin = format!("http://localhost:{port}");
        let mut env = db.env();
        env.push(("AXUM_USERS_BIND", format!("127.0.0.1:{port}")));
        env.push(("AXUM_USERS_PUBLIC_URL", origin.clone()));
        env.push(("AXUM_USERS_PASSKEY_ORIGINS", "http://localhost:3000".into()));
        let s = start_env(&env);
        let email = "passkey-user@example.com";
        let (secret, codes) = enrolled(&s, email).await;
        let _ = secret;

        // A session through the recovery code, then a passkey for it.
        let (status, body) = try_login(&s, email, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let mfa_token = detail(&body)["mfa_token"].as_str().unwrap().to_owned();
        let (status, body) = post(
            &s,
            "/auth/jwt/mfa",
            json!({"mfa_token": mfa_token, "recovery_code": codes[0]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        let token = body["access_token"].as_str().unwrap().to_owned();
        let mut key = SoftPasskey::new(origin.clone());
        let (status, created) = register_passkey(&s, &token, &mut key).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {created}", db.name);
        assert_eq!(created["name"], "Passkey");
        let (_, mfa) = call(&s, Method::GET, "/users/me/mfa", &token, Value::Null).await;
        assert_eq!(mfa["passkeys"], 1, "{}", db.name);
        assert!(
            created.get("recovery_codes").is_none(),
            "a TOTP user has codes"
        );

        // A user whose first second factor is a passkey gets the codes with it, stored.
        let other = format!("first-{email}");
        register(&s, &other, PASSWORD).await;
        let other_token = login(&s, &other, PASSWORD).await;
        let mut other_key = SoftPasskey::new(origin.clone());
        let (status, first) = register_passkey(&s, &other_token, &mut other_key).await;
        assert_eq!(status, StatusCode::CREATED, "{}: {first}", db.name);
        let first_codes = first["recovery_codes"].as_array().unwrap().clone();
        assert_eq!(first_codes.len(), 10, "{}", db.name);
        let (_, body) = try_login(&s, &other, PASSWORD).await;
        assert_eq!(
            detail(&body)["methods"],
            json!(["recovery_code", "passkey"])
        );
        let (status, body) = post(
            &s,
            "/auth/jwt/mfa",
            json!({"mfa_token": detail(&body)["mfa_token"], "recovery_code": first_codes[0]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);

        // The second factor of a password sign-in.
        let (status, body) = try_login(&s, email, PASSWORD).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            detail(&body)["methods"],
            json!(["totp", "recovery_code", "passkey"]),
            "{}",
            db.name
        );
        let mfa_token = detail(&body)["mfa_token"].as_str().unwrap().to_owned();
        let (status, options) = post(
            &s,
            "/auth/jwt/mfa/passkey/start",
            json!({"mfa_token": mfa_token}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{options}");
        let finish = json!({
            "mfa_token": mfa_token,
            "challenge_id": options["challenge_id"],
            "credential": key.assert(&options),
        });
        let (status, body) = post(&s, "/auth/jwt/mfa/passkey/finish", finish.clone()).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        let (status, body) = post(&s, "/auth/jwt/mfa/passkey/finish", finish).await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("MFA_TOKEN_INVALID")),
            "{}: the pending sign-in is spent",
            db.name
        );

        // Passwordless: no second factor asked; a replay finds its challenge spent.
        let (replay, (status, body)) = passwordless(&s, &mut key).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        let passkey_session = body["access_token"].as_str().unwrap().to_owned();
        assert_eq!(get_me(&s, &passkey_session).await.0, StatusCode::OK);
        let (status, body) = post(&s, "/auth/jwt/passkey/finish", replay).await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("PASSKEY_CHALLENGE_INVALID")),
            "{}",
            db.name
        );

        // The allow-listed origin passes; another does not.
        key.origin = "http://localhost:3000".into();
        let (_, (status, body)) = passwordless(&s, &mut key).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        key.origin = "http://evil.example.com".into();
        let (_, (status, body)) = passwordless(&s, &mut key).await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("PASSKEY_INVALID")),
            "{}",
            db.name
        );
        key.origin = origin.clone();

        // A counter set back: refused, recorded as a possible clone.
        key.counter = 1;
        let (_, (status, body)) = passwordless(&s, &mut key).await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("PASSKEY_INVALID")),
            "{}",
            db.name
        );

        // Removing it asks the current password and ends the user's other sessions.
        let (_, list) = call(&s, Method::GET, "/users/me/passkeys", &token, Value::Null).await;
        let path = format!("/users/me/passkeys/{}", list[0]["id"].as_str().unwrap());
        let (status, body) = call(&s, Method::DELETE, &path, &token, Value::Null).await;
        assert_eq!(
            (status, detail(&body).clone()),
            (
                StatusCode::BAD_REQUEST,
                json!("UPDATE_USER_CURRENT_PASSWORD_REQUIRED")
            ),
            "{}: a session alone does not remove a passkey",
            db.name
        );
        let proof = json!({"current_password": PASSWORD});
        let (status, body) = call(&s, Method::DELETE, &path, &token, proof).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}: {body}", db.name);
        assert_eq!(get_me(&s, &token).await.0, StatusCode::OK, "{}", db.name);
        assert_eq!(
            get_me(&s, &passkey_session).await.0,
            StatusCode::UNAUTHORIZED,
            "{}: the other sessions end",
            db.name
        );

        let url = env
            .iter()
            .find(|(k, _)| *k == "AXUM_USERS_DATABASE_URL")
            .map_or_else(|| s.db_url(), |(_, v)| v.clone());
        let store = axum_users_sqlx::SqlStore::<uuid::Uuid>::connect(&url)
            .await
            .unwrap();
        let query = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        let events: Vec<AuditEvent> = store
            .audit_store()
            .unwrap()
            .list_events(&query)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| r.event)
            .collect();
        for expected in [
            AuditEvent::PasskeyAdded,
            AuditEvent::PasskeyUsed,
            AuditEvent::PasskeyRemoved,
            AuditEvent::LoginSucceeded {
                method: "passkey".into(),
            },
        ] {
            assert!(
                events.contains(&expected),
                "{}: {expected:?} in {events:?}",
                db.name
            );
        }
        assert!(
            events.iter().any(|e| matches!(
                e,
                AuditEvent::LoginFailed { method, reason }
                    if method == "passkey" && reason.as_str() == "passkey_clone_suspected"
            )),
            "{}: {events:?}",
            db.name
        );
        store.pool().close().await;
        s.stop();
        db.finish().await;
    }
}

#[tokio::test]
async fn a_public_url_on_an_ip_address_leaves_passkeys_off() {
    let s = Server::start_with(&[("AXUM_USERS_PUBLIC_URL", "http://127.0.0.1:9")]);
    let (status, body) = post(&s, "/auth/jwt/passkey/start", json!({})).await;
    assert_eq!(
        (status, detail(&body).clone()),
        (StatusCode::NOT_IMPLEMENTED, json!("PASSKEY_UNAVAILABLE"))
    );
}
