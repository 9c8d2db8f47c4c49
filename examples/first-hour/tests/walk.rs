//! Starts the example's binary and walks it over HTTP as a newcomer would: register, verify
//! with the printed token, Bearer and cookie logins, `/hello`, GitHub sign-in against a fake
//! GitHub on loopback, the OpenAPI document and the docs page.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use axum::Json;
use axum::routing::{get, post};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// The example's process, stopped when the test ends.
struct App {
    child: Child,
    lines: mpsc::Receiver<String>,
    base: String,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl App {
    fn start(database: &str, github: &str, public_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_first-hour"))
            .env("APP_SECRET", "a secret of at least 32 bytes, for the test")
            .env("DATABASE_URL", database)
            .env("BIND", "127.0.0.1:0")
            .env("PUBLIC_URL", public_url)
            .env("GITHUB_CLIENT_ID", "first-hour")
            .env("GITHUB_CLIENT_SECRET", "not-a-secret")
            .env("GITHUB_BASE_URL", github)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut app = Self {
            child,
            lines,
            base: String::new(),
        };
        let listening = app.line("listening on ");
        app.base = listening.trim_start_matches("listening on ").to_owned();
        app
    }

    /// The next printed line that starts with `prefix`.
    fn line(&self, prefix: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no line `{prefix}...` from the example"));
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// GitHub's token and profile endpoints, as the example's GitHub client calls them.
async fn fake_github() -> String {
    let app = axum::Router::new()
        .route(
            "/login/oauth/access_token",
            post(|| async { Json(json!({"access_token": "gho_fake", "token_type": "bearer"})) }),
        )
        .route(
            "/user",
            get(|| async {
                Json(json!({
                    "id": 4242,
                    "login": "octocat",
                    "name": "Octo Cat",
                    "email": "octo@example.com",
                    "avatar_url": "https://avatars.example.com/4242"
                }))
            }),
        )
        .route(
            "/user/emails",
            get(|| async {
                Json(json!([{"email": "octo@example.com", "primary": true, "verified": true}]))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_example_serves_the_first_hour_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let app = App::start(&database, &fake_github().await, "http://localhost");
    let http = Client::new();

    let (status, ann) = read(
        http.post(app.url("/auth/register"))
            .json(&json!({"email": "ann@example.com", "password": "a long password", "display_name": "Ann"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ann}");
    assert!(ann["id"].is_i64(), "integer ids: {ann}");
    assert_eq!(ann["display_name"], "Ann");

    let login = |backend: &'static str, client: Client| {
        let url = app.url(&format!("/auth/{backend}/login"));
        async move {
            client
                .post(url)
                .form(&[
                    ("username", "ann@example.com"),
                    ("password", "a long password"),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let (_, body) = read(login("jwt", http.clone()).await).await;
    let bearer = body["access_token"].as_str().unwrap().to_owned();
    let hello = |client: &Client, bearer: Option<&str>| {
        let mut request = client.get(app.url("/hello"));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        async move { read(request.send().await.unwrap()).await }
    };
    assert_eq!(hello(&http, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        hello(&http, Some(&bearer)).await.0,
        StatusCode::FORBIDDEN,
        "not verified yet"
    );

    // The verification mail went out on register; the example prints its token.
    let printed = app.line("verify ann@example.com: ");
    let token = printed.rsplit(' ').next().unwrap();
    let (status, body) = read(
        http.post(app.url("/auth/verify"))
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["is_verified"].clone()),
        (StatusCode::OK, json!(true))
    );
    assert_eq!(
        hello(&http, Some(&bearer)).await,
        (StatusCode::OK, json!("Hello Ann"))
    );

    // The cookie backend, over plain HTTP: `Secure` is off for a localhost public URL.
    let cookies = browser();
    let response = login("cookie", cookies.clone()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let set_cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        set_cookie.starts_with("fastapiusersauth=") && !set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    assert_eq!(
        hello(&cookies, None).await,
        (StatusCode::OK, json!("Hello Ann"))
    );

    // GitHub sign-in against the fake: the profile's name fills the display name.
    let github = browser();
    let (status, body) = read(
        github
            .get(app.url("/auth/github/authorize"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let authorization = reqwest::Url::parse(body["authorization_url"].as_str().unwrap()).unwrap();
    assert_eq!(
        authorization.path(),
        "/login/oauth/authorize",
        "{authorization}"
    );
    let state = authorization
        .query_pairs()
        .find(|(name, _)| name == "state")
        .unwrap()
        .1
        .into_owned();
    let (status, body) = read(
        github
            .get(app.url("/auth/github/callback"))
            .query(&[("code", "a-code"), ("state", &state)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let octo = body["access_token"].as_str().unwrap();
    assert_eq!(
        hello(&http, Some(octo)).await,
        (StatusCode::OK, json!("Hello Octo Cat"))
    );

    let (status, document) = read(http.get(app.url("/openapi.json")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/auth/register",
        "/auth/cookie/login",
        "/auth/github/callback",
        "/users/me",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is documented");
    }
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    let token_url = schemes
        .values()
        .find_map(|s| s["flows"]["password"]["tokenUrl"].as_str())
        .unwrap();
    assert_eq!(token_url, "/auth/jwt/login", "Authorize works from /docs/");
    let docs = http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));
}

#[tokio::test]
async fn cookies_stay_secure_unless_the_public_url_is_localhost_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
    let app = App::start(&database, &fake_github().await, "http://127.0.0.1:3000");
    let http = Client::new();
    let (status, _) = read(
        http.post(app.url("/auth/register"))
            .json(&json!({"email": "bo@example.com", "password": "a long password"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let response = http
        .post(app.url("/auth/cookie/login"))
        .form(&[
            ("username", "bo@example.com"),
            ("password", "a long password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let set_cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
}
