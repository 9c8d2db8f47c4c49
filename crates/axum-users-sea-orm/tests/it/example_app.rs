//! The example application (`examples/display_name`) served on a real port and driven over
//! HTTP: register with a display name, log in, read and change it, link an OAuth account, and
//! delete the user as a superuser, which removes the OAuth account rows; refresh a session,
//! list and revoke it; queue a reset mail in the outbox and send it with the worker; enrol and
//! use a second factor, list users and read the audit log.

use std::sync::{Arc, Mutex};

use axum_users::{
    Argon2Params, AuditEvent, AuditRecord, NewOAuthAccount, OAuthAccountStore, OutboxStore,
    Privilege, Secret, UserCreate, UserStore, now_unix,
};
use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/display_name/app.rs"]
pub mod app;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

/// Sends a JSON request (or none) with an optional bearer token; the status and the JSON body.
async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn login(base: &str, email: &str, password: &str) -> String {
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login of {email}");
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Creates the superuser `root@example.com` and signs them in; their token.
async fn superuser(users: &axum_users::AxumUsers<app::Store, app::Hooks>, base: &str) -> String {
    let mut create = UserCreate::new("root@example.com", Secret::new("superpass"));
    create.is_superuser = Some(true);
    create.is_verified = Some(true);
    users
        .manager()
        .create(create, Privilege::Superuser, None)
        .await
        .unwrap();
    login(base, "root@example.com", "superpass").await
}

#[tokio::test]
async fn the_example_serves_the_api_with_display_name_and_oauth_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let app::App { users, .. } = app::users(&url, SECRET, FAST).await.unwrap();
    let store = users.manager().store().clone();
    let router = users.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let (status, registered) = call(
        reqwest::Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "ada@example.com", "password": "analytical", "display_name": "Ada"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["display_name"], "Ada");
    let id = registered["id"].as_str().unwrap().to_owned();

    let token = login(&base, "ada@example.com", "analytical").await;
    let (status, me) = call(
        reqwest::Method::GET,
        format!("{base}/users/me"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(
        (status, &me["display_name"]),
        (StatusCode::OK, &json!("Ada"))
    );

    let (status, me) = call(
        reqwest::Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"display_name": "Ada Lovelace"})),
    )
    .await;
    assert_eq!(
        (status, &me["display_name"]),
        (StatusCode::OK, &json!("Ada Lovelace"))
    );
    let (_, me) = call(
        reqwest::Method::GET,
        format!("{base}/users/me"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(me["display_name"], "Ada Lovelace", "the change is stored");

    let user_id: uuid::Uuid = id.parse().unwrap();
    store
        .add_oauth_account(
            &user_id,
            NewOAuthAccount {
                oauth_name: "github".into(),
                access_token: Secret::new("gho_".to_owned() + &"x".repeat(2000)),
                expires_at: Some(now_unix() + 3600),
                refresh_token: None,
                account_id: "583231".into(),
                account_email: "ada@example.com".into(),
            },
        )
        .await
        .unwrap();
    let linked = store
        .get_by_oauth_account("github", "583231")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(linked.id, user_id);
    assert_eq!(linked.fields.display_name.as_deref(), Some("Ada Lovelace"));
    let rows = || {
        app::oauth_account::Entity::find()
            .filter(app::oauth_account::Column::UserId.eq(user_id))
            .count(store.connection())
    };
    assert_eq!(rows().await.unwrap(), 1);

    let root = superuser(&users, &base).await;
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{base}/users/{id}"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        rows().await.unwrap(),
        0,
        "the OAuth account rows go with the user"
    );
    assert!(
        store
            .get_by_oauth_account("github", "583231")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.get(&user_id).await.unwrap().is_none());
}

/// Keeps what the outbox worker sent.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<(String, String, String)>>>);

impl axum_users_mail::Deliver for Sent {
    async fn deliver(
        &self,
        mail: &axum_users_mail::Mail,
    ) -> Result<(), axum_users_mail::SendError> {
        self.0.lock().unwrap().push((
            mail.to.clone(),
            mail.content.text.clone(),
            mail.token.expose().to_owned(),
        ));
        Ok(())
    }
}

async fn post_json(url: String, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    call(reqwest::Method::POST, url, token, Some(body)).await
}

#[tokio::test]
async fn the_example_keeps_sessions_and_sends_mail_through_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let app::App { users, outbox } = app::users(&url, SECRET, FAST).await.unwrap();
    let store = users.manager().store().clone();
    let router = users.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap()
    });
    let (status, _) = post_json(
        format!("{base}/auth/register"),
        None,
        json!({"email": "kim@example.com", "password": "analytical engine"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // A sign-in is a session with a refresh token; a refresh rotates it within the session.
    let response = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[
            ("username", "kim@example.com"),
            ("password", "analytical engine"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let login: Value = response.json().await.unwrap();
    let first = login["refresh_token"].as_str().unwrap().to_owned();
    let (status, refreshed) = post_json(
        format!("{base}/auth/jwt/refresh"),
        None,
        json!({"refresh_token": first}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let access = refreshed["access_token"].as_str().unwrap().to_owned();
    let second = refreshed["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first, "a refresh token is single-use");
    let (status, listed) = call(
        reqwest::Method::GET,
        format!("{base}/users/me/sessions"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "one sign-in, one session, however often refreshed"
    );
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[0]["ip"], "127.0.0.1");

    // Logout ends the session: its JWT and its refresh token are dead at once.
    let (status, _) = call(
        reqwest::Method::POST,
        format!("{base}/auth/jwt/logout"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        reqwest::Method::GET,
        format!("{base}/users/me"),
        Some(&access),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a revoked session's JWT");
    let (status, body) = post_json(
        format!("{base}/auth/jwt/refresh"),
        None,
        json!({"refresh_token": second}),
    )
    .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::UNAUTHORIZED, &json!("REFRESH_TOKEN_INVALID"))
    );

    // A reset request is queued in the database, sealed, and the worker sends it once.
    let (status, _) = post_json(
        format!("{base}/auth/forgot-password"),
        None,
        json!({"email": "kim@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The 202 goes out first and the row is written after it (see issue #13): wait for it.
    let mut queued = Vec::new();
    for _ in 0..100 {
        queued = store.list_outbox(10).await.unwrap();
        if !queued.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(queued.len(), 1);
    assert_eq!(
        (queued[0].kind.as_str(), queued[0].recipient.as_str()),
        ("reset", "kim@example.com")
    );
    let sent = Sent::default();
    let worker = outbox.worker(sent.clone(), axum_users_mail::RetryPolicy::default());
    assert_eq!(worker.run_once().await.unwrap(), 1);
    assert_eq!(worker.run_once().await.unwrap(), 0, "sent once");
    let sent = sent.0.lock().unwrap().clone();
    let (to, text, token) = &sent[0];
    assert_eq!(to, "kim@example.com");
    assert!(!token.is_empty() && text.contains(token.as_str()));
    assert!(
        !queued[0].sealed.contains(token.as_str()),
        "the queued body does not hold the token in clear"
    );
    assert!(
        store.list_outbox(10).await.unwrap().is_empty(),
        "a sent message is deleted"
    );
    let (status, _) = post_json(
        format!("{base}/auth/reset-password"),
        None,
        json!({"token": token, "password": "difference engine"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the mailed token resets the password"
    );
}

/// The code of the base32 `secret` for the step `offset` steps from now.
fn totp_code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        None,
        String::new(),
    );
    totp.generate(u64::try_from((now_unix() / 30 + offset) * 30).unwrap())
}

/// Second factors, the admin listing and the audit log over HTTP on the SeaORM store: TOTP
/// enrolment and confirmation, a sign-in that asks for the code and completes with it (a
/// replayed code refused), a recovery code spent once, the user's own security events, and
/// a superuser's `GET /users` in keyset pages and `GET /audit-events`.
#[tokio::test]
async fn the_example_serves_second_factors_the_listing_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let app::App { users, .. } = app::users(&url, SECRET, FAST).await.unwrap();
    let router = users.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let (status, _) = post_json(
        format!("{base}/auth/register"),
        None,
        json!({"email": "grace@example.com", "password": "cobol compiler", "display_name": "Grace"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = login(&base, "grace@example.com", "cobol compiler").await;
    let (status, begun) = post_json(
        format!("{base}/users/me/mfa/totp"),
        Some(&token),
        json!({"current_password": "cobol compiler"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{begun}");
    let secret = begun["secret"].as_str().unwrap().to_owned();
    let confirmation = totp_code(&secret, 0);
    let (status, confirmed) = post_json(
        format!("{base}/users/me/mfa/totp/confirm"),
        Some(&token),
        json!({"code": confirmation}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    let (_, status_now) = call(
        reqwest::Method::GET,
        format!("{base}/users/me/mfa"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status_now["totp"], true, "{status_now}");

    // A password sign-in now asks for the second factor.
    let first_step = || async {
        let response = reqwest::Client::new()
            .post(format!("{base}/auth/jwt/login"))
            .form(&[
                ("username", "grace@example.com"),
                ("password", "cobol compiler"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
        body["detail"]["mfa_token"].as_str().unwrap().to_owned()
    };
    let mfa_token = first_step().await;
    let (status, refused) = post_json(
        format!("{base}/auth/jwt/mfa"),
        None,
        json!({"mfa_token": mfa_token, "code": confirmation}),
    )
    .await;
    assert_eq!(
        (status, &refused["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE")),
        "the confirmation's code is spent"
    );
    let (status, signed_in) = post_json(
        format!("{base}/auth/jwt/mfa"),
        None,
        json!({"mfa_token": mfa_token, "code": totp_code(&secret, 1)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let grace = signed_in["access_token"].as_str().unwrap().to_owned();
    let (status, again) = post_json(
        format!("{base}/auth/jwt/mfa"),
        None,
        json!({"mfa_token": mfa_token, "code": totp_code(&secret, 1)}),
    )
    .await;
    assert_eq!(
        (status, &again["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID")),
        "an mfa token is spent once"
    );

    // A recovery code completes a sign-in once.
    for expected in [StatusCode::OK, StatusCode::BAD_REQUEST] {
        let (status, body) = post_json(
            format!("{base}/auth/jwt/mfa"),
            None,
            json!({"mfa_token": first_step().await, "recovery_code": recovery[0]}),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }

    // Her own security events, newest first, stored in the database.
    let (status, events) = call(
        reqwest::Method::GET,
        format!("{base}/users/me/security-events?limit=100"),
        Some(&grace),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    for kind in [
        "user.registered",
        "second_factor.added",
        "second_factor.used",
        "recovery_code.used",
        "login.succeeded",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // A superuser lists users in keyset pages and reads the whole log.
    for n in 0..3 {
        let (status, _) = post_json(
            format!("{base}/auth/register"),
            None,
            json!({"email": format!("listed{n}@example.com"), "password": "a long passphrase"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let root = superuser(&users, &base).await;
    let mut cursor: Option<String> = None;
    let mut listed = Vec::new();
    loop {
        let mut url = format!("{base}/users?q=listed&sort=-email&limit=2");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = call(reqwest::Method::GET, url, Some(&root), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for user in page["items"].as_array().unwrap() {
            assert!(user["created_at"].is_string(), "{user}");
            listed.push(user["email"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        listed,
        [
            "listed2@example.com",
            "listed1@example.com",
            "listed0@example.com"
        ]
    );
    let (status, page) = call(
        reqwest::Method::GET,
        format!("{base}/users?is_superuser=true"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert!(items[0]["last_login_at"].is_string(), "{page}");
    let (status, log) = call(
        reqwest::Method::GET,
        format!("{base}/audit-events?type=user.registered&limit=100"),
        Some(&root),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(
        log["items"].as_array().unwrap().len(),
        4,
        "Grace and the three listed users registered"
    );
    // Retention: a record older than the bound goes, the rest stays.
    let mut old = AuditRecord::new(AuditEvent::Logout);
    old.at = now_unix() - 3 * 86_400;
    users
        .manager()
        .store()
        .audit_store()
        .unwrap()
        .append(&old)
        .await
        .unwrap();
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(users.manager().prune_audit(day).await.unwrap(), 1);
    assert_eq!(users.manager().prune_audit(day).await.unwrap(), 0);
}
