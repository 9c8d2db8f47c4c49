//! Second factors over HTTP on the memory store: TOTP enrolment and confirmation, the sign-in's
//! second step with codes computed here from the secret, replay within a step, five wrong codes,
//! recovery codes used twice, regeneration, removal (by the user and a superuser) and the hook.

use std::sync::{Arc, Mutex};

use axum_users::{
    AxumUsers, MemoryStore, NoFields, Privilege, SecondFactor, SecondFactorChange, User,
    UserCreate, UserHooks,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use totp_rs::{Algorithm, TOTP};

use crate::library::{FAST, SECRET, call, login, serve};

const PASSWORD: &str = "a-long-enough-passphrase-42";

/// Records every change of second factors; with `.1` set, the application's
/// `second_factor` hook asks for one on every sign-in it is asked about.
#[derive(Clone, Default)]
pub(crate) struct Changes(
    pub(crate) Arc<Mutex<Vec<SecondFactorChange>>>,
    pub(crate) Arc<std::sync::atomic::AtomicBool>,
);

impl UserHooks<uuid::Uuid, NoFields> for Changes {
    async fn on_second_factor_changed(&self, _: &User, change: SecondFactorChange) {
        self.0.lock().unwrap().push(change);
    }
    async fn second_factor(&self, _: &User, _: &axum_users::SignInMethod) -> SecondFactor {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            SecondFactor::Required
        } else {
            SecondFactor::NotRequired
        }
    }
}

struct App {
    base: String,
    changes: Changes,
    users: AxumUsers<MemoryStore, Changes>,
}

async fn app() -> App {
    let changes = Changes::default();
    let users = AxumUsers::builder(MemoryStore::new(), SECRET)
        .hooks(changes.clone())
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    App {
        base,
        changes,
        users,
    }
}

/// The code of `secret` for the step `offset` steps from now.
fn code(secret: &str, offset: i64) -> String {
    let bytes = totp_rs::Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap();
    let totp = TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, bytes, None, String::new());
    let now = axum_users::now_unix();
    totp.generate(((now / 30 + offset) * 30) as u64)
}

impl App {
    async fn user(&self, superuser: bool) -> (String, String) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let mut create = UserCreate::new(email.clone(), PASSWORD);
        create.is_superuser = Some(superuser);
        self.users
            .manager()
            .create(create, Privilege::Superuser, None)
            .await
            .unwrap();
        (email.clone(), login(&self.base, &email, PASSWORD).await)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        call(
            method,
            format!("{}{path}", self.base),
            Some(token),
            Some(body),
        )
        .await
    }

    /// Enrols and confirms TOTP; returns the secret and the recovery codes.
    async fn enrol(&self, token: &str) -> (String, Vec<String>) {
        let (secret, codes, _) = self.enrol_with_code(token).await;
        (secret, codes)
    }

    /// [`App::enrol`], also returning the code that confirmed it.
    async fn enrol_with_code(&self, token: &str) -> (String, Vec<String>, String) {
        let (status, body) = self
            .call(
                Method::POST,
                "/users/me/mfa/totp",
                token,
                json!({"current_password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        let confirmation = code(&secret, 0);
        let (status, body) = self
            .call(
                Method::POST,
                "/users/me/mfa/totp/confirm",
                token,
                json!({"code": confirmation}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes, confirmation)
    }

    /// The first step of a password sign-in: must ask for the second factor; the mfa token.
    async fn first_step(&self, email: &str) -> String {
        let r = reqwest::Client::new()
            .post(format!("{}/auth/jwt/login", self.base))
            .form(&[("username", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
        assert_eq!(body["detail"]["methods"], json!(["totp", "recovery_code"]));
        body["detail"]["mfa_token"].as_str().unwrap().to_owned()
    }

    async fn second_step(&self, body: Value) -> (StatusCode, Value) {
        call(
            Method::POST,
            format!("{}/auth/jwt/mfa", self.base),
            None,
            Some(body),
        )
        .await
    }
}

#[tokio::test]
async fn totp_enrolment_needs_the_password_and_a_code_of_the_new_secret() {
    let app = app().await;
    let (_, token) = app.user(false).await;
    let (status, body) = app
        .call(Method::GET, "/users/me/mfa", &token, json!({}))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"totp": false, "recovery_codes_left": 0, "passkeys": 0})
        )
    );
    let begin = |body: Value| app.call(Method::POST, "/users/me/mfa/totp", &token, body);
    let (status, body) = begin(json!({})).await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_CURRENT_PASSWORD_REQUIRED")
        )
    );
    let (status, body) = begin(json!({"current_password": "wrong-password"})).await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_BAD_CURRENT_PASSWORD")
        )
    );
    let confirm = |code: String| {
        app.call(
            Method::POST,
            "/users/me/mfa/totp/confirm",
            &token,
            json!({"code": code}),
        )
    };
    let (status, body) = confirm("123456".into()).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_NOT_ENABLED"))
    );

    let (status, body) = begin(json!({"current_password": PASSWORD})).await;
    assert_eq!(status, StatusCode::OK);
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(
        body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    let (_, status_body) = app
        .call(Method::GET, "/users/me/mfa", &token, json!({}))
        .await;
    assert_eq!(status_body["totp"], false, "not active until confirmed");

    let wrong = format!(
        "{:06}",
        (code(&secret, 0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let (status, body) = confirm(wrong).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE"))
    );
    let (status, body) = confirm(code(&secret, 0)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes = body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    let (_, status_body) = app
        .call(Method::GET, "/users/me/mfa", &token, json!({}))
        .await;
    assert_eq!(
        status_body,
        json!({"totp": true, "recovery_codes_left": 10, "passkeys": 0})
    );
    let (status, body) = begin(json!({"current_password": PASSWORD})).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_ALREADY_ENABLED"))
    );
    assert_eq!(
        *app.changes.0.lock().unwrap(),
        vec![SecondFactorChange::Added]
    );
}

#[tokio::test]
async fn sign_in_asks_for_the_second_factor_and_refuses_a_replayed_step() {
    let app = app().await;
    let (email, token) = app.user(false).await;
    let (secret, _, confirmation) = app.enrol_with_code(&token).await;
    let mfa_token = app.first_step(&email).await;

    // The confirmation's code is spent (its step, within the skew, is used).
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "code": confirmation}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE"))
    );
    // One code, replayed as it was typed: computed again later it could be of the next step
    // once a 30 s boundary passes, and the replay checks below would test nothing.
    let next = code(&secret, 1);
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "code": next}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "bearer");
    let (status, me) = app
        .call(
            Method::GET,
            "/users/me",
            body["access_token"].as_str().unwrap(),
            json!({}),
        )
        .await;
    assert_eq!((status, &me["email"]), (StatusCode::OK, &json!(email)));

    // The token is spent; a new sign-in cannot reuse the step either.
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "code": next}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID"))
    );
    let again = app.first_step(&email).await;
    let (status, body) = app
        .second_step(json!({"mfa_token": again, "code": next}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE"))
    );

    // Garbage, a missing code, and another backend's route.
    let (status, body) = app
        .second_step(json!({"mfa_token": "nonsense", "code": "123456"}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID"))
    );
    let (status, _) = app.second_step(json!({"mfa_token": again})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app.second_step(json!({"code": "123456"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_second_step_takes_a_form_too() {
    let app = app().await;
    let (email, token) = app.user(false).await;
    let (secret, _) = app.enrol(&token).await;
    let mfa_token = app.first_step(&email).await;
    let r = reqwest::Client::new()
        .post(format!("{}/auth/jwt/mfa", app.base))
        .form(&[
            ("mfa_token", mfa_token.as_str()),
            ("code", code(&secret, 1).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn five_wrong_codes_kill_the_token() {
    let app = app().await;
    let (email, token) = app.user(false).await;
    let (secret, _) = app.enrol(&token).await;
    let mfa_token = app.first_step(&email).await;
    let right = code(&secret, 1);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    for attempt in 1..=5 {
        let (status, body) = app
            .second_step(json!({"mfa_token": mfa_token, "code": wrong}))
            .await;
        assert_eq!(
            (status, &body["detail"]),
            (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE")),
            "attempt {attempt}"
        );
    }
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "code": right}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_TOKEN_INVALID")),
        "the right code after five wrong ones is too late"
    );
}

#[tokio::test]
async fn recovery_codes_work_once_and_regeneration_voids_them() {
    let app = app().await;
    let (email, token) = app.user(false).await;
    let (secret, codes) = app.enrol(&token).await;
    let mfa_token = app.first_step(&email).await;
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "recovery_code": codes[0].to_uppercase()}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mfa_token = app.first_step(&email).await;
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "recovery_code": codes[0]}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE")),
        "used twice"
    );
    let (_, status_body) = app
        .call(Method::GET, "/users/me/mfa", &token, json!({}))
        .await;
    assert_eq!(status_body["recovery_codes_left"], 9);

    let regenerate = |code: String| {
        app.call(
            Method::POST,
            "/users/me/mfa/recovery-codes",
            &token,
            json!({"code": code}),
        )
    };
    let (status, body) = regenerate("000000".into()).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE"))
    );
    let (status, body) = regenerate(code(&secret, 1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    let (status, body) = app
        .second_step(json!({"mfa_token": mfa_token, "recovery_code": codes[1]}))
        .await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE")),
        "old codes void"
    );
    let (status, _) = app
        .second_step(json!({"mfa_token": mfa_token, "recovery_code": fresh[1]}))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_factor_is_removed_by_code_password_or_a_superuser() {
    let app = app().await;
    let (email, token) = app.user(false).await;
    let (secret, _) = app.enrol(&token).await;
    let disable = |body: Value| app.call(Method::DELETE, "/users/me/mfa/totp", &token, body);
    let (status, body) = disable(json!({})).await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_CURRENT_PASSWORD_REQUIRED")
        )
    );
    let (status, body) = disable(json!({"code": "000000"})).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_INVALID_CODE"))
    );
    let (status, body) = disable(json!({"current_password": "wrong"})).await;
    assert_eq!(
        (status, &body["detail"]),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_BAD_CURRENT_PASSWORD")
        )
    );
    let (status, _) = disable(json!({"code": code(&secret, 1)})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = disable(json!({"current_password": PASSWORD})).await;
    assert_eq!(
        (status, &body["detail"]),
        (StatusCode::BAD_REQUEST, &json!("MFA_NOT_ENABLED"))
    );
    // Signing in is one step again.
    let token = login(&app.base, &email, PASSWORD).await;

    let (_, _) = app.enrol(&token).await;
    let me: Value = app
        .call(Method::GET, "/users/me", &token, json!({}))
        .await
        .1;
    let path = format!("/users/{}/mfa", me["id"].as_str().unwrap());
    let (status, _) = app.call(Method::DELETE, &path, &token, json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only a superuser");
    let (_, admin) = app.user(true).await;
    let (status, _) = app.call(Method::DELETE, &path, &admin, json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/users/{}/mfa", uuid::Uuid::new_v4()),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    login(&app.base, &email, PASSWORD).await;
    assert_eq!(
        *app.changes.0.lock().unwrap(),
        vec![
            SecondFactorChange::Added,
            SecondFactorChange::Removed,
            SecondFactorChange::Added,
            SecondFactorChange::RemovedBySuperuser,
        ]
    );
}
