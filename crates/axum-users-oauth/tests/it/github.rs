//! A fake GitHub on loopback following GitHub's documented endpoints and response shapes.

use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_users_oauth::{
    AuthorizationRequest, GitHub, HttpConfig, OAuthError, OAuthProvider, PkcePair, PkceVerifier,
};
use serde_json::json;
use url::Url;

const CLIENT_ID: &str = "Iv1.fake-client";
const CLIENT_SECRET: &str = "fake-secret-value";
const CODE: &str = "good-code";
const ACCESS_TOKEN: &str = "gho_fakeAccessToken123";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

#[derive(Default)]
struct Seen {
    user_agents: Vec<String>,
    token_forms: Vec<Vec<(String, String)>>,
    followed_redirect: bool,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Seen>>,
    /// Answer the token request form-encoded whatever the Accept header says.
    force_form: bool,
    /// `/user` answers a redirect to `/elsewhere` instead of the profile.
    redirect_user: bool,
    challenge: String,
}

fn record(fake: &Fake, headers: &HeaderMap) -> bool {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut seen = fake.seen.lock().expect("lock");
    match agent {
        Some(agent) => {
            seen.user_agents.push(agent);
            true
        }
        None => false,
    }
}

/// GitHub answers 403 to API requests without a User-Agent.
fn no_user_agent() -> Response {
    (StatusCode::FORBIDDEN, "Request forbidden by administrative rules. Please make sure your request has a User-Agent header").into_response()
}

fn pkce_matches(challenge: &str, verifier: Option<&String>) -> bool {
    verifier.is_some_and(|v| {
        axum_users_oauth::s256_challenge(&PkceVerifier::new(v.as_str())) == challenge
    })
}

async fn access_token(
    State(fake): State<Fake>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    if !record(&fake, &headers) {
        return no_user_agent();
    }
    fake.seen
        .lock()
        .expect("lock")
        .token_forms
        .push(form.clone());
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"))
        && !fake.force_form;
    let ok = field("client_id").as_deref() == Some(CLIENT_ID)
        && field("client_secret").as_deref() == Some(CLIENT_SECRET)
        && field("code").as_deref() == Some(CODE)
        && field("redirect_uri").as_deref() == Some(REDIRECT_URI)
        && pkce_matches(&fake.challenge, field("code_verifier").as_ref());
    // GitHub answers 200 with an error body for a bad code.
    let body = if ok {
        vec![
            ("access_token", ACCESS_TOKEN),
            ("scope", "user,user:email"),
            ("token_type", "bearer"),
        ]
    } else {
        vec![
            ("error", "bad_verification_code"),
            (
                "error_description",
                "The code passed is incorrect or expired.",
            ),
        ]
    };
    if wants_json {
        let map: serde_json::Map<String, serde_json::Value> = body
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        Json(map).into_response()
    } else {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(body)
            .finish();
        (
            [(header::CONTENT_TYPE, "application/x-www-form-urlencoded")],
            encoded,
        )
            .into_response()
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|value| {
            value == format!("Bearer {ACCESS_TOKEN}") || value == format!("token {ACCESS_TOKEN}")
        })
}

async fn user(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if !record(&fake, &headers) {
        return no_user_agent();
    }
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    if fake.redirect_user {
        return (StatusCode::FOUND, [(header::LOCATION, "/elsewhere")]).into_response();
    }
    Json(json!({
        "login": "octocat", "id": 583231, "node_id": "MDQ6VXNlcjE=", "type": "User",
        "name": "The Octocat", "email": null
    }))
    .into_response()
}

async fn user_emails(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if !record(&fake, &headers) {
        return no_user_agent();
    }
    if !authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    Json(json!([
        {"email": "old@example.com", "primary": false, "verified": false, "visibility": null},
        {"email": "octocat@private.example", "primary": true, "verified": true, "visibility": "private"}
    ]))
    .into_response()
}

async fn elsewhere(State(fake): State<Fake>) -> Json<serde_json::Value> {
    fake.seen.lock().expect("lock").followed_redirect = true;
    Json(json!({"id": 1, "email": "attacker@example.com"}))
}

async fn start_fake(fake: Fake) -> Url {
    let app = Router::new()
        .route("/login/oauth/access_token", post(access_token))
        .route("/user", get(user))
        .route("/user/emails", get(user_emails))
        .route("/elsewhere", get(elsewhere))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    Url::parse(&format!("http://{address}/")).expect("url")
}

fn fake(pkce: &PkcePair) -> Fake {
    Fake {
        seen: Arc::default(),
        force_form: false,
        redirect_user: false,
        challenge: pkce.challenge.clone(),
    }
}

fn github(base: &Url) -> GitHub {
    GitHub::new(CLIENT_ID, CLIENT_SECRET)
        .expect("github")
        .with_http(&HttpConfig::default().with_user_agent("axum-users-tests/1"))
        .expect("http")
        .with_base_url(base)
}

#[tokio::test]
async fn exchange_and_identity_against_fake_github() {
    let pkce = PkcePair::generate();
    let fake = fake(&pkce);
    let base = start_fake(fake.clone()).await;
    let provider: Arc<dyn OAuthProvider> = Arc::new(github(&base));

    let url = provider
        .authorization_url(&AuthorizationRequest::new(REDIRECT_URI, "st").with_pkce(&pkce))
        .expect("url");
    assert!(
        url.as_str()
            .starts_with(&format!("{base}login/oauth/authorize?"))
    );

    let token = provider
        .exchange_code(CODE, REDIRECT_URI, Some(&pkce.verifier))
        .await
        .expect("token");
    assert_eq!(token.access_token.secret(), ACCESS_TOKEN);
    assert_eq!(token.token_type.as_deref(), Some("bearer"));
    assert_eq!(token.expires_at, None);

    let identity = provider.identity(&token, None).await.expect("identity");
    assert_eq!(identity.account_id, "583231");
    assert_eq!(identity.email.as_deref(), Some("octocat@private.example"));
    assert!(identity.email_verified);

    let seen = fake.seen.lock().expect("lock");
    assert_eq!(seen.user_agents.len(), 3, "token, /user, /user/emails");
    assert!(
        seen.user_agents
            .iter()
            .all(|agent| agent == "axum-users-tests/1")
    );
    let form = &seen.token_forms[0];
    assert!(form.contains(&("grant_type".into(), "authorization_code".into())));
}

#[tokio::test]
async fn form_encoded_token_response_is_understood() {
    let pkce = PkcePair::generate();
    let mut fake = fake(&pkce);
    fake.force_form = true;
    let base = start_fake(fake).await;
    let token = github(&base)
        .exchange_code(CODE, REDIRECT_URI, Some(&pkce.verifier))
        .await
        .expect("token");
    assert_eq!(token.access_token.secret(), ACCESS_TOKEN);
    assert_eq!(token.scope.as_deref(), Some("user,user:email"));
}

#[tokio::test]
async fn error_body_with_status_200_and_wrong_verifier_are_rejections() {
    let pkce = PkcePair::generate();
    let base = start_fake(fake(&pkce)).await;
    let provider = github(&base);
    let bad_code = provider
        .exchange_code("bad-code", REDIRECT_URI, Some(&pkce.verifier))
        .await;
    assert!(
        matches!(&bad_code, Err(OAuthError::TokenRejected { error, .. }) if error == "bad_verification_code"),
        "{bad_code:?}"
    );
    let other = PkcePair::generate();
    let bad_verifier = provider
        .exchange_code(CODE, REDIRECT_URI, Some(&other.verifier))
        .await;
    assert!(matches!(
        bad_verifier,
        Err(OAuthError::TokenRejected { .. })
    ));
    // The provider's error message never contains the client secret.
    let message = format!(
        "{:?} {}",
        bad_code,
        bad_code
            .as_ref()
            .map(|_| String::new())
            .unwrap_or_else(|e| e.to_string())
    );
    assert!(!message.contains(CLIENT_SECRET));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let pkce = PkcePair::generate();
    let mut fake = fake(&pkce);
    fake.redirect_user = true;
    let base = start_fake(fake.clone()).await;
    let provider = github(&base);
    let token = provider
        .exchange_code(CODE, REDIRECT_URI, Some(&pkce.verifier))
        .await
        .expect("token");
    let result = provider.identity(&token, None).await;
    assert!(
        matches!(&result, Err(OAuthError::ProfileFetch(message)) if message.contains("302")),
        "{result:?}"
    );
    assert!(!fake.seen.lock().expect("lock").followed_redirect);
}

#[tokio::test]
async fn refresh_is_sent_to_the_token_endpoint_and_revoke_is_not_supported() {
    let pkce = PkcePair::generate();
    let fake = fake(&pkce);
    let base = start_fake(fake.clone()).await;
    let provider = github(&base);
    // The fake refuses refresh grants with GitHub's 200 + error body.
    let refreshed = provider
        .refresh(&axum_users_oauth::RefreshToken::new("ghr_refresh"))
        .await;
    assert!(matches!(refreshed, Err(OAuthError::TokenRejected { .. })));
    let form = fake
        .seen
        .lock()
        .expect("lock")
        .token_forms
        .last()
        .cloned()
        .expect("form");
    assert!(form.contains(&("grant_type".into(), "refresh_token".into())));
    assert!(form.contains(&("refresh_token".into(), "ghr_refresh".into())));
    assert!(matches!(
        provider.revoke("t").await,
        Err(OAuthError::NotSupported("revoke"))
    ));
}

#[tokio::test]
async fn unreachable_provider_is_an_http_error_and_timeouts_are_reported() {
    // A port nobody listens on: connection refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let base =
        Url::parse(&format!("http://{}/", listener.local_addr().expect("addr"))).expect("url");
    drop(listener);
    let result = github(&base).exchange_code(CODE, REDIRECT_URI, None).await;
    assert!(matches!(result, Err(OAuthError::Http(_))), "{result:?}");

    // A server that accepts but never answers: the total timeout fires.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = Url::parse(&format!("http://{}/", silent.local_addr().expect("addr"))).expect("url");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let provider = GitHub::new(CLIENT_ID, CLIENT_SECRET)
        .expect("github")
        .with_http(&HttpConfig::default().with_timeout(std::time::Duration::from_millis(300)))
        .expect("http")
        .with_base_url(&base);
    let result = provider.exchange_code(CODE, REDIRECT_URI, None).await;
    assert!(matches!(result, Err(OAuthError::Timeout)), "{result:?}");
}
