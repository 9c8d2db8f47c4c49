//! The hosted pages of the real binary, over HTTP without a browser (tests/browser drives
//! them in Chromium): mounted by default, a form needs its CSRF token, off with AXUM_USERS_UI.

use reqwest::StatusCode;

use crate::support::{Server, client, register};

/// The hidden CSRF field of a page.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_pages_sign_in_with_their_token_and_refuse_a_post_without_it() {
    let s = Server::start();
    register(&s, "page@example.com", "a-password").await;
    let c = client();
    let page = c.get(s.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    let form = [("email", "page@example.com"), ("password", "a-password")];

    // Without the token, or with another's, or from another site: refused, nothing set.
    for (token, origin) in [
        ("", None),
        ("forged", None),
        (csrf_of(&html).as_str(), Some("https://evil.example")),
    ] {
        let mut request = c
            .post(s.url("/ui/sign-in"))
            .form(&[form[0], form[1], ("csrf", token)]);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let refused = request.send().await.unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "token {token:?} origin {origin:?}"
        );
        assert!(
            refused
                .headers()
                .get("set-cookie")
                .is_none_or(|v| !v.to_str().unwrap().contains("fastapiusersauth"))
        );
        assert!(refused.text().await.unwrap().contains("Reload the page"));
    }

    // With it (and Origin: null, as Chromium sends under no-referrer): signed in, sent on.
    let signed_in = c
        .post(s.url("/ui/sign-in"))
        .header("origin", "null")
        .form(&[
            form[0],
            form[1],
            ("csrf", &csrf_of(&html)),
            ("return_to", "//evil.example"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        signed_in.status(),
        StatusCode::OK,
        "followed to the account page"
    );
    assert_eq!(
        signed_in.url().path(),
        "/ui/account",
        "the open redirect is ignored"
    );
    assert!(
        signed_in
            .text()
            .await
            .unwrap()
            .contains("Signed in as page@example.com")
    );
}

#[tokio::test]
async fn the_pages_can_be_turned_off_and_a_bad_prefix_stops_the_server() {
    let s = Server::start_with(&[("AXUM_USERS_UI", "false")]);
    let off = client().get(s.url("/ui/sign-in")).send().await.unwrap();
    assert_eq!(off.status(), StatusCode::NOT_FOUND);
    let output = std::process::Command::new(crate::support::BIN)
        .arg("config")
        .arg("check")
        .env_clear()
        .env("AXUM_USERS_UI_PREFIX", "/auth")
        .env("AXUM_USERS_DATABASE_URL", "sqlite::memory:")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ui_prefix (AXUM_USERS_UI_PREFIX)"),
        "{stderr}"
    );
}
