//! Second factors against the real server, on SQLite and (when set) PostgreSQL and MariaDB:
//! TOTP enrolment and confirmation, the sign-in's second step on the bearer and the cookie
//! backends, a replayed step, five wrong codes, recovery codes used twice, removal by a
//! superuser (with the mail), and the audit events. TOTP codes are computed here by an RFC 6238
//! implementation of the test's own (HMAC-SHA1 and dynamic truncation), not the server's crate.

use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{
    Server, client, databases, detail, post_json, read, register, start_env, try_login,
};

const PASSWORD: &str = "mfa-user-passphrase-1";

/// The RFC 4648 base32 alphabet's value of `c` (no padding in our secrets).
fn base32_value(c: u8) -> u32 {
    match c {
        b'A'..=b'Z' => u32::from(c - b'A'),
        b'2'..=b'7' => u32::from(c - b'2') + 26,
        other => panic!("not base32: {other}"),
    }
}

fn base32_decode(text: &str) -> Vec<u8> {
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').bytes() {
        value = (value << 5) | base32_value(c);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

/// The 6-digit code of `secret` (base32) for the 30-second step `offset` steps from now.
pub(crate) fn code(secret: &str, offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let counter = (now / 30 + offset) as u64;
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&base32_decode(secret)).unwrap();
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let at = usize::from(digest[19] & 0x0f);
    let number = u32::from_be_bytes([digest[at], digest[at + 1], digest[at + 2], digest[at + 3]])
        & 0x7fff_ffff;
    format!("{:06}", number % 1_000_000)
}

async fn call(
    s: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = client().request(method, s.url(path)).bearer_auth(token);
    if !body.is_null() {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

/// The mfa token of a first step that must ask for the second factor.
fn mfa_token(status: StatusCode, body: &Value) -> String {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(detail(body)["code"], "LOGIN_MFA_REQUIRED", "{body}");
    detail(body)["mfa_token"].as_str().unwrap().to_owned()
}

async fn first_step(s: &Server, email: &str) -> String {
    let (status, body) = try_login(s, email, PASSWORD).await;
    mfa_token(status, &body)
}

async fn second_step(s: &Server, backend: &str, body: Value) -> (StatusCode, Value) {
    post_json(&client(), s.url(&format!("/auth/{backend}/mfa")), body).await
}

/// Registers `email` and enrols and confirms TOTP; returns the secret and the recovery codes.
async fn enrolled(s: &Server, email: &str) -> (String, Vec<String>) {
    register(s, email, PASSWORD).await;
    let token = crate::support::login(s, email, PASSWORD).await;
    let (status, mfa) = call(s, Method::GET, "/users/me/mfa", &token, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{mfa}");
    assert_eq!(
        mfa,
        json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
    );

    let (status, body) = call(s, Method::POST, "/users/me/mfa/totp", &token, json!({})).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "the password is required: {body}"
    );
    let (status, enrolment) = call(
        s,
        Method::POST,
        "/users/me/mfa/totp",
        &token,
        json!({"current_password": PASSWORD}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&secret),
        "{uri}"
    );
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));

    let (status, body) = call(
        s,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &token,
        json!({"code": code(&secret, 5)}),
    )
    .await;
    assert_eq!(
        (status, detail(&body).clone()),
        (StatusCode::BAD_REQUEST, json!("MFA_INVALID_CODE"))
    );
    let (status, body) = call(
        s,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &token,
        json!({"code": code(&secret, 0)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let (_, mfa) = call(s, Method::GET, "/users/me/mfa", &token, Value::Null).await;
    assert_eq!(
        mfa,
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    (secret, codes)
}

#[tokio::test]
async fn a_totp_user_signs_in_in_two_steps_on_every_backend() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let email = "two-steps@example.com";
        let (secret, codes) = enrolled(&s, email).await;

        // The password alone issues nothing; the step of the confirmation is spent.
        let (status, body) = try_login(&s, email, PASSWORD).await;
        let token = mfa_token(status, &body);
        assert!(body.get("access_token").is_none() && detail(&body).get("access_token").is_none());
        let methods = detail(&body)["methods"].clone();
        assert_eq!(methods, json!(["totp", "recovery_code"]), "{}", db.name);
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "code": code(&secret, 0)}),
        )
        .await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("MFA_INVALID_CODE")),
            "{}: a step already used is refused",
            db.name
        );
        // The next step (one step of skew is allowed) completes the sign-in, once.
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "code": code(&secret, 1)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        assert_eq!(body["token_type"], "bearer");
        let access = body["access_token"].as_str().unwrap();
        let (status, me) = call(&s, Method::GET, "/users/me", access, Value::Null).await;
        assert_eq!(
            (status, me["email"].clone()),
            (StatusCode::OK, json!(email))
        );
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "code": code(&secret, 1)}),
        )
        .await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("MFA_TOKEN_INVALID")),
            "{}: an mfa token is spent once",
            db.name
        );

        // A recovery code works once (form body this time).
        let token = first_step(&s, email).await;
        let r = client()
            .post(s.url("/auth/jwt/mfa"))
            .form(&[
                ("mfa_token", token.as_str()),
                ("recovery_code", codes[3].as_str()),
            ])
            .send()
            .await
            .unwrap();
        let (status, body) = read(r).await;
        assert_eq!(status, StatusCode::OK, "{}: {body}", db.name);
        let access = body["access_token"].as_str().unwrap().to_owned();
        let token = first_step(&s, email).await;
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "recovery_code": codes[3]}),
        )
        .await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("MFA_INVALID_CODE")),
            "{}: a recovery code is spent once",
            db.name
        );
        let (_, mfa) = call(&s, Method::GET, "/users/me/mfa", &access, Value::Null).await;
        assert_eq!(mfa["recovery_codes_left"], 9);

        // The cookie backend: its own mfa token; another backend's is refused.
        let r = client()
            .post(s.url("/auth/cookie/login"))
            .form(&[("username", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        let (status, body) = read(r).await;
        let cookie_token = mfa_token(status, &body);
        let jwt_token = first_step(&s, email).await;
        let (status, body) = second_step(
            &s,
            "cookie",
            json!({"mfa_token": jwt_token, "code": code(&secret, -1)}),
        )
        .await;
        assert_eq!(detail(&body), "MFA_TOKEN_INVALID", "{}: {status}", db.name);
        let browser = client();
        let r = browser
            .post(s.url("/auth/cookie/mfa"))
            .json(&json!({"mfa_token": cookie_token, "recovery_code": codes[0]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{}", db.name);
        assert!(
            r.headers()
                .get_all("set-cookie")
                .iter()
                .any(|c| c.to_str().unwrap().contains("HttpOnly")),
            "the cookie backend's normal answer"
        );

        // The audit log saw the factor added and both kinds of use.
        let (_, events) = call(
            &s,
            Method::GET,
            "/users/me/security-events?limit=100",
            &access,
            Value::Null,
        )
        .await;
        let kinds: Vec<&str> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        for kind in [
            "second_factor.added",
            "second_factor.used",
            "recovery_code.used",
        ] {
            assert!(kinds.contains(&kind), "{}: {kind} in {kinds:?}", db.name);
        }
        let failures = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "login.failed" && e["reason"] == "second_factor_failed")
            .count();
        assert!(failures >= 2, "{}: {events}", db.name);
        s.stop();
        db.finish().await;
    }
}

#[tokio::test]
async fn five_wrong_codes_kill_the_mfa_token_and_bad_input_is_a_4xx() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let email = "guesser@example.com";
        let (secret, _) = enrolled(&s, email).await;
        let token = first_step(&s, email).await;
        let wrong = if code(&secret, 1) == "000000" {
            "111111"
        } else {
            "000000"
        };
        for n in 0..5 {
            let (status, body) =
                second_step(&s, "jwt", json!({"mfa_token": token, "code": wrong})).await;
            assert_eq!(
                (status, detail(&body).clone()),
                (StatusCode::BAD_REQUEST, json!("MFA_INVALID_CODE")),
                "{}: wrong code {n}",
                db.name
            );
        }
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "code": code(&secret, 1)}),
        )
        .await;
        assert_eq!(
            (status, detail(&body).clone()),
            (StatusCode::BAD_REQUEST, json!("MFA_TOKEN_INVALID")),
            "{}: the sixth answer, even right, finds the token dead",
            db.name
        );
        for body in [
            json!({"mfa_token": "not-a-token", "code": "123456"}),
            json!({"mfa_token": "x".repeat(10_000), "code": "123456"}),
        ] {
            let (status, answer) = second_step(&s, "jwt", body).await;
            assert_eq!(
                (status, detail(&answer).clone()),
                (StatusCode::BAD_REQUEST, json!("MFA_TOKEN_INVALID")),
                "{}",
                db.name
            );
        }
        for body in [
            json!({}),
            json!({"mfa_token": 5}),
            json!({"code": "123456"}),
        ] {
            let (status, answer) = second_step(&s, "jwt", body).await;
            assert_eq!(
                status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{}: {answer}",
                db.name
            );
        }
        s.stop();
        db.finish().await;
    }
}

#[tokio::test]
async fn a_superuser_removes_a_lost_factor_and_the_user_is_told() {
    for db in databases().await {
        let env = db.env();
        let s = start_env(&env);
        let email = "lost-phone@example.com";
        let (secret, _) = enrolled(&s, email).await;
        let admin = crate::admin::root(&s, &env).await;
        let token = first_step(&s, email).await;
        let (status, body) = second_step(
            &s,
            "jwt",
            json!({"mfa_token": token, "code": code(&secret, 1)}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let user_token = body["access_token"].as_str().unwrap().to_owned();
        let (_, me) = call(&s, Method::GET, "/users/me", &user_token, Value::Null).await;
        let path = format!("/users/{}/mfa", me["id"].as_str().unwrap());

        let (status, body) = call(&s, Method::DELETE, &path, &user_token, Value::Null).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{}: only a superuser: {body}",
            db.name
        );
        let (status, body) = call(&s, Method::DELETE, &path, &admin, Value::Null).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{}: {body}", db.name);
        let (status, body) = try_login(&s, email, PASSWORD).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: one step again: {body}",
            db.name
        );
        let mut told = false;
        for _ in 0..100 {
            // Unfolded headers: a long subject may be folded over two lines.
            let mails: Vec<String> = s
                .mails_to(email)
                .iter()
                .map(|m| m.replace("\r\n ", " "))
                .collect();
            if mails
                .iter()
                .any(|m| m.contains("second factor of your") && m.contains("was removed"))
            {
                told = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(
            told,
            "{}: the removal mail: {:?}",
            db.name,
            s.mails_to(email)
        );
        let (_, events) = call(
            &s,
            Method::GET,
            &format!(
                "/audit-events?user_id={}&type=second_factor.removed",
                me["id"].as_str().unwrap()
            ),
            &admin,
            Value::Null,
        )
        .await;
        let items = events["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{}: {events}", db.name);
        assert!(
            !items[0]["actor_id"].is_null(),
            "the superuser is the actor: {events}"
        );
        s.stop();
        db.finish().await;
    }
}

/// A hidden field's value in a page.
fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_sign_in_page_asks_for_the_second_factor() {
    let s = Server::start();
    let email = "page-two-steps@example.com";
    let (secret, codes) = enrolled(&s, email).await;
    let browser = client();
    let page = browser.get(s.url("/ui/sign-in")).send().await.unwrap();
    let html = page.text().await.unwrap();
    let step = browser
        .post(s.url("/ui/sign-in"))
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf", &hidden(&html, "csrf")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(step.status(), StatusCode::OK);
    assert_eq!(step.url().path(), "/ui/sign-in", "no token in any URL");
    let html = step.text().await.unwrap();
    assert!(html.contains("authenticator app"), "{html}");
    let (mfa_token, csrf) = (hidden(&html, "mfa_token"), hidden(&html, "csrf"));

    let wrong = browser
        .post(s.url("/ui/second-factor"))
        .form(&[
            ("mfa_token", mfa_token.as_str()),
            ("code", "12345x"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let html = wrong.text().await.unwrap();
    assert!(html.contains("This code is wrong"), "{html}");
    assert!(html.contains("aria-invalid=\"true\""), "tied to its field");
    let done = browser
        .post(s.url("/ui/second-factor"))
        .form(&[
            ("mfa_token", mfa_token.as_str()),
            ("code", &code(&secret, 1)),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(done.url().path(), "/ui/account");
    assert!(
        done.text()
            .await
            .unwrap()
            .contains(&format!("Signed in as {email}"))
    );

    // The token is spent; without the CSRF token nothing is tried.
    let again = browser
        .post(s.url("/ui/second-factor"))
        .form(&[
            ("mfa_token", mfa_token.as_str()),
            ("recovery_code", &codes[0]),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("Sign in again"));
    let forged = client()
        .post(s.url("/ui/second-factor"))
        .form(&[
            ("mfa_token", mfa_token.as_str()),
            ("code", "123456"),
            ("csrf", "forged"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
}

/// One sign-in through the provider: authorize, the provider's login, the callback's answer.
async fn provider_sign_in(
    s: &Server,
    account: &crate::oidc_provider::TestAccount,
) -> (StatusCode, Value) {
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
    let cb =
        crate::oidc_provider::login(body["authorization_url"].as_str().unwrap(), account).await;
    read(
        browser
            .get(s.url("/auth/corp/callback"))
            .query(&[("code", &cb.code), ("state", &cb.state)])
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_provider_sign_in_asks_for_the_second_factor_too() {
    use crate::oidc_provider::{ClientRegistration, OidcTestProvider, TestAccount};
    let port = crate::support::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let Some(idp) = OidcTestProvider::start(&[ClientRegistration::new(
        "mfa-client",
        "mfa-secret",
        [format!("{base}/auth/corp/callback")],
    )]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("axum-users.toml");
    std::fs::write(
        &config,
        format!(
            "public_url = \"{base}\"\n\n[oauth.corp]\nkind = \"oidc\"\nissuer = \"{}\"\n\
             client_id = \"mfa-client\"\nis_verified_by_default = true\ntrust_email_verified = true\n",
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
            ("AXUM_USERS_OAUTH_CORP_CLIENT_SECRET", "mfa-secret"),
        ],
    );
    let account = TestAccount::new("oauth-only-mfa", Some("provider-mfa@example.com"), true);
    let (status, body) = provider_sign_in(&s, &account).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first sign-in creates the user: {body}"
    );
    let token = body["access_token"].as_str().unwrap().to_owned();

    // No password: a recent sign-in stands in for it.
    let (status, enrolment) = call(&s, Method::POST, "/users/me/mfa/totp", &token, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &s,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &token,
        json!({"code": code(&secret, 0)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The provider alone no longer signs in.
    let (status, body) = provider_sign_in(&s, &account).await;
    let mfa = mfa_token(status, &body);
    assert!(body.get("access_token").is_none());
    let (status, body) = second_step(
        &s,
        "jwt",
        json!({"mfa_token": mfa, "code": code(&secret, 1)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, me) = call(
        &s,
        Method::GET,
        "/users/me",
        body["access_token"].as_str().unwrap(),
        Value::Null,
    )
    .await;
    assert_eq!(me["email"], "provider-mfa@example.com");
}
