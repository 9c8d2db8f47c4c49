//! The example application (`examples/display_name`) served on a real port and driven over
//! HTTP: register with a display name, log in, read and change it, link an OAuth account, and
//! delete the user as a superuser, which removes the OAuth account rows.

use axum_users::{
    Argon2Params, NewOAuthAccount, OAuthAccountStore, Privilege, Secret, UserCreate, UserStore,
    now_unix,
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

#[tokio::test]
async fn the_example_serves_the_api_with_display_name_and_oauth_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let users = app::users(&url, SECRET, FAST).await.unwrap();
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

    users
        .manager()
        .create(
            {
                let mut create = UserCreate::new("root@example.com", Secret::new("superpass"));
                create.is_superuser = Some(true);
                create.is_verified = Some(true);
                create
            },
            Privilege::Superuser,
            None,
        )
        .await
        .unwrap();
    let root = login(&base, "root@example.com", "superpass").await;
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
