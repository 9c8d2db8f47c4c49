//! Custom user fields through the HTTP API, kept by the SQLite store across connections.

use axum::body::Body;
use axum_users::{AxumUsers, UserFields, UserStore};
use axum_users_sqlx::SqlStore;
use http::{Request, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The application's fields (also the upgrade test's).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ProfileUpdate {
    #[serde(default)]
    display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = ProfileUpdate;

    fn apply(&mut self, update: ProfileUpdate) {
        if update.display_name.is_some() {
            self.display_name = update.display_name;
        }
    }
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn json_request(method: &str, uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn display_name_is_registered_updated_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fields.db").display());
    let store: SqlStore<uuid::Uuid, Profile> = SqlStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    let users = AxumUsers::builder(store.clone(), "0123456789abcdef0123456789abcdef-test")
        .argon2(axum_users::Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .build()
        .unwrap();
    let app = users.router();

    let (status, body) = send(
        &app,
        json_request(
            "POST",
            "/auth/register",
            None,
            json!({"email": "ann@example.com", "password": "annpass-long-2", "display_name": "Ann"}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["display_name"].clone()),
        (StatusCode::CREATED, json!("Ann"))
    );
    let login = Request::builder()
        .method("POST")
        .uri("/auth/jwt/login")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "username=ann%40example.com&password=annpass-long-2",
        ))
        .unwrap();
    let (_, body) = send(&app, login).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = send(
        &app,
        json_request(
            "PATCH",
            "/users/me",
            Some(&token),
            json!({"display_name": "Annie"}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["display_name"].clone()),
        (StatusCode::OK, json!("Annie"))
    );
    let (status, _) = send(
        &app,
        json_request(
            "PATCH",
            "/users/me",
            Some(&token),
            json!({"display_name": ["not", "a", "string"]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A fresh connection reads what was written.
    drop(app);
    let reopened: SqlStore<uuid::Uuid, Profile> = SqlStore::connect(&url).await.unwrap();
    let ann = reopened
        .get_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ann.fields,
        Profile {
            display_name: Some("Annie".into())
        }
    );
}
