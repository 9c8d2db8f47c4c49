//! Passkeys over HTTP on the memory store, with the software authenticator of
//! `axum_users::testing`: registration, the passwordless sign-in, the second factor, a replayed
//! assertion, a wrong origin, no user verification, a counter set back (a possible clone),
//! spent and foreign challenges, bad bodies, the fresh proof of a removal, the last way in, and a server without passkeys.

use axum_users::testing::SoftPasskey;
use axum_users::{
    AuditQuery, AxumUsers, MemoryStore, MfaSettings, PasskeySettings, PasswordHash, Privilege,
    SecondFactorChange, UserCreate, UserStore,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, TOTP};

use crate::library::{FAST, SECRET, call, login, serve};
use crate::mfa::Changes;

const PASSWORD: &str = "a-long-enough-passphrase-42";
const ORIGIN: &str = "http://localhost:8080";

struct App {
    base: String,
    changes: Changes,
    users: AxumUsers<MemoryStore, Changes>,
}

async fn app_with(passkeys: bool) -> App {
    app_with_mfa(passkeys, MfaSettings::default()).await
}

async fn app_with_mfa(passkeys: bool, mfa: MfaSettings) -> App {
    app_on(MemoryStore::new(), passkeys, mfa).await
}

/// An app on `store` (another node of it, when the store is shared).
async fn app_on(store: MemoryStore, passkeys: bool, mfa: MfaSettings) -> App {
    let changes = Changes::default();
    let mut builder = AxumUsers::builder(store, SECRET)
        .hooks(changes.clone())
        .argon2(FAST)
        .mfa(mfa);
    if passkeys {
        builder = builder.passkeys(PasskeySettings::for_public_url(ORIGIN).unwrap());
    }
    let users = builder.build().unwrap();
    let base = serve(users.router()).await;
    App {
        base,
        changes,
        users,
    }
}

async fn app() -> App {
    app_with(true).await
}

fn detail(body: &Value) -> &Value {
    match &body["detail"] {
        Value::Object(map) => &map["code"],
        other => other,
    }
}

impl App {
    async fn user(&self) -> (String, String) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        self.users
            .manager()
            .create(
                UserCreate::new(email.clone(), PASSWORD),
                Privilege::Superuser,
                None,
            )
            .await
            .unwrap();
        (email.clone(), login(&self.base, &email, PASSWORD).await)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        call(method, format!("{}{path}", self.base), token, Some(body)).await
    }

    /// The answer of a password sign-in of `email` on the JWT backend.
    async fn password_login(&self, email: &str) -> Value {
        let r = reqwest::Client::new()
            .post(format!("{}/auth/jwt/login", self.base))
            .form(&[("username", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Registers a passkey of `key` for the user of `token`; the answer of the finish.
    async fn register(&self, token: &str, key: &mut SoftPasskey) -> (StatusCode, Value) {
        let (status, options) = self
            .call(
                Method::POST,
                "/users/me/passkeys/register/start",
                Some(token),
                json!({"current_password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{options}");
        let credential = key.register(&options);
        self.call(
            Method::POST,
            "/users/me/passkeys/register/finish",
            Some(token),
            json!({"challenge_id": options["challenge_id"], "credential": credential, "name": "Laptop"}),
        )
        .await
    }

    /// Enrols and confirms a TOTP factor for the user of `token`.
    async fn enrol_totp(&self, token: &str) {
        let (_, enrolment) = self
            .call(
                Method::POST,
                "/users/me/mfa/totp",
                Some(token),
                json!({"current_password": PASSWORD}),
            )
            .await;
        let secret = enrolment["secret"].as_str().unwrap();
        let (status, _) = self
            .call(
                Method::POST,
                "/users/me/mfa/totp/confirm",
                Some(token),
                json!({"code": code(secret)}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    /// A passwordless sign-in start and the authenticator's answer to it.
    async fn assertion(&self, key: &mut SoftPasskey) -> Value {
        let (status, options) = self
            .call(Method::POST, "/auth/jwt/passkey/start", None, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{options}");
        json!({"challenge_id": options["challenge_id"], "credential": key.assert(&options)})
    }

    async fn sign_in(&self, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/auth/jwt/passkey/finish", None, body.clone())
            .await
    }

    async fn audit_reasons(&self) -> Vec<String> {
        let log = self.users.manager().store().audit_store().unwrap();
        let page = log.list_events(&AuditQuery::default()).await.unwrap();
        page.items
            .iter()
            .filter_map(|r| r.event.reason().map(str::to_owned))
            .collect()
    }
}

#[tokio::test]
async fn a_passkey_is_registered_with_a_fresh_proof_then_signs_in_without_a_password() {
    let app = app().await;
    let (_, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    let (status, body) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/start",
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_CURRENT_PASSWORD_REQUIRED")
        )
    );
    let (status, options) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/start",
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let public_key = &options["publicKey"];
    assert_eq!(public_key["rp"]["id"], "localhost");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    assert_eq!(
        public_key["authenticatorSelection"]["userVerification"],
        "required"
    );
    let credential = key.register(&options);
    let finish = json!({"challenge_id": options["challenge_id"], "credential": credential, "name": "Laptop"});
    let (status, created) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/finish",
            Some(&token),
            finish.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Laptop");
    assert_eq!(created["last_used_at"], Value::Null);
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/finish",
            Some(&token),
            finish,
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_CHALLENGE_INVALID")),
        "a registration is finished once"
    );
    assert_eq!(
        *app.changes.0.lock().unwrap(),
        vec![SecondFactorChange::Added]
    );
    let (_, status_body) = app
        .call(Method::GET, "/users/me/mfa", Some(&token), json!({}))
        .await;
    assert_eq!(status_body["passkeys"], 1);

    // Passwordless: a discoverable credential names its user.
    let (_, options) = app
        .call(Method::POST, "/auth/jwt/passkey/start", None, json!({}))
        .await;
    assert_eq!(options["mediation"], "conditional");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let body = json!({"challenge_id": options["challenge_id"], "credential": key.assert(&options)});
    let (status, signed_in) = app.sign_in(&body).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let passkey_token = signed_in["access_token"].as_str().unwrap().to_owned();
    let (status, me) = app
        .call(Method::GET, "/users/me", Some(&passkey_token), json!({}))
        .await;
    assert_eq!(
        (status, &me["id"]),
        (StatusCode::OK, &status_body_id(&app, &token).await)
    );
    let (status, body) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_CHALLENGE_INVALID")),
        "a replayed assertion finds its challenge spent"
    );

    // Listing, renaming, removing.
    let (_, list) = app
        .call(Method::GET, "/users/me/passkeys", Some(&token), json!({}))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0]["last_used_at"].is_string(), "{list}");
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/users/me/passkeys/{id}");
    let (status, renamed) = app
        .call(
            Method::PATCH,
            &path,
            Some(&token),
            json!({"name": " Phone "}),
        )
        .await;
    assert_eq!(
        (status, &renamed["name"]),
        (StatusCode::OK, &json!("Phone"))
    );
    let (status, body) = app
        .call(Method::PATCH, &path, Some(&token), json!({"name": ""}))
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_NAME_INVALID"))
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            "/users/me/passkeys/nope",
            Some(&token),
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_FOUND, &json!("PASSKEY_NOT_FOUND"))
    );
    let (other_email, other) = app.user().await;
    let _ = other_email;
    let (status, _) = app
        .call(
            Method::DELETE,
            &path,
            Some(&other),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's passkey is not found"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &path,
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        *app.changes.0.lock().unwrap(),
        vec![SecondFactorChange::Added, SecondFactorChange::Removed]
    );
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID")),
        "a removed passkey signs nobody in"
    );
}

#[tokio::test]
async fn removing_a_passkey_asks_the_fresh_proof_and_ends_the_other_sessions() {
    let app = app().await;
    let (email, token) = app.user().await;
    let other_session = login(&app.base, &email, PASSWORD).await;
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);
    let (_, list) = app
        .call(Method::GET, "/users/me/passkeys", Some(&token), json!({}))
        .await;
    let path = format!("/users/me/passkeys/{}", list[0]["id"].as_str().unwrap());
    for (body, code) in [
        (json!({}), "UPDATE_USER_CURRENT_PASSWORD_REQUIRED"),
        (
            json!({"current_password": "not-the-password"}),
            "UPDATE_USER_BAD_CURRENT_PASSWORD",
        ),
    ] {
        let (status, answer) = app.call(Method::DELETE, &path, Some(&token), body).await;
        assert_eq!(
            (status, detail(&answer)),
            (StatusCode::BAD_REQUEST, &json!(code)),
            "a session alone does not remove a passkey"
        );
    }
    let (status, _) = call(
        Method::DELETE,
        format!("{}{path}", app.base),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no body is no proof");
    let me = |token: String| {
        let url = format!("{}/users/me", app.base);
        async move { call(Method::GET, url, Some(&token), None).await.0 }
    };
    assert_eq!(me(other_session.clone()).await, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            &path,
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(token).await,
        StatusCode::OK,
        "the removing session stays"
    );
    assert_eq!(
        me(other_session).await,
        StatusCode::UNAUTHORIZED,
        "a session that may have registered the passkey ends with it"
    );

    // Without a password, a recent sign-in stands in for it; an old session is refused.
    let window = std::time::Duration::from_secs(1);
    let old = app_with_mfa(true, MfaSettings::default().with_recent_sign_in(window)).await;
    let (email, token) = old.user().await;
    let mut first = SoftPasskey::new(ORIGIN);
    let mut second = SoftPasskey::new(ORIGIN);
    assert_eq!(
        old.register(&token, &mut first).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        old.register(&token, &mut second).await.0,
        StatusCode::CREATED
    );
    let store = old.users.manager().store();
    let user = store.get_by_email(&email).await.unwrap().unwrap();
    assert!(
        store
            .replace_password(&user.id, &user.hashed_password, &PasswordHash::unusable())
            .await
            .unwrap()
    );
    let (_, list) = old
        .call(Method::GET, "/users/me/passkeys", Some(&token), json!({}))
        .await;
    let path = format!("/users/me/passkeys/{}", list[0]["id"].as_str().unwrap());
    // Sessions are dated in whole seconds: two of them past a window of one.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = old
        .call(Method::DELETE, &path, Some(&token), json!({}))
        .await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::BAD_REQUEST,
            &json!("MFA_RECENT_SIGN_IN_REQUIRED")
        ),
        "an old token (perhaps stolen) cannot remove the owner's passkey"
    );
    let body = old.assertion(&mut second).await;
    let (status, signed_in) = old.sign_in(&body).await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    let fresh = signed_in["access_token"].as_str().unwrap();
    let (status, _) = old
        .call(Method::DELETE, &path, Some(fresh), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "a sign-in just now does");
}

async fn status_body_id(app: &App, token: &str) -> Value {
    app.call(Method::GET, "/users/me", Some(token), json!({}))
        .await
        .1["id"]
        .clone()
}

#[tokio::test]
async fn a_wrong_origin_no_user_verification_and_a_counter_set_back_are_refused() {
    let app = app().await;
    let (_, token) = app.user().await;
    let mut evil = SoftPasskey::new("http://localhost:9999");
    let (status, body) = app.register(&token, &mut evil).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID")),
        "a registration from another origin"
    );
    let mut key = SoftPasskey::new(ORIGIN);
    let (status, body) = app.register(&token, &mut key).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    key.origin = "http://localhost:9999".into();
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID"))
    );
    key.origin = ORIGIN.into();

    key.user_verified = false;
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID"))
    );
    key.user_verified = true;

    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    key.counter = 0;
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID")),
        "a counter that went back"
    );
    let reasons = app.audit_reasons().await;
    assert!(
        reasons.iter().any(|r| r == "passkey_clone_suspected"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "bad_passkey"), "{reasons:?}");
}

#[tokio::test]
async fn challenges_are_single_use_bound_to_their_kind_and_bodies_are_checked() {
    let app = app().await;
    let (_, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);
    let (status, body) = app
        .sign_in(&json!({"challenge_id": "unknown", "credential": {"id": "x"}}))
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID"))
    );
    let body = app.assertion(&mut key).await;
    let mut unknown = body.clone();
    unknown["challenge_id"] = json!("not-a-challenge");
    let (status, answer) = app.sign_in(&unknown).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_CHALLENGE_INVALID"))
    );
    // A registration's challenge does not start a sign-in.
    let (_, options) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/start",
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    let mut foreign = body.clone();
    foreign["challenge_id"] = options["challenge_id"].clone();
    let (status, answer) = app.sign_in(&foreign).await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_CHALLENGE_INVALID"))
    );
    // Nor another backend's.
    let (status, answer) = app
        .call(
            Method::POST,
            "/auth/cookie/passkey/finish",
            None,
            body.clone(),
        )
        .await;
    assert_eq!(
        (status, detail(&answer)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_CHALLENGE_INVALID"))
    );
    // Bodies: not JSON, no credential, a credential that is not an object.
    let r = reqwest::Client::new()
        .post(format!("{}/auth/jwt/passkey/finish", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    let (status, _) = app.sign_in(&json!({"challenge_id": "x"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .sign_in(&json!({"challenge_id": "x", "credential": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/finish",
            Some(&token),
            json!({"challenge_id": "x", "credential": {"response": 1}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn code(secret: &str) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new());
    totp.generate(axum_users::now_unix() as u64)
}

#[tokio::test]
async fn a_passkey_completes_a_pending_sign_in_and_satisfies_the_second_factor_itself() {
    let app = app().await;
    let (email, token) = app.user().await;
    app.enrol_totp(&token).await;
    let mfa_token = login_step(&app, &email).await.unwrap_err();
    let (status, body) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa/passkey/start",
            None,
            json!({"mfa_token": mfa_token}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_FOUND, &json!("PASSKEY_NOT_FOUND")),
        "no passkey yet"
    );
    // The confirming session stays: it registers the passkey.
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);

    let mfa_token = login_step(&app, &email).await.unwrap_err();
    let (status, body) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa/passkey/start",
            None,
            json!({"mfa_token": "bogus"}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID"))
    );
    let (status, options) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa/passkey/start",
            None,
            json!({"mfa_token": mfa_token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    assert_eq!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let finish = json!({
        "mfa_token": mfa_token,
        "challenge_id": options["challenge_id"],
        "credential": key.assert(&options),
    });
    let (status, body) = app
        .call(
            Method::POST,
            "/auth/cookie/mfa/passkey/finish",
            None,
            finish.clone(),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID")),
        "another backend's pending sign-in"
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa/passkey/finish",
            None,
            finish.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    let (status, body) = app
        .call(Method::POST, "/auth/jwt/mfa/passkey/finish", None, finish)
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID")),
        "the pending sign-in is spent"
    );

    // Passwordless, a TOTP user is not asked again: the passkey verified its user.
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn the_applications_second_factor_hook_is_asked_after_a_passwordless_passkey() {
    let app = app().await;
    let (email, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);
    app.changes
        .1
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let body = app.assertion(&mut key).await;
    let (status, answer) = app.sign_in(&body).await;
    assert_eq!(
        (status, detail(&answer)),
        (
            StatusCode::BAD_REQUEST,
            &json!("LOGIN_SECOND_FACTOR_REQUIRED")
        ),
        "the hook's policy holds for a passkey too"
    );
    assert!(answer.get("access_token").is_none());
    // The second step is never asked again: the passkey completes a TOTP user's password
    // sign-in.
    app.enrol_totp(&token).await;
    let mfa_token = login_step(&app, &email).await.unwrap_err();
    let (status, options) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa/passkey/start",
            None,
            json!({"mfa_token": mfa_token}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{options}");
    let finish = json!({
        "mfa_token": mfa_token,
        "challenge_id": options["challenge_id"],
        "credential": key.assert(&options),
    });
    let (status, body) = app
        .call(Method::POST, "/auth/jwt/mfa/passkey/finish", None, finish)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
}

/// A password sign-in: the token, or the mfa token when a second factor is asked for (with
/// `passkey` among the methods once the user has one).
async fn login_step(app: &App, email: &str) -> Result<String, String> {
    let r = reqwest::Client::new()
        .post(format!("{}/auth/jwt/login", app.base))
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    if status == StatusCode::OK {
        return Ok(body["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
    let methods = body["detail"]["methods"].as_array().unwrap();
    assert_eq!(&methods[..2], &[json!("totp"), json!("recovery_code")]);
    Err(body["detail"]["mfa_token"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_last_way_in_stays_and_a_server_without_passkeys_says_so() {
    let app = app().await;
    let (email, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);
    let (_, list) = app
        .call(Method::GET, "/users/me/passkeys", Some(&token), json!({}))
        .await;
    let path = format!("/users/me/passkeys/{}", list[0]["id"].as_str().unwrap());
    let store = app.users.manager().store();
    let user = store.get_by_email(&email).await.unwrap().unwrap();
    assert!(
        store
            .replace_password(&user.id, &user.hashed_password, &PasswordHash::unusable())
            .await
            .unwrap()
    );
    let (status, body) = app
        .call(Method::DELETE, &path, Some(&token), json!({}))
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("OAUTH_LAST_SIGN_IN_METHOD"))
    );

    let off = app_with(false).await;
    assert!(app.users.manager().passkeys_on() && !off.users.manager().passkeys_on());
    let (_, token) = off.user().await;
    let (status, body) = off
        .call(
            Method::POST,
            "/users/me/passkeys/register/start",
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_IMPLEMENTED, &json!("PASSKEY_UNAVAILABLE"))
    );
    let (status, body) = off
        .call(Method::POST, "/auth/jwt/passkey/start", None, json!({}))
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::NOT_IMPLEMENTED, &json!("PASSKEY_UNAVAILABLE"))
    );
}

#[tokio::test]
async fn passkey_ceremony_starts_are_counted_as_sign_ins_of_the_address() {
    // Each start writes a ceremony row: without a limit a client could fill the store.
    for (path, body) in [
        ("/auth/jwt/passkey/start", Value::Null),
        (
            "/auth/jwt/mfa/passkey/start",
            json!({"mfa_token": "not-one"}),
        ),
    ] {
        let app = app().await;
        // The limit is per client address: served with the peer's address this time.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = app
            .users
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        let mut refused = None;
        for n in 0..40 {
            let (status, answer) = call(
                Method::POST,
                format!("{base}{path}"),
                None,
                (!body.is_null()).then(|| body.clone()),
            )
            .await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(answer, json!({"detail": "TOO_MANY_REQUESTS"}));
                refused = Some(n);
                break;
            }
        }
        let n = refused.unwrap_or_else(|| panic!("{path}: 40 starts from one address passed"));
        assert!(
            (5..=20).contains(&n),
            "{path}: refused after {n} starts, within the login limits of one client (20 a minute)"
        );
    }
}

#[tokio::test]
async fn a_superusers_removal_of_second_factors_takes_the_passkeys_too() {
    let app = app().await;
    let (_, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    assert_eq!(app.register(&token, &mut key).await.0, StatusCode::CREATED);
    let (_, me) = app
        .call(Method::GET, "/users/me", Some(&token), json!({}))
        .await;
    let mut root = UserCreate::new("root-pk@example.com".to_owned(), PASSWORD);
    root.is_superuser = Some(true);
    app.users
        .manager()
        .create(root, Privilege::Superuser, None)
        .await
        .unwrap();
    let root = login(&app.base, "root-pk@example.com", PASSWORD).await;
    let path = format!("/users/{}/mfa", me["id"].as_str().unwrap());
    let (status, body) = app
        .call(Method::DELETE, &path, Some(&root), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, list) = app
        .call(Method::GET, "/users/me/passkeys", Some(&token), json!({}))
        .await;
    assert_eq!(list, json!([]), "the lost device's passkey is gone");
    let assertion = app.assertion(&mut key).await;
    let (status, body) = app.sign_in(&assertion).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_INVALID")),
        "it signs in no more"
    );
}

#[tokio::test]
async fn a_first_passkey_comes_with_recovery_codes_and_asks_for_itself_after_a_password() {
    let app = app().await;
    let (email, token) = app.user().await;
    let mut key = SoftPasskey::new(ORIGIN);
    let (status, first) = app.register(&token, &mut key).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let codes: Vec<String> = first["recovery_codes"]
        .as_array()
        .expect("the first second factor gives the codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let mut other = SoftPasskey::new(ORIGIN);
    let (status, second) = app.register(&token, &mut other).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        second.get("recovery_codes").is_none(),
        "only once: {second}"
    );
    let (_, status_body) = app
        .call(Method::GET, "/users/me/mfa", Some(&token), json!({}))
        .await;
    assert_eq!(status_body["recovery_codes_left"], 10);

    // A password sign-in now asks for the passkey (or a recovery code), not a TOTP code.
    let body = app.password_login(&email).await;
    assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
    assert_eq!(
        body["detail"]["methods"],
        json!(["recovery_code", "passkey"])
    );
    let (status, signed_in) = app
        .call(
            Method::POST,
            "/auth/jwt/mfa",
            None,
            json!({"mfa_token": body["detail"]["mfa_token"], "recovery_code": codes[0]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
    assert!(signed_in["access_token"].is_string());

    // Passkeys turned off (another node without their settings): the passkeys still ask for
    // a second factor, answered by a recovery code, rather than the password alone passing.
    let off = app_on(
        app.users.manager().store().clone(),
        false,
        MfaSettings::default(),
    )
    .await;
    let body = off.password_login(&email).await;
    assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
    assert_eq!(body["detail"]["methods"], json!(["recovery_code"]));
    let (status, signed_in) = off
        .call(
            Method::POST,
            "/auth/jwt/mfa",
            None,
            json!({"mfa_token": body["detail"]["mfa_token"], "recovery_code": codes[1]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed_in}");
}

#[tokio::test]
async fn a_user_has_at_most_twenty_passkeys() {
    // The rate limits would stop twenty ceremonies a minute first.
    let changes = Changes::default();
    let users = AxumUsers::builder(MemoryStore::new(), SECRET)
        .hooks(changes.clone())
        .argon2(FAST)
        .rate_limits(axum_users::RateLimits::off())
        .passkeys(PasskeySettings::for_public_url(ORIGIN).unwrap())
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    let app = App {
        base,
        changes,
        users,
    };
    let (_, token) = app.user().await;
    for n in 0..axum_users::MAX_PASSKEYS {
        let (status, body) = app.register(&token, &mut SoftPasskey::new(ORIGIN)).await;
        assert_eq!(status, StatusCode::CREATED, "passkey {n}: {body}");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/users/me/passkeys/register/start",
            Some(&token),
            json!({"current_password": PASSWORD}),
        )
        .await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("PASSKEY_LIMIT_REACHED"))
    );
}
