//! A self-hosted GitLab on loopback: its "confirmed" e-mail is believed only when configured.

use axum::routing::{get, post};
use axum::{Json, Router};
use axum_users_oauth::{GitLab, OAuthProvider};
use serde_json::{Value, json};
use url::Url;

async fn start_fake_gitlab() -> Url {
    let app = Router::new()
        .route(
            "/oauth/token",
            post(|| async { Json(json!({"access_token": "glpat-1", "token_type": "Bearer"})) }),
        )
        .route(
            "/api/v4/user",
            get(|| async {
                Json(json!({
                    "id": 7, "email": "dev@git.example.org",
                    "confirmed_at": "2024-01-01T00:00:00Z",
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Url::parse(&base).expect("url")
}

async fn verified(provider: &GitLab) -> (Value, bool) {
    let token = provider
        .exchange_code("code", "http://127.0.0.1:9/cb", None)
        .await
        .expect("token");
    let identity = provider.identity(&token, None).await.expect("identity");
    (json!(identity.email), identity.email_verified)
}

#[tokio::test]
async fn self_hosted_gitlab_is_trusted_only_when_configured() {
    let base = start_fake_gitlab().await;
    let self_hosted = GitLab::new("id", "secret")
        .expect("gitlab")
        .with_base_url(&base);
    assert!(!self_hosted.trusts_email_verified());
    assert_eq!(
        verified(&self_hosted).await,
        (json!("dev@git.example.org"), false)
    );

    let trusted = self_hosted.trust_email_verified(true);
    assert!(trusted.trusts_email_verified());
    assert_eq!(
        verified(&trusted).await,
        (json!("dev@git.example.org"), true)
    );
}
