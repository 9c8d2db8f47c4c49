//! The library as an application uses it: custom fields, hooks, integer ids, extractors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use axum_users::{
    ActiveUser, Argon2Params, AxumUsers, CurrentUser, InvalidPassword, MaybeUser, MemoryStore,
    PasswordOwner, Superuser, User, UserFields, UserHooks, UserStore, VerifiedUser,
};
use http::request::Parts;
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(crate) const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
pub(crate) const FAST: Argon2Params = Argon2Params {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

pub(crate) async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub(crate) async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = reqwest::Client::new().request(method, url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn login(base: &str, email: &str, password: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {body}"))
        .to_owned()
}

/// The application's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Profile {
    #[serde(default)]
    display_name: Option<String>,
}

/// A PATCH of them.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ProfileUpdate {
    #[serde(default)]
    display_name: Option<String>,
}

impl UserFields for Profile {
    type Update = ProfileUpdate;

    fn apply(&mut self, update: ProfileUpdate) {
        if let Some(name) = update.display_name {
            self.display_name = Some(name);
        }
    }
}

#[tokio::test]
async fn custom_fields_flow_through_register_read_and_update() {
    let store: MemoryStore<uuid::Uuid, Profile> = MemoryStore::new();
    let users = AxumUsers::builder(store.clone(), SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    let (status, body) = call(
        reqwest::Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "ann@example.com", "password": "annpass-long-2", "display_name": "Ann"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["display_name"], "Ann");
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "email",
            "is_active",
            "is_superuser",
            "is_verified",
            "display_name"
        ]
    );
    let token = login(&base, "ann@example.com", "annpass-long-2").await;
    let (_, me) = call(
        reqwest::Method::GET,
        format!("{base}/users/me"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(me["display_name"], "Ann");
    let (status, me) = call(
        reqwest::Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"display_name": "Annie"})),
    )
    .await;
    assert_eq!(
        (status, me["display_name"].clone()),
        (StatusCode::OK, json!("Annie"))
    );
    let stored = store
        .get_by_email("ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.fields.display_name.as_deref(),
        Some("Annie"),
        "the store keeps it"
    );
    // A field of the wrong type is a 422, not a 500.
    let (status, body) = call(
        reqwest::Method::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"display_name": 42})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// Records every hook call, in order.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<String>>>,
    tokens: Arc<Mutex<Vec<String>>>,
    slow_mail: bool,
}

impl Recorder {
    fn push(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl UserHooks<i64, axum_users::NoFields> for Recorder {
    async fn validate_password(
        &self,
        password: &str,
        owner: PasswordOwner<'_, i64, axum_users::NoFields>,
    ) -> Result<(), InvalidPassword> {
        let who = match owner {
            PasswordOwner::New { email, .. } => format!("new:{email}"),
            PasswordOwner::Existing(user) => format!("user:{}", user.id),
            _ => "other".to_owned(),
        };
        self.push(format!("validate_password({who})"));
        if password.contains("bad") {
            Err(InvalidPassword::new("no bad passwords"))
        } else {
            Ok(())
        }
    }
    async fn on_after_register(&self, user: &User<i64>, request: Option<&Parts>) {
        assert!(request.is_some());
        self.push(format!("register({})", user.id));
    }
    async fn on_after_update(&self, user: &User<i64>, update: &Value, _: Option<&Parts>) {
        self.push(format!("update({},{update})", user.id));
    }
    async fn on_after_login(
        &self,
        user: &User<i64>,
        _: Option<&Parts>,
        response: &mut axum::response::Response,
    ) {
        response
            .headers_mut()
            .insert("x-hooked", http::HeaderValue::from_static("yes"));
        self.push(format!("login({})", user.id));
    }
    async fn on_after_request_verify(&self, user: &User<i64>, token: &str, _: Option<&Parts>) {
        self.tokens.lock().unwrap().push(token.to_owned());
        self.push(format!("request_verify({})", user.id));
    }
    async fn on_after_verify(&self, user: &User<i64>, _: Option<&Parts>) {
        self.push(format!("verify({})", user.id));
    }
    async fn on_after_forgot_password(&self, user: &User<i64>, token: &str, _: Option<&Parts>) {
        if self.slow_mail {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        self.tokens.lock().unwrap().push(token.to_owned());
        self.push(format!("forgot_password({})", user.id));
    }
    async fn on_after_reset_password(&self, user: &User<i64>, _: Option<&Parts>) {
        self.push(format!("reset_password({})", user.id));
    }
    async fn on_before_delete(&self, user: &User<i64>, _: Option<&Parts>) {
        self.push(format!("before_delete({})", user.id));
    }
    async fn on_after_delete(&self, user: &User<i64>, _: Option<&Parts>) {
        self.push(format!("after_delete({})", user.id));
    }
}

async fn wait_for(recorder: &Recorder, n: usize) {
    for _ in 0..100 {
        if recorder.events().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("only {:?}", recorder.events());
}

#[tokio::test]
async fn hooks_fire_exactly_where_the_spec_says_with_integer_ids() {
    let recorder = Recorder::default();
    let store: MemoryStore<i64> = MemoryStore::new();
    let users = AxumUsers::builder(store.clone(), SECRET)
        .argon2(FAST)
        .hooks(recorder.clone())
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    use reqwest::Method as M;

    // A refused password fires only validate_password.
    let (status, body) = call(
        M::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "ivan@example.com", "password": "a-bad-long-phrase"})),
    )
    .await;
    assert_eq!(
        (status, body["detail"]["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!("no bad passwords"))
    );
    let (status, body) = call(
        M::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "ivan@example.com", "password": "good-one-long1"})),
    )
    .await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::CREATED, json!(1)),
        "integer ids come from the store"
    );
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[
            ("username", "ivan@example.com"),
            ("password", "good-one-long1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-hooked"],
        "yes",
        "on_after_login may change the response"
    );
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A failed login fires nothing.
    call(M::POST, format!("{base}/auth/jwt/login"), None, None).await;
    call(
        M::PATCH,
        format!("{base}/users/me"),
        Some(&token),
        Some(json!({"is_superuser": true})),
    )
    .await;
    call(
        M::POST,
        format!("{base}/auth/forgot-password"),
        None,
        Some(json!({"email": "ivan@example.com"})),
    )
    .await;
    wait_for(&recorder, 6).await;
    let reset = recorder.tokens.lock().unwrap()[0].clone();
    call(
        M::POST,
        format!("{base}/auth/reset-password"),
        None,
        Some(json!({"token": reset, "password": "good-two-long2"})),
    )
    .await;
    call(
        M::POST,
        format!("{base}/auth/request-verify-token"),
        None,
        Some(json!({"email": "ivan@example.com"})),
    )
    .await;
    wait_for(&recorder, 9).await;
    let verify = recorder.tokens.lock().unwrap()[1].clone();
    let (status, _) = call(
        M::POST,
        format!("{base}/auth/verify"),
        None,
        Some(json!({"token": verify})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        recorder.events(),
        [
            "validate_password(new:ivan@example.com)",
            "validate_password(new:ivan@example.com)",
            "register(1)",
            "login(1)",
            "update(1,{})",
            "forgot_password(1)",
            "validate_password(user:1)",
            "reset_password(1)",
            "request_verify(1)",
            "verify(1)",
        ]
    );
    let (_, user) = call(M::GET, format!("{base}/users/2"), Some(&token), None).await;
    assert_eq!(
        user["detail"], "Unauthorized",
        "the reset ended every session, this token's too"
    );
    let token = login(&base, "ivan@example.com", "good-two-long2").await;
    let (_, user) = call(M::GET, format!("{base}/users/2"), Some(&token), None).await;
    assert_eq!(user["detail"], "Forbidden");
}

#[tokio::test]
async fn forgot_password_answers_once_the_mail_is_written() {
    let recorder = Recorder {
        slow_mail: true,
        ..Recorder::default()
    };
    let store: MemoryStore<i64> = MemoryStore::new();
    let users = AxumUsers::builder(store, SECRET)
        .argon2(FAST)
        .hooks(recorder.clone())
        // Generous, so that a loaded machine cannot make the slow hook overrun it.
        .mail_answer_floor(Duration::from_secs(3))
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    call(
        reqwest::Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "jo@example.com", "password": "jopass-long-2"})),
    )
    .await;
    for email in ["jo@example.com", "nobody@example.com"] {
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/auth/forgot-password"),
            None,
            Some(json!({"email": email})),
        )
        .await;
        assert_eq!(
            (status, body),
            (StatusCode::ACCEPTED, Value::Null),
            "{email}"
        );
        assert_eq!(
            recorder
                .events()
                .iter()
                .filter(|e| e.starts_with("forgot_password"))
                .count(),
            1,
            "after {email}: the slow hook had returned before the answer, and only for jo"
        );
    }
}

#[tokio::test]
async fn extractors_answer_as_current_user_does() {
    let store: MemoryStore = MemoryStore::new();
    let users = AxumUsers::builder(store.clone(), SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/current",
            get(|CurrentUser(u): CurrentUser<_, _>| async move { u.email }),
        )
        .route(
            "/active",
            get(|ActiveUser(u): ActiveUser<_, _>| async move { u.email }),
        )
        .route(
            "/verified",
            get(|VerifiedUser(u): VerifiedUser<_, _>| async move { u.email }),
        )
        .route(
            "/super",
            get(|Superuser(u): Superuser<_, _>| async move { u.email }),
        )
        .route(
            "/maybe",
            get(|MaybeUser(u): MaybeUser<_, _>| async move {
                u.map(|u| u.email).unwrap_or_else(|| "anonymous".into())
            }),
        )
        .with_state(users.clone())
        .merge(users.router());
    let base = serve(app).await;
    use reqwest::Method as M;
    call(
        M::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "kay@example.com", "password": "kaypass-long-2"})),
    )
    .await;
    let token = login(&base, "kay@example.com", "kaypass-long-2").await;
    let get = |path: &'static str, token: Option<String>| {
        let base = base.clone();
        async move { call(M::GET, format!("{base}{path}"), token.as_deref(), None).await }
    };
    assert_eq!(
        get("/maybe", None).await,
        (StatusCode::OK, json!("anonymous"))
    );
    assert_eq!(
        get("/active", None).await,
        (StatusCode::UNAUTHORIZED, json!({"detail": "Unauthorized"}))
    );
    assert_eq!(
        get("/active", Some(token.clone())).await,
        (StatusCode::OK, json!("kay@example.com"))
    );
    assert_eq!(
        get("/verified", Some(token.clone())).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("/super", Some(token.clone())).await.0,
        StatusCode::FORBIDDEN
    );

    let kay = store
        .get_by_email("kay@example.com")
        .await
        .unwrap()
        .unwrap();
    let mut changes = axum_users::UserChanges::default();
    changes.is_active = Some(false);
    changes.is_superuser = Some(true);
    store.update(&kay.id, changes).await.unwrap();
    assert_eq!(
        get("/active", Some(token.clone())).await.0,
        StatusCode::UNAUTHORIZED,
        "flags are re-read on every request"
    );
    assert_eq!(
        get("/super", Some(token.clone())).await.0,
        StatusCode::UNAUTHORIZED,
        "the active check wins"
    );
    assert_eq!(
        get("/current", Some(token.clone())).await,
        (StatusCode::OK, json!("kay@example.com")),
        "inactive users pass current_user()"
    );
    assert_eq!(
        get("/maybe", Some(token)).await,
        (StatusCode::OK, json!("kay@example.com"))
    );
}

#[tokio::test]
async fn requires_verification_guards_login_and_the_users_routes() {
    let store: MemoryStore = MemoryStore::new();
    let users = AxumUsers::builder(store.clone(), SECRET)
        .argon2(FAST)
        .requires_verification(true)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    use reqwest::Method as M;
    call(
        M::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "lou@example.com", "password": "loupass-long-2"})),
    )
    .await;
    let form = [
        ("username", "lou@example.com"),
        ("password", "loupass-long-2"),
    ];
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "LOGIN_USER_NOT_VERIFIED"})
    );
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .form(&[("username", "lou@example.com"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
        "the password is checked first"
    );
    let lou = store
        .get_by_email("lou@example.com")
        .await
        .unwrap()
        .unwrap();
    let verified = |flag: bool| {
        let mut changes = axum_users::UserChanges::default();
        changes.is_verified = Some(flag);
        changes
    };
    store.update(&lou.id, verified(true)).await.unwrap();
    let token = login(&base, "lou@example.com", "loupass-long-2").await;
    store.update(&lou.id, verified(false)).await.unwrap();
    assert_eq!(
        call(M::GET, format!("{base}/users/me"), Some(&token), None)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn weak_secrets_and_duplicate_backends_are_refused_at_build() {
    let store: MemoryStore = MemoryStore::new();
    assert!(matches!(
        AxumUsers::builder(store.clone(), "short").build(),
        Err(axum_users::BuildError::WeakSecret)
    ));
    let builder = AxumUsers::builder(store, SECRET);
    let jwt = builder.jwt_strategy().unwrap();
    let duplicate = axum_users::AuthBackend::new(
        "jwt",
        axum_users::Transport::Bearer {
            token_url: "x".into(),
        },
        jwt,
    );
    assert!(matches!(
        builder.backend(duplicate).build(),
        Err(axum_users::BuildError::DuplicateBackend(_))
    ));
}

#[tokio::test]
async fn login_accepts_multipart_forms() {
    let store: MemoryStore = MemoryStore::new();
    let users = AxumUsers::builder(store, SECRET)
        .argon2(FAST)
        .build()
        .unwrap();
    let base = serve(users.router()).await;
    call(
        reqwest::Method::POST,
        format!("{base}/auth/register"),
        None,
        Some(json!({"email": "max@example.com", "password": "maxpass-long-2"})),
    )
    .await;
    let body = "--b0undary\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nmax@example.com\r\n--b0undary\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nmaxpass-long-2\r\n--b0undary--\r\n";
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .header("content-type", "multipart/form-data; boundary=b0undary")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["token_type"], "bearer");
}

/// A mail hook that takes its time, as a real mail server does (the answer waits for it).
#[derive(Clone, Default)]
struct SlowVerifyMail(Arc<Mutex<Vec<String>>>);

impl UserHooks<i64, axum_users::NoFields> for SlowVerifyMail {
    async fn on_after_request_verify(&self, _: &User<i64>, token: &str, _: Option<&Parts>) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.0.lock().unwrap().push(token.to_owned());
    }
}

#[tokio::test]
async fn register_queues_the_verification_when_asked_before_it_answers() {
    for send in [false, true] {
        let mail = SlowVerifyMail::default();
        let users = AxumUsers::builder(MemoryStore::<i64>::new(), SECRET)
            .argon2(FAST)
            .hooks(mail.clone())
            .send_verification_on_register(send)
            .build()
            .unwrap();
        let base = serve(users.router()).await;
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/auth/register"),
            None,
            Some(json!({"email": "vi@example.com", "password": "vipass-long-2"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        // No wait for background work: a crash after the 201 must not lose the mail.
        let tokens = mail.0.lock().unwrap().clone();
        if !send {
            assert!(tokens.is_empty(), "off by default, as the reference");
            continue;
        }
        assert_eq!(
            tokens.len(),
            1,
            "the mail was handed over before the answer"
        );
        let (status, body) = call(
            reqwest::Method::POST,
            format!("{base}/auth/verify"),
            None,
            Some(json!({"token": tokens[0]})),
        )
        .await;
        assert_eq!(
            (status, body["is_verified"].clone()),
            (StatusCode::OK, json!(true)),
            "{body}"
        );
    }
}
