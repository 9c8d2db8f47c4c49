//! Login and logout on the Bearer and cookie backends.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn bearer_logout_is_204_and_revokes_the_jwt_unless_jwts_are_stateless() {
    for (revocable, after) in [
        ("true", StatusCode::UNAUTHORIZED),
        ("false", StatusCode::OK),
    ] {
        let s = Server::start_with(&[("AXUM_USERS_JWT_REVOCABLE", revocable)]);
        register(&s, "alice@example.com", "alicepass1").await;
        let token = login(&s, "alice@example.com", "alicepass1").await;
        let c = client();
        let r = c
            .post(s.url("/auth/jwt/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(r.text().await.unwrap().is_empty());
        assert_eq!(
            get_me(&s, &token).await.0,
            after,
            "jwt_revocable = {revocable}: as the reference only when false"
        );
        let (status, body) = read(c.post(s.url("/auth/jwt/logout")).send().await.unwrap()).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
        );
    }
}

#[tokio::test]
async fn cookie_login_me_and_logout() {
    let s = Server::start();
    register(&s, "alice@example.com", "alicepass1").await;
    let c = client();
    let r = c
        .post(s.url("/auth/cookie/login"))
        .form(&[
            ("username", "alice@example.com"),
            ("password", "alicepass1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.starts_with("fastapiusersauth=ey"),
        "{set_cookie}"
    );
    assert!(
        set_cookie.ends_with("; HttpOnly; Path=/; SameSite=lax"),
        "{set_cookie}"
    );
    assert!(r.text().await.unwrap().is_empty());

    // The cookie jar sends it back.
    let (status, me) = read(c.get(s.url("/users/me")).send().await.unwrap()).await;
    assert_eq!(
        (status, me["email"].clone()),
        (StatusCode::OK, json!("alice@example.com"))
    );

    let r = c.post(s.url("/auth/cookie/logout")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["set-cookie"],
        "fastapiusersauth=\"\"; HttpOnly; Max-Age=0; Path=/; SameSite=lax"
    );
    assert_eq!(
        read(c.get(s.url("/users/me")).send().await.unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    // Logout on the cookie backend with only a bearer token still clears the cookie.
    let token = login(&s, "alice@example.com", "alicepass1").await;
    let r = client()
        .post(s.url("/auth/cookie/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn secure_cookies_by_default() {
    let s = Server::start_with(&[("AXUM_USERS_COOKIE_SECURE", "true")]);
    register(&s, "alice@example.com", "alicepass1").await;
    let r = client()
        .post(s.url("/auth/cookie/login"))
        .form(&[
            ("username", "alice@example.com"),
            ("password", "alicepass1"),
        ])
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.ends_with("; HttpOnly; Path=/; SameSite=lax; Secure"),
        "{cookie}"
    );
}

#[tokio::test]
async fn inactive_users_cannot_log_in_or_use_their_tokens() {
    let s = Server::start();
    let bob = register(&s, "bob@example.com", "bobpass1").await;
    let bob_token = login(&s, "bob@example.com", "bobpass1").await;
    let root = superuser(&s, "root@example.com").await;
    let (status, body) = patch(
        &s,
        &format!("/users/{}", bob["id"].as_str().unwrap()),
        &root,
        json!({"is_active": false}),
    )
    .await;
    assert_eq!(
        (status, body["is_active"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(
        get_me(&s, &bob_token).await,
        (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
    );
    assert_eq!(
        try_login(&s, "bob@example.com", "bobpass1").await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "LOGIN_BAD_CREDENTIALS"})
        )
    );
    // forgot-password and request-verify-token still answer 202 but send nothing.
    let c = client();
    assert_eq!(
        post_json(
            &c,
            s.url("/auth/forgot-password"),
            json!({"email": "bob@example.com"})
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        post_json(
            &c,
            s.url("/auth/request-verify-token"),
            json!({"email": "bob@example.com"})
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(s.mails_to("bob@example.com").is_empty());
}

#[tokio::test]
async fn bad_credentials_headers_are_401_without_www_authenticate() {
    let s = Server::start();
    let c = client();
    for header in [
        None,
        Some("Bearer garbage"),
        Some("Basic YWxpY2U6cHc="),
        Some("Bearer"),
        Some("Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIiwiYXVkIjoiZmFzdGFwaS11c2VyczphdXRoIn0."),
    ] {
        let mut request = c.get(s.url("/users/me"));
        if let Some(h) = header {
            request = request.header("authorization", h);
        }
        let r = request.send().await.unwrap();
        assert!(r.headers().get("www-authenticate").is_none());
        assert_eq!(
            read(r).await,
            (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"})),
            "{header:?}"
        );
    }
}

#[tokio::test]
async fn security_a_plain_http_origin_of_the_public_host_cannot_post_the_cookie_login() {
    let s = Server::start_with(&[("AXUM_USERS_PUBLIC_URL", "https://auth.example.com")]);
    let c = client();
    let login_from = |origin: &'static str| {
        c.post(s.url("/auth/cookie/login"))
            .header("host", "auth.example.com")
            .header("origin", origin)
            .form(&[("username", "nobody@example.com"), ("password", "wrong")])
            .send()
    };
    // A network attacker serving http://auth.example.com (a café's MITM): same host, not
    // our origin.
    let (status, body) = read(login_from("http://auth.example.com").await.unwrap()).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::FORBIDDEN, &json!("CSRF_ORIGIN_MISMATCH"))
    );
    // Our own origin gets as far as the credentials.
    let (status, body) = read(login_from("https://auth.example.com").await.unwrap()).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("LOGIN_BAD_CREDENTIALS"))
    );
}
