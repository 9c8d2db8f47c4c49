//! OAuth providers configured in the TOML file, against a real OpenID provider on loopback.

use reqwest::StatusCode;
use serde_json::json;

use crate::oidc_provider::{ClientRegistration, OidcTestProvider, TestAccount, login};
use crate::support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn an_oidc_provider_from_the_config_file_signs_users_in() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let callbacks = [
        format!("{base}/auth/corp/callback"),
        format!("{base}/auth/associate/corp/callback"),
    ];
    let Some(idp) = OidcTestProvider::start(&[ClientRegistration::new(
        "server-client",
        "server-secret",
        callbacks,
    )]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("axum-users.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"{base}\"\n\n[oauth.corp]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"server-client\"\n\
             associate_by_email = true\nis_verified_by_default = true\ntrust_email_verified = true\n",
            idp.issuer()
        ),
    )
    .unwrap();
    let bind = format!("127.0.0.1:{port}");
    let s = Server::start_in(
        dir,
        &[
            ("AXUM_USERS_BIND", bind.as_str()),
            ("AXUM_USERS_CONFIG", config.to_str().unwrap()),
            ("AXUM_USERS_OAUTH_CORP_CLIENT_SECRET", "server-secret"),
        ],
    );
    assert!(
        s.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("/auth/corp/authorize"))
    );

    // A password user who verified their address, which the provider verifies too, gets
    // linked (an unverified local account never is: see the library's OAuth tests).
    register(&s, "nina@example.com", "ninapass").await;
    post_json(
        &client(),
        s.url("/auth/request-verify-token"),
        json!({"email": "nina@example.com"}),
    )
    .await;
    let verify_token = s.wait_token("nina@example.com", 1).await;
    let (status, _) = post_json(
        &client(),
        s.url("/auth/verify"),
        json!({"token": verify_token}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let browser = client();
    let (status, body) = read(
        browser
            .get(s.url("/auth/corp/authorize"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cb = login(
        body["authorization_url"].as_str().unwrap(),
        &TestAccount::new("nina-corp", Some("nina@example.com"), true),
    )
    .await;
    let (status, body) = read(
        browser
            .get(s.url("/auth/corp/callback"))
            .query(&[("code", &cb.code), ("state", &cb.state)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (_, me) = get_me(&s, &token).await;
    assert_eq!(me["email"], "nina@example.com");
    let (status, listed) = read(
        client()
            .get(s.url("/users/me/oauth-accounts"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, listed[0]["oauth_name"].clone()),
        (StatusCode::OK, json!("corp"))
    );

    // Documented in the OpenAPI document.
    let (_, doc) = read(client().get(s.url("/openapi.json")).send().await.unwrap()).await;
    for path in [
        "/auth/corp/authorize",
        "/auth/corp/callback",
        "/auth/associate/corp/authorize",
        "/auth/associate/corp/callback",
        "/users/me/oauth-accounts",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
}

#[test]
fn a_bad_provider_configuration_stops_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("axum-users.toml");
    for (table, needle) in [
        (
            "[oauth.corp]\nkind = \"oidc\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            "oauth.corp.issuer",
        ),
        (
            "[oauth.corp]\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"x\"\nclient_secret = \"y\"\n",
            "oauth.corp",
        ),
        (
            "[oauth.gh]\nkind = \"github\"\nclient_id = \"x\"\n",
            "AXUM_USERS_OAUTH_GH_CLIENT_SECRET",
        ),
    ] {
        std::fs::write(&config, table).unwrap();
        let mut command = std::process::Command::new(BIN);
        command.current_dir(dir.path()).env_clear();
        for (k, v) in test_env(dir.path()) {
            command.env(k, v);
        }
        let out = command
            .env("AXUM_USERS_CONFIG", &config)
            .env("AXUM_USERS_PUBLIC_URL", "http://127.0.0.1:8000")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{table}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
