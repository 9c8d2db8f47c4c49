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

/// The page at `url`, as text.
async fn text_of(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// The secret the setup page shows (in groups of four), without its spaces.
fn secret_of(html: &str) -> String {
    let start = html.find("id=\"totp-secret\">").expect("the secret") + 17;
    html[start..].split('<').next().unwrap().replace(' ', "")
}

/// Two-step sign-in on the account page: refused without the token, from another site, with
/// a wrong password or a wrong code (in words, on the field); on with the right code and its
/// ten recovery codes shown once; off with the password.
#[tokio::test]
async fn two_step_sign_in_is_set_up_on_the_account_page_and_its_failures_are_worded() {
    let s = Server::start();
    register(&s, "twostep@example.com", "a-password").await;
    let c = client();
    let html = text_of(&c, &s.url("/ui/sign-in")).await;
    let form = [
        ("email", "twostep@example.com"),
        ("password", "a-password"),
        ("csrf", &csrf_of(&html)),
    ];
    let account = c
        .post(s.url("/ui/sign-in"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let html = account.text().await.unwrap();
    assert!(html.contains("Two-step sign-in is off"), "{html}");
    let csrf = csrf_of(&html);

    let post = |path: &str, fields: Vec<(&str, String)>, origin: Option<&str>| {
        let mut request = c.post(s.url(path)).form(&fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    // Missing token, or a cross-site post with the right one: refused, nothing begun.
    for (token, origin) in [("", None), (csrf.as_str(), Some("https://evil.example"))] {
        let fields = vec![
            ("current_password", "a-password".into()),
            ("csrf", token.into()),
        ];
        let refused = post("/ui/account/two-step/start", fields, origin)
            .await
            .unwrap();
        assert_eq!(
            refused.status(),
            StatusCode::FORBIDDEN,
            "{token:?} {origin:?}"
        );
        assert!(refused.text().await.unwrap().contains("Reload the page"));
    }
    // Each refusal is a 400 in words, on its own field.
    let worded = async |path: &str, fields: Vec<(&str, String)>, words: &str| {
        let answer = post(path, fields, None).await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{path}");
        let html = answer.text().await.unwrap();
        assert!(html.contains(words), "{path}: {words} in {html}");
        html
    };
    let fields = vec![("current_password", "wrong".into()), ("csrf", csrf.clone())];
    let words = "id=\"mfa-current-password-error\">The current password is wrong.";
    worded("/ui/account/two-step/start", fields, words).await;

    let fields = vec![
        ("current_password", "a-password".into()),
        ("csrf", csrf.clone()),
    ];
    let setup = post("/ui/account/two-step/start", fields, None)
        .await
        .unwrap();
    assert_eq!(setup.status(), StatusCode::OK);
    let csp = setup.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("data:"),
        "{csp}"
    );
    let html = setup.text().await.unwrap();
    assert!(
        html.contains("<svg") && !html.contains("<?xml"),
        "the QR code inline"
    );
    let secret = secret_of(&html);
    assert_eq!(secret.len(), 32, "{secret}");

    // A wrong code: the form again, the error on the code's field, the QR code not again.
    let fields = vec![("code", "000000".into()), ("csrf", csrf.clone())];
    let words = "id=\"code-error\">This code is wrong";
    let html = worded("/ui/account/two-step/confirm", fields, words).await;
    assert!(!html.contains("<svg") && !html.contains("totp-secret"));
    let fields = vec![("code", crate::mfa::code(&secret, 0))];
    let refused = post("/ui/account/two-step/confirm", fields, None)
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN, "no CSRF token");

    let fields = vec![
        ("code", crate::mfa::code(&secret, 0)),
        ("csrf", csrf.clone()),
    ];
    let on = post("/ui/account/two-step/confirm", fields, None)
        .await
        .unwrap();
    assert_eq!(on.status(), StatusCode::OK);
    assert_eq!(on.headers()["cache-control"], "no-store");
    let html = on.text().await.unwrap();
    assert_eq!(html.matches("<li><code>").count(), 10, "{html}");
    assert!(html.contains("shown only now"));

    // The account page says it is on, and never shows the codes again.
    let html = text_of(&c, &s.url("/ui/account")).await;
    assert!(html.contains("Recovery codes left: 10."), "{html}");
    assert!(!html.contains("<li><code>"));
    let (regenerate, off) = (
        "/ui/account/two-step/recovery-codes",
        "/ui/account/two-step/off",
    );
    let words = "id=\"mfa-regenerate-code-error\">This code is wrong";
    worded(
        regenerate,
        vec![("code", "123".into()), ("csrf", csrf.clone())],
        words,
    )
    .await;
    let words = "id=\"mfa-off-code-error\">Enter a code";
    worded(off, vec![("csrf", csrf.clone())], words).await;
    let fields = vec![("current_password", "wrong".into()), ("csrf", csrf.clone())];
    let words = "id=\"mfa-off-password-error\">The current password is wrong.";
    worded(off, fields, words).await;
    let fields = vec![
        ("current_password", "a-password".into()),
        ("csrf", csrf.clone()),
    ];
    let off = post("/ui/account/two-step/off", fields, None)
        .await
        .unwrap();
    assert_eq!(off.url().path(), "/ui/account");
    let html = off.text().await.unwrap();
    assert!(html.contains("Two-step sign-in is off.") && html.contains("Turn on two-step sign-in"));
}
