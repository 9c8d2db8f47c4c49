//! OAuth sign-in, linking and unlinking against oidc-provider on loopback.

use std::sync::Arc;

use axum::Router;
use axum_users::oauth::{OAuthProvider, OpenIdConnectConfig};
use axum_users::{
    AxumUsers, CookieSettings, LoginAttempt, LoginRefused, MemoryStore, NoFields,
    OAuthAccountStore, OAuthClient, OAuthPolicy, SecondFactor, SecurityEvent, SignInMethod, User,
    UserHooks, UserStore,
};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::oidc_provider::{ClientRegistration, OidcTestProvider, TestAccount, login, try_login};

const CLIENT_ID: &str = "axum-users-test";
const CLIENT_SECRET: &str = "a-client-secret-for-the-tests";
const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

/// The app (on a real port) and the identity provider.
struct World {
    base: String,
    store: MemoryStore,
    steps: LoginSteps,
    _idp: OidcTestProvider,
}

/// Records the login seams the manager calls, in order.
#[derive(Clone, Default)]
struct LoginSteps(Arc<std::sync::Mutex<Vec<String>>>);

impl LoginSteps {
    fn push(&self, step: impl Into<String>) {
        self.0.lock().unwrap().push(step.into());
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl UserHooks<uuid::Uuid, NoFields> for LoginSteps {
    async fn before_login(&self, attempt: &LoginAttempt<'_>) -> Result<(), LoginRefused> {
        self.push(format!("before_login({})", attempt.method));
        Ok(())
    }
    async fn second_factor(&self, _: &User, method: &SignInMethod) -> SecondFactor {
        self.push(format!("second_factor({method})"));
        SecondFactor::NotRequired
    }
    async fn on_after_login(
        &self,
        _: &User,
        _: Option<&http::request::Parts>,
        _: &mut axum::response::Response,
    ) {
        self.push("on_after_login");
    }
    async fn on_security_event(&self, event: SecurityEvent<'_, uuid::Uuid, NoFields>) {
        match event {
            SecurityEvent::LoginSucceeded { method, .. } => {
                self.push(format!("login_succeeded({method})"))
            }
            SecurityEvent::LoginFailed { reason, .. } => {
                self.push(format!("login_failed({reason})"))
            }
            _ => self.push("other event"),
        }
    }
}

async fn world(policy: OAuthPolicy) -> Option<World> {
    world_with(policy, CLIENT_ID, None).await
}

/// A port for the app and an identity provider that knows its callback URLs.
async fn listener_and_idp() -> Option<(tokio::net::TcpListener, String, OidcTestProvider)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let callbacks = [
        format!("{base}/auth/oidc/callback"),
        format!("{base}/auth/associate/oidc/callback"),
    ];
    let registrations = [
        ClientRegistration::new(CLIENT_ID, CLIENT_SECRET, callbacks.clone()),
        ClientRegistration::new("another-client", CLIENT_SECRET, callbacks),
    ];
    let idp = OidcTestProvider::start(&registrations)?;
    Some((listener, base, idp))
}

async fn discover(idp: &OidcTestProvider, client_id: &str) -> Arc<dyn OAuthProvider> {
    Arc::new(
        OpenIdConnectConfig::new(idp.issuer(), client_id, CLIENT_SECRET)
            .with_name("oidc")
            .trust_email_verified(true)
            .discover()
            .await
            .unwrap(),
    )
}

/// Serves the whole API with one OAuth client on `listener`.
fn serve_app(
    listener: tokio::net::TcpListener,
    base: String,
    client: OAuthClient,
    idp: OidcTestProvider,
) -> World {
    serve_app_with(listener, base, client, idp, |builder| builder)
}

/// [`serve_app`], with more settings on the builder.
fn serve_app_with(
    listener: tokio::net::TcpListener,
    base: String,
    client: OAuthClient,
    idp: OidcTestProvider,
    settings: impl FnOnce(
        axum_users::AxumUsersBuilder<MemoryStore, LoginSteps>,
    ) -> axum_users::AxumUsersBuilder<MemoryStore, LoginSteps>,
) -> World {
    let store = MemoryStore::new();
    let steps = LoginSteps::default();
    let builder = AxumUsers::builder(store.clone(), SECRET).hooks(steps.clone());
    let users = settings(builder)
        .cookie(CookieSettings::auth().with_secure(false))
        .argon2(axum_users::Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .public_url(base.clone())
        .oauth(client)
        .build()
        .unwrap();
    let app: Router = users.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    World {
        base,
        store,
        steps,
        _idp: idp,
    }
}

async fn world_with(
    policy: OAuthPolicy,
    client_id: &str,
    after_login: Option<(&str, &str)>,
) -> Option<World> {
    let (listener, base, idp) = listener_and_idp().await?;
    let mut client = OAuthClient::new(discover(&idp, client_id).await).with_policy(policy);
    if let Some((url, backend)) = after_login {
        client = client.with_after_login_redirect(url).with_backend(backend);
    }
    Some(serve_app(listener, base, client, idp))
}

fn browser() -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn read(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Starts a flow in `browser` (which keeps the CSRF cookie) and signs in at the provider.
    async fn authorize(
        &self,
        browser: &Client,
        path: &str,
        bearer: Option<&str>,
        account: &TestAccount,
    ) -> (String, String) {
        let mut request = browser.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let r = request.send().await.unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            cookie.starts_with("fastapiusersoauthcsrf=")
                || cookie.starts_with("__Host-fastapiusersoauthcsrf="),
            "{cookie}"
        );
        // A linking state lives 10 minutes, a sign-in state an hour (as the reference).
        let lifetime = if path.contains("/associate/") {
            600
        } else {
            3600
        };
        assert!(
            cookie.contains(&format!(
                "HttpOnly; Max-Age={lifetime}; Path=/; SameSite=lax"
            )),
            "{cookie}"
        );
        let (status, body) = read(r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = body["authorization_url"].as_str().unwrap().to_owned();
        assert!(
            url.contains("code_challenge_method=S256") && url.contains("nonce="),
            "{url}"
        );
        let cb = login(&url, account).await;
        (cb.code, cb.state)
    }

    async fn callback(
        &self,
        browser: &Client,
        path: &str,
        code: &str,
        state: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = browser
            .get(self.url(path))
            .query(&[("code", code), ("state", state)]);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    /// A full sign-in; returns the callback's answer.
    async fn sign_in(&self, account: &TestAccount) -> (StatusCode, Value) {
        let b = browser();
        let (code, state) = self
            .authorize(&b, "/auth/oidc/authorize", None, account)
            .await;
        self.callback(&b, "/auth/oidc/callback", &code, &state, None)
            .await
    }

    /// Links `account` to the user of the Bearer `token`, in one browser.
    async fn link(&self, token: &str, account: &TestAccount) -> (StatusCode, Value) {
        let b = browser();
        let path = "/auth/associate/oidc";
        let authorize = format!("{path}/authorize");
        let (code, state) = self.authorize(&b, &authorize, Some(token), account).await;
        let callback = format!("{path}/callback");
        self.callback(&b, &callback, &code, &state, Some(token))
            .await
    }

    /// Registers a user and signs them in with the cookie backend, in a new browser.
    async fn cookie_user(&self, email: &str, password: &str) -> Client {
        self.register(email, password).await;
        let b = browser();
        let login = b
            .post(self.url("/auth/cookie/login"))
            .form(&[("username", email), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::NO_CONTENT);
        b
    }

    /// How many provider accounts the user of `email` has linked.
    async fn linked(&self, email: &str) -> usize {
        let user = self.store.get_by_email(email).await.unwrap().unwrap();
        self.store
            .list_oauth_accounts(&user.id)
            .await
            .unwrap()
            .len()
    }

    async fn me(&self, token: &str) -> Value {
        let (status, body) = read(
            browser()
                .get(self.url("/users/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn register(&self, email: &str, password: &str) -> String {
        let c = browser();
        let (status, body) = read(
            c.post(self.url("/auth/register"))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (_, body) = read(
            c.post(self.url("/auth/jwt/login"))
                .form(&[("username", email), ("password", password)])
                .send()
                .await
                .unwrap(),
        )
        .await;
        body["access_token"].as_str().unwrap().to_owned()
    }
}

fn token(body: &Value) -> &str {
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {body}"))
}

#[tokio::test]
async fn first_sign_in_creates_the_user_and_the_second_finds_it_and_refreshes_tokens() {
    let Some(w) = world(OAuthPolicy {
        associate_by_email: false,
        is_verified_by_default: true,
    })
    .await
    else {
        return;
    };
    let carol = TestAccount::new("carol", Some("Carol@Example.com"), true);
    let (status, body) = w.sign_in(&carol).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = w.me(token(&body)).await;
    assert_eq!(
        (
            me["email"].clone(),
            me["is_verified"].clone(),
            me["is_active"].clone()
        ),
        (json!("Carol@example.com"), json!(true), json!(true))
    );

    let user = w
        .store
        .get_by_email("carol@example.com")
        .await
        .unwrap()
        .unwrap();
    let first = w.store.list_oauth_accounts(&user.id).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].oauth_name.as_str(), first[0].account_id.as_str()),
        ("oidc", "carol")
    );
    assert!(
        !user.hashed_password.is_usable(),
        "no password until the user sets one"
    );

    let (status, body) = w.sign_in(&carol).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.me(token(&body)).await["id"], me["id"], "the same user");
    let second = w.store.list_oauth_accounts(&user.id).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_ne!(
        second[0].access_token, first[0].access_token,
        "the stored tokens were updated"
    );

    // A password login for this OAuth-only user is refused like any wrong password.
    let (status, body) = read(
        browser()
            .post(w.url("/auth/jwt/login"))
            .form(&[("username", "carol@example.com"), ("password", "")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = read(
        browser()
            .post(w.url("/auth/jwt/login"))
            .form(&[("username", "carol@example.com"), ("password", "guess")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::BAD_REQUEST, json!("LOGIN_BAD_CREDENTIALS"))
    );
}

#[tokio::test]
async fn linking_by_e_mail_needs_the_policy_and_a_verified_address() {
    let Some(w) = world(OAuthPolicy {
        associate_by_email: true,
        is_verified_by_default: false,
    })
    .await
    else {
        return;
    };
    // An attacker registers the victim's address with a password of their own...
    let password_token = w.register("dana@example.com", "pw-of-the-dance-1").await;
    let (status, body) = w
        .sign_in(&TestAccount::new(
            "dana-unverified",
            Some("dana@example.com"),
            false,
        ))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_EMAIL_NOT_VERIFIED"})
        ),
        "an address the provider did not verify is never linked nor used"
    );
    // ...and the victim signs in with a provider that verified it: the unverified local
    // account is not linked (that was the pre-registration takeover), nothing is touched.
    let (status, body) = w
        .sign_in(&TestAccount::new("dana", Some("DANA@example.com"), true))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_USER_ALREADY_EXISTS"})
        ),
        "a local account whose address is not verified is never linked"
    );
    let dana = w
        .store
        .get_by_email("dana@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        w.store
            .list_oauth_accounts(&dana.id)
            .await
            .unwrap()
            .is_empty()
    );
    // Once the local owner proved the address, linking by e-mail is safe.
    let mut verified = axum_users::UserChanges::default();
    verified.is_verified = Some(true);
    w.store.update(&dana.id, verified).await.unwrap();
    let (status, body) = w
        .sign_in(&TestAccount::new("dana", Some("DANA@example.com"), true))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        w.me(token(&body)).await["id"],
        w.me(&password_token).await["id"]
    );

    let Some(strict) = world(OAuthPolicy::default()).await else {
        return;
    };
    strict
        .register("erin@example.com", "pw-of-the-river-1")
        .await;
    let (status, body) = strict
        .sign_in(&TestAccount::new("erin", Some("erin@example.com"), true))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_USER_ALREADY_EXISTS"})
        ),
        "no linking without the policy"
    );
}

#[tokio::test]
async fn a_provider_without_an_e_mail_is_refused() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let (status, body) = w.sign_in(&TestAccount::new("no-mail", None, false)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_NOT_AVAILABLE_EMAIL"})
        )
    );
}

#[tokio::test]
async fn state_and_csrf_are_checked_before_the_code_is_spent() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let account = TestAccount::new("frank", Some("frank@example.com"), true);
    let b = browser();
    let (code, state) = w
        .authorize(&b, "/auth/oidc/authorize", None, &account)
        .await;

    // Tampered state.
    let tampered = format!("{}x", &state[..state.len() - 1]);
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", &code, &tampered, None)
            .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "ACCESS_TOKEN_DECODE_ERROR"})
        )
    );
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", &code, "not-a-jwt", None)
            .await
            .1["detail"],
        "ACCESS_TOKEN_DECODE_ERROR"
    );
    // Missing CSRF cookie (another browser), then a foreign one.
    assert_eq!(
        w.callback(&browser(), "/auth/oidc/callback", &code, &state, None)
            .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_INVALID_STATE"})
        )
    );
    let foreign = browser();
    foreign
        .get(w.url("/auth/oidc/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.callback(&foreign, "/auth/oidc/callback", &code, &state, None)
            .await
            .1["detail"],
        "OAUTH_INVALID_STATE"
    );
    // A sign-in state at the associate callback (flow binding).
    let bob = w.register("bob@example.com", "bobpass1").await;
    assert_eq!(
        w.callback(
            &b,
            "/auth/associate/oidc/callback",
            &code,
            &state,
            Some(&bob)
        )
        .await
        .1["detail"],
        "OAUTH_INVALID_STATE"
    );
    // None of those spent the code: the real callback still works.
    let (status, body) = w
        .callback(&b, "/auth/oidc/callback", &code, &state, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The code is single-use at the provider; the CSRF cookie was cleared too.
    let (status, body) = w
        .callback(&b, "/auth/oidc/callback", &code, &state, None)
        .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::BAD_REQUEST, json!("OAUTH_INVALID_STATE"))
    );
}

#[tokio::test]
async fn replayed_codes_and_wrong_pkce_verifiers_are_refused_by_the_provider() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let account = TestAccount::new("gina", Some("gina@example.com"), true);
    let b = browser();
    let (code, state) = w
        .authorize(&b, "/auth/oidc/authorize", None, &account)
        .await;
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", &code, &state, None)
            .await
            .0,
        StatusCode::OK
    );
    // Replay with a fresh CSRF cookie and state: the provider refuses the spent code.
    let (_, state2) = w
        .authorize(&b, "/auth/oidc/authorize", None, &account)
        .await;
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", &code, &state2, None)
            .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_CODE_EXCHANGE_FAILED"})
        )
    );
    // A code issued for one flow's PKCE challenge, redeemed with another flow's state: wrong verifier.
    let (code_a, _state_a) = w
        .authorize(&b, "/auth/oidc/authorize", None, &account)
        .await;
    let (_code_b, state_b) = w
        .authorize(&b, "/auth/oidc/authorize", None, &account)
        .await;
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", &code_a, &state_b, None)
            .await
            .1["detail"],
        "OAUTH_CODE_EXCHANGE_FAILED"
    );
}

#[tokio::test]
async fn provider_errors_and_missing_codes() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let b = browser();
    let (status, body) = read(
        b.get(w.url("/auth/oidc/callback?error=access_denied&state=x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"detail": "access_denied"}))
    );
    let (status, body) = read(
        b.get(w.url("/auth/oidc/callback?error=%3Cscript%3E"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::BAD_REQUEST, json!("script")),
        "reflected text is reduced to a code"
    );
    let (status, body) = read(
        b.get(w.url("/auth/oidc/callback?state=x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"detail": "Bad Request"}))
    );
}

/// A provider that signs in as one client but checks id_tokens as another, or that sends the
/// provider another nonce than the one bound to the state: what an id_token injected from
/// another client or another session looks like.
struct Twisted {
    sign_in_as: Arc<dyn OAuthProvider>,
    check_as: Arc<dyn OAuthProvider>,
    swap_nonce: bool,
}

impl OAuthProvider for Twisted {
    fn name(&self) -> &str {
        "oidc"
    }

    fn authorization_url(
        &self,
        req: &axum_users::oauth::AuthorizationRequest,
    ) -> Result<url::Url, axum_users::oauth::OAuthError> {
        let mut req = req.clone();
        if self.swap_nonce {
            req.nonce = Some("a-nonce-from-another-session".into());
        }
        self.sign_in_as.authorization_url(&req)
    }

    fn exchange_code<'a>(
        &'a self,
        code: &'a str,
        redirect_uri: &'a str,
        verifier: Option<&'a axum_users::oauth::PkceVerifier>,
    ) -> axum_users::oauth::BoxFuture<
        'a,
        Result<axum_users::oauth::OAuthToken, axum_users::oauth::OAuthError>,
    > {
        self.sign_in_as.exchange_code(code, redirect_uri, verifier)
    }

    fn identity<'a>(
        &'a self,
        token: &'a axum_users::oauth::OAuthToken,
        nonce: Option<&'a str>,
    ) -> axum_users::oauth::BoxFuture<
        'a,
        Result<axum_users::oauth::ProviderIdentity, axum_users::oauth::OAuthError>,
    > {
        self.check_as.identity(token, nonce)
    }
}

async fn twisted_world(swap_nonce: bool) -> Option<World> {
    let (listener, base, idp) = listener_and_idp().await?;
    let ours = discover(&idp, CLIENT_ID).await;
    let sign_in_as = if swap_nonce {
        ours.clone()
    } else {
        discover(&idp, "another-client").await
    };
    let provider = Twisted {
        sign_in_as,
        check_as: ours,
        swap_nonce,
    };
    Some(serve_app(
        listener,
        base,
        OAuthClient::new(Arc::new(provider)),
        idp,
    ))
}

#[tokio::test]
async fn id_tokens_for_another_audience_or_nonce_are_refused() {
    for swap_nonce in [false, true] {
        let Some(w) = twisted_world(swap_nonce).await else {
            return;
        };
        let (status, body) = w
            .sign_in(&TestAccount::new("hank", Some("hank@example.com"), true))
            .await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"detail": "OAUTH_INVALID_ID_TOKEN"})
            ),
            "swap_nonce={swap_nonce}"
        );
        assert!(
            w.store
                .get_by_email("hank@example.com")
                .await
                .unwrap()
                .is_none(),
            "no user was made"
        );
    }
}

#[tokio::test]
async fn single_page_apps_get_a_redirect_with_the_cookie() {
    let Some(w) = world_with(
        OAuthPolicy::default(),
        CLIENT_ID,
        Some(("https://spa.example.com/signed-in", "cookie")),
    )
    .await
    else {
        return;
    };
    let b = browser();
    let (code, state) = w
        .authorize(
            &b,
            "/auth/oidc/authorize",
            None,
            &TestAccount::new("ivy", Some("ivy@example.com"), true),
        )
        .await;
    let r = b
        .get(w.url("/auth/oidc/callback"))
        .query(&[("code", &code), ("state", &state)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "https://spa.example.com/signed-in");
    let cookies: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("fastapiusersauth=ey")),
        "{cookies:?}"
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("fastapiusersoauthcsrf=\"\"; HttpOnly; Max-Age=0")),
        "{cookies:?}"
    );
}

#[tokio::test]
async fn associate_then_list_then_unlink() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let alice = w.register("alice@example.com", "pw-of-the-mirror-1").await;
    let bob = w.register("bob@example.com", "bobpass1").await;
    let (status, _) = read(
        browser()
            .get(w.url("/auth/associate/oidc/authorize"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let b = browser();
    let elsewhere = TestAccount::new("alice-at-idp", Some("alice.elsewhere@example.com"), false);
    let (code, state) = w
        .authorize(
            &b,
            "/auth/associate/oidc/authorize",
            Some(&alice),
            &elsewhere,
        )
        .await;
    // Another user cannot use alice's state.
    assert_eq!(
        w.callback(
            &b,
            "/auth/associate/oidc/callback",
            &code,
            &state,
            Some(&bob)
        )
        .await,
        (StatusCode::BAD_REQUEST, json!({"detail": "Bad Request"}))
    );
    // That ended the flow (the state had matched the cookie): alice starts again.
    let b = browser();
    let (code, state) = w
        .authorize(
            &b,
            "/auth/associate/oidc/authorize",
            Some(&alice),
            &elsewhere,
        )
        .await;
    let (status, body) = w
        .callback(
            &b,
            "/auth/associate/oidc/callback",
            &code,
            &state,
            Some(&alice),
        )
        .await;
    assert_eq!(
        (status, body["email"].clone()),
        (StatusCode::OK, json!("alice@example.com"))
    );

    // Signing in with the linked account logs in alice, whatever e-mail the provider says now.
    let (status, body) = w
        .sign_in(&TestAccount::new(
            "alice-at-idp",
            Some("whatever@example.com"),
            true,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.me(token(&body)).await["email"], "alice@example.com");

    // The same external account cannot be linked to bob as well.
    let b2 = browser();
    let (code, state) = w
        .authorize(
            &b2,
            "/auth/associate/oidc/authorize",
            Some(&bob),
            &elsewhere,
        )
        .await;
    assert_eq!(
        w.callback(
            &b2,
            "/auth/associate/oidc/callback",
            &code,
            &state,
            Some(&bob)
        )
        .await
        .1["detail"],
        "OAUTH_ACCOUNT_ALREADY_LINKED"
    );

    let (status, listed) = read(
        browser()
            .get(w.url("/users/me/oauth-accounts"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let listed = listed.as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (
            listed[0]["oauth_name"].clone(),
            listed[0]["account_id"].clone(),
            listed[0]["account_email"].clone()
        ),
        (
            json!("oidc"),
            json!("alice-at-idp"),
            json!("whatever@example.com")
        )
    );
    let text = listed[0].to_string();
    assert!(!text.contains("token"), "no tokens in the listing: {text}");

    let id = listed[0]["id"].as_str().unwrap();
    assert_eq!(
        read(
            browser()
                .delete(w.url(&format!("/users/me/oauth-accounts/{id}")))
                .bearer_auth(&bob)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let r = browser()
        .delete(w.url(&format!("/users/me/oauth-accounts/{id}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        read(
            browser()
                .get(w.url("/users/me/oauth-accounts"))
                .bearer_auth(&alice)
                .send()
                .await
                .unwrap()
        )
        .await
        .1,
        json!([])
    );
}

#[tokio::test]
async fn the_last_way_to_sign_in_cannot_be_unlinked() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let (_, body) = w
        .sign_in(&TestAccount::new("jade", Some("jade@example.com"), true))
        .await;
    let jade = token(&body).to_owned();
    let (_, listed) = read(
        browser()
            .get(w.url("/users/me/oauth-accounts"))
            .bearer_auth(&jade)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = read(
        browser()
            .delete(w.url(&format!("/users/me/oauth-accounts/{id}")))
            .bearer_auth(&jade)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_LAST_SIGN_IN_METHOD"})
        )
    );
    assert_eq!(
        read(
            browser()
                .delete(w.url("/users/me/oauth-accounts/not-an-id"))
                .bearer_auth(&jade)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn inactive_users_cannot_sign_in_with_a_provider() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let kim = TestAccount::new("kim", Some("kim@example.com"), true);
    assert_eq!(w.sign_in(&kim).await.0, StatusCode::OK);
    let user = w
        .store
        .get_by_email("kim@example.com")
        .await
        .unwrap()
        .unwrap();
    let mut deactivate = axum_users::UserChanges::default();
    deactivate.is_active = Some(false);
    w.store.update(&user.id, deactivate).await.unwrap();
    assert_eq!(
        w.sign_in(&kim).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "LOGIN_BAD_CREDENTIALS"})
        )
    );
}

#[tokio::test]
async fn access_denied_at_the_provider_comes_back_as_its_code() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let b = browser();
    let r = b.get(w.url("/auth/oidc/authorize")).send().await.unwrap();
    let url = read(r).await.1["authorization_url"]
        .as_str()
        .unwrap()
        .to_owned();
    // The scripted login with a refusal: the provider redirects with error=access_denied.
    let refusal = try_login(
        &url,
        &TestAccount::new("lee", Some("lee@example.com"), true).deny(),
    )
    .await;
    let error = refusal.expect_err("the provider refuses");
    assert!(error.contains("error=access_denied"), "{error}");
    // The browser lands on our callback with that error (and the state): 400 with the code.
    let (status, body) = read(
        b.get(w.url("/auth/oidc/callback?error=access_denied&state=s"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"detail": "access_denied"}))
    );
}

/// A provider that answers authorization URLs but cannot be reached for the code exchange.
struct Unreachable(Arc<dyn OAuthProvider>);

impl OAuthProvider for Unreachable {
    fn name(&self) -> &str {
        "oidc"
    }

    fn authorization_url(
        &self,
        req: &axum_users::oauth::AuthorizationRequest,
    ) -> Result<url::Url, axum_users::oauth::OAuthError> {
        self.0.authorization_url(req)
    }

    fn exchange_code<'a>(
        &'a self,
        _code: &'a str,
        _redirect_uri: &'a str,
        _verifier: Option<&'a axum_users::oauth::PkceVerifier>,
    ) -> axum_users::oauth::BoxFuture<
        'a,
        Result<axum_users::oauth::OAuthToken, axum_users::oauth::OAuthError>,
    > {
        Box::pin(async { Err(axum_users::oauth::OAuthError::Timeout) })
    }

    fn identity<'a>(
        &'a self,
        _token: &'a axum_users::oauth::OAuthToken,
        _nonce: Option<&'a str>,
    ) -> axum_users::oauth::BoxFuture<
        'a,
        Result<axum_users::oauth::ProviderIdentity, axum_users::oauth::OAuthError>,
    > {
        Box::pin(async { Err(axum_users::oauth::OAuthError::Timeout) })
    }
}

/// A purpose's sub-key of the secret: HKDF-SHA256, salt `axum-users`, info
/// `axum-users/<purpose>/v1`, base64url.
fn sub_key(purpose: &str) -> String {
    let mut out = [0u8; 32];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"axum-users"), SECRET.as_bytes())
        .expand(format!("axum-users/{purpose}/v1").as_bytes(), &mut out)
        .unwrap();
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, out)
}

#[tokio::test]
async fn expired_or_foreign_states_and_unreachable_providers() {
    let Some((listener, base, idp)) = listener_and_idp().await else {
        return;
    };
    let provider = Unreachable(discover(&idp, CLIENT_ID).await);
    let w = serve_app(listener, base, OAuthClient::new(Arc::new(provider)), idp);
    let b = browser();
    let r = b.get(w.url("/auth/oidc/authorize")).send().await.unwrap();
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    let csrf = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    // The state is signed with the OAuth-state sub-key of the secret and carries a keyed hash
    // of the cookie's secret: derived here as docs/security.md describes.
    let codec =
        axum_users::JwtCodec::hs256(&axum_users::Secret::new(sub_key("oauth-state"))).unwrap();
    let csrf_hash = {
        use hmac::Mac;
        let key = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sub_key("oauth-csrf"),
        )
        .unwrap();
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(&(csrf.len() as u64).to_be_bytes());
        mac.update(csrf.as_bytes());
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            mac.finalize().into_bytes(),
        )
    };
    let state = |aud: &str, exp: i64| {
        codec
            .encode(&json!({"csrf_hash": csrf_hash, "provider": "oidc", "flow": "sign-in", "aud": aud, "exp": exp}))
            .unwrap()
    };
    let now = axum_users::now_unix();
    let expired = state(axum_users::OAUTH_STATE_AUDIENCE, now - 10);
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", "c", &expired, None)
            .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "ACCESS_TOKEN_ALREADY_EXPIRED"})
        )
    );
    // Signed with our key but for another purpose: the reference answered 500.
    let foreign = state(axum_users::AUTH_AUDIENCE, now + 60);
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", "c", &foreign, None)
            .await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "ACCESS_TOKEN_DECODE_ERROR"})
        )
    );
    // A good state, but the provider cannot be reached.
    let good = state(axum_users::OAUTH_STATE_AUDIENCE, now + 60);
    assert_eq!(
        w.callback(&b, "/auth/oidc/callback", "c", &good, None)
            .await,
        (
            StatusCode::BAD_GATEWAY,
            json!({"detail": "OAUTH_PROVIDER_UNAVAILABLE"})
        )
    );
}

#[tokio::test]
async fn every_way_in_runs_the_same_login_steps() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let steps = |method: &str| {
        vec![
            format!("before_login({method})"),
            format!("second_factor({method})"),
            "on_after_login".to_owned(),
            format!("login_succeeded({method})"),
        ]
    };
    w.register("steps@example.com", "pw-of-the-stairs-1").await;
    w.steps.take();
    for backend in ["jwt", "cookie"] {
        let r = browser()
            .post(w.url(&format!("/auth/{backend}/login")))
            .form(&[
                ("username", "steps@example.com"),
                ("password", "pw-of-the-stairs-1"),
            ])
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{backend}: {}", r.status());
        assert_eq!(w.steps.take(), steps("password"), "{backend}");
    }
    let (status, body) = w
        .sign_in(&TestAccount::new(
            "steps-idp",
            Some("steps-idp@example.com"),
            true,
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.steps.take(), steps("oauth:oidc"));
    // A refusal runs the same seam first and reports why.
    let r = browser()
        .post(w.url("/auth/jwt/login"))
        .form(&[("username", "steps@example.com"), ("password", "wrong")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        w.steps.take(),
        vec![
            "before_login(password)".to_owned(),
            "login_failed(LOGIN_BAD_CREDENTIALS)".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_bearer_redirect_carries_a_one_time_code_and_never_a_token() {
    let Some(w) = world_with(
        OAuthPolicy::default(),
        CLIENT_ID,
        Some(("https://spa.example.com/signed-in", "jwt")),
    )
    .await
    else {
        return;
    };
    let b = browser();
    let (code, state) = w
        .authorize(
            &b,
            "/auth/oidc/authorize",
            None,
            &TestAccount::new("jay", Some("jay@example.com"), true),
        )
        .await;
    let r = b
        .get(w.url("/auth/oidc/callback"))
        .query(&[("code", &code), ("state", &state)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        !location.contains('#') && !location.contains("access_token"),
        "{location}"
    );
    let login_code = location
        .strip_prefix("https://spa.example.com/signed-in?code=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    // The front end trades the code for the backend's normal login response, once.
    let redeem = || {
        browser()
            .post(w.url("/auth/oidc/token"))
            .json(&json!({"code": login_code}))
            .send()
    };
    let (status, body) = read(redeem().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = w.me(token(&body)).await;
    assert_eq!(me["email"], "jay@example.com");
    // Provider tokens are encrypted at rest.
    let id = uuid::Uuid::parse_str(me["id"].as_str().unwrap()).unwrap();
    let stored = w.store.list_oauth_accounts(&id).await.unwrap();
    assert!(stored[0].access_token.expose().starts_with("v1."), "sealed");
    let (status, body) = read(redeem().await.unwrap()).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_INVALID_LOGIN_CODE"})
        )
    );
    let (status, body) = read(
        browser()
            .post(w.url("/auth/oidc/token"))
            .json(&json!({"code": "forged"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_INVALID_LOGIN_CODE"})
        )
    );
}

#[tokio::test]
async fn a_leaked_code_and_state_cannot_be_redeemed_from_another_browser() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let victim = browser();
    let (code, state) = w
        .authorize(
            &victim,
            "/auth/oidc/authorize",
            None,
            &TestAccount::new("kim", Some("kim@example.com"), true),
        )
        .await;
    // The attacker has the URL (code + state) but not the victim's cookie; the state does not
    // hold the cookie's value, so nothing in it lets them make one.
    let attacker = browser();
    let payload = state.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims.get("csrftoken").is_none(), "{claims}");
    let guess = claims["csrf_hash"].as_str().unwrap();
    let r = attacker
        .get(w.url("/auth/oidc/callback"))
        .query(&[("code", &code), ("state", &state)])
        .header("cookie", format!("fastapiusersoauthcsrf={guess}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read(r).await,
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "OAUTH_INVALID_STATE"})
        )
    );
    // The victim's own browser still finishes the flow: the code was not spent.
    let (status, body) = w
        .callback(&victim, "/auth/oidc/callback", &code, &state, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// An application field filled from the provider's profile.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Named {
    #[serde(default)]
    display_name: Option<String>,
    /// The raw claim `sub`, to show the hook sees the provider's claims.
    #[serde(default)]
    provider_sub: Option<String>,
}

impl axum_users::UserFields for Named {
    type Update = Named;

    fn apply(&mut self, update: Named) {
        *self = update;
    }
}

/// Fills `Named` from the profile, and records each call.
#[derive(Clone, Default)]
struct FromProfile(Arc<std::sync::Mutex<Vec<String>>>);

impl UserHooks<uuid::Uuid, Named> for FromProfile {
    async fn on_oauth_profile(
        &self,
        profile: &axum_users::OAuthProfile,
        user: Option<&User<uuid::Uuid, Named>>,
    ) -> Option<Named> {
        let call = match user {
            None => "first sign-in".to_owned(),
            Some(user) => format!("link to {}", user.email),
        };
        self.0.lock().unwrap().push(call);
        Some(Named {
            display_name: profile.name.clone(),
            provider_sub: profile.claims["sub"].as_str().map(str::to_owned),
        })
    }
}

/// The API with custom fields `F` and `hooks`, asking the provider for the `profile` scope.
/// Only the helpers of the `World` returned are used: its store and steps are not the app's.
async fn profile_world<F: axum_users::UserFields, H: UserHooks<uuid::Uuid, F>>(
    store: MemoryStore<uuid::Uuid, F>,
    hooks: H,
) -> Option<World> {
    let (listener, base, idp) = listener_and_idp().await?;
    let provider = OpenIdConnectConfig::new(idp.issuer(), CLIENT_ID, CLIENT_SECRET)
        .with_name("oidc")
        .with_default_scopes(["openid", "email", "profile"])
        .trust_email_verified(true)
        .discover()
        .await
        .unwrap();
    let users = AxumUsers::builder(store, SECRET)
        .hooks(hooks)
        .argon2(axum_users::Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .public_url(base.clone())
        .oauth(OAuthClient::new(Arc::new(provider)).with_policy(OAuthPolicy::default()))
        .build()
        .unwrap();
    let app: Router = users.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Some(World {
        base,
        store: MemoryStore::new(),
        steps: LoginSteps::default(),
        _idp: idp,
    })
}

#[tokio::test]
async fn the_provider_profile_fills_custom_fields_on_first_sign_in_and_on_link() {
    let store: MemoryStore<uuid::Uuid, Named> = MemoryStore::new();
    let calls = FromProfile::default();
    let Some(w) = profile_world(store.clone(), calls.clone()).await else {
        return;
    };

    let dana = TestAccount::new("dana", Some("dana@example.com"), true).with_name("Dana Scully");
    let (status, body) = w.sign_in(&dana).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = w.me(token(&body)).await;
    assert_eq!(
        (me["display_name"].clone(), me["provider_sub"].clone()),
        (json!("Dana Scully"), json!("dana")),
        "{me}"
    );
    // Later sign-ins leave the fields to the application.
    let renamed = TestAccount::new("dana", Some("dana@example.com"), true).with_name("D. S.");
    let (status, body) = w.sign_in(&renamed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(w.me(token(&body)).await["display_name"], "Dana Scully");

    let alice = w.register("alice@example.com", "pw-of-the-mirror-1").await;
    assert_eq!(w.me(&alice).await["display_name"], Value::Null);
    let elsewhere = TestAccount::new("alice-at-idp", Some("alice@idp.example.com"), true)
        .with_name("Alice Liddell");
    let (status, body) = w.link(&alice, &elsewhere).await;
    assert_eq!(
        (status, body["display_name"].clone()),
        (StatusCode::OK, json!("Alice Liddell")),
        "the callback answers with the filled fields: {body}"
    );
    let me = w.me(&alice).await;
    assert_eq!(
        (me["display_name"].clone(), me["provider_sub"].clone()),
        (json!("Alice Liddell"), json!("alice-at-idp")),
        "{me}"
    );
    let stored = store
        .get_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.fields.display_name.as_deref(), Some("Alice Liddell"));
    assert_eq!(
        *calls.0.lock().unwrap(),
        ["first sign-in", "link to alice@example.com"]
    );
}

#[tokio::test]
async fn a_browser_links_with_its_cookie_or_with_the_state_of_its_bearer_authorize() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };

    // Cookie backend: the redirect back from the provider carries the session cookie.
    let b = w.cookie_user("cora@example.com", "pw-of-the-reef-1").await;
    let cora_idp = TestAccount::new("cora-at-idp", Some("cora@idp.example.com"), true);
    let path = "/auth/associate/oidc";
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), None, &cora_idp)
        .await;
    let (status, body) = w
        .callback(&b, &format!("{path}/callback"), &code, &state, None)
        .await;
    assert_eq!(
        (status, body["email"].clone()),
        (StatusCode::OK, json!("cora@example.com"))
    );
    assert_eq!(w.linked("cora@example.com").await, 1);

    // Bearer backend: the front end calls authorize with its token; the browser's redirect to
    // the callback has no token, and the state names the user.
    let bea = w.register("bea@example.com", "pw-of-the-hive-1").await;
    let bea_idp = TestAccount::new("bea-at-idp", Some("bea@idp.example.com"), true);
    let b = browser();
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), Some(&bea), &bea_idp)
        .await;
    // The same state from a browser without the CSRF cookie is refused.
    let (status, _) = w
        .callback(&browser(), &format!("{path}/callback"), &code, &state, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(w.linked("bea@example.com").await, 0);
    let (status, body) = w
        .callback(&b, &format!("{path}/callback"), &code, &state, None)
        .await;
    assert_eq!(
        (status, body["email"].clone()),
        (StatusCode::OK, json!("bea@example.com")),
        "{body}"
    );
    assert_eq!(w.linked("bea@example.com").await, 1);
}

#[tokio::test]
async fn strict_compat_keeps_the_reference_401_on_an_associate_callback_without_credentials() {
    let Some((listener, base, idp)) = listener_and_idp().await else {
        return;
    };
    let client = OAuthClient::new(discover(&idp, CLIENT_ID).await);
    let w = serve_app_with(listener, base, client, idp, |b| b.strict_compat(true));
    let token = w.register("sam@example.com", "pw-of-the-sand-1").await;
    let b = browser();
    let account = TestAccount::new("sam-at-idp", Some("sam@idp.example.com"), true);
    let path = "/auth/associate/oidc";
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), Some(&token), &account)
        .await;
    let (status, _) = w
        .callback(&b, &format!("{path}/callback"), &code, &state, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = w
        .callback(&b, &format!("{path}/callback"), &code, &state, Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_one_time_code_meets_the_accounts_throttle_before_it_is_spent() {
    let Some((listener, base, idp)) = listener_and_idp().await else {
        return;
    };
    let client = OAuthClient::new(discover(&idp, CLIENT_ID).await)
        .with_policy(OAuthPolicy::default())
        .with_after_login_redirect("https://spa.example.com/signed-in")
        .with_backend("jwt");
    let w = serve_app_with(listener, base, client, idp, |builder| {
        builder.login_throttle(axum_users::LoginThrottle::new(
            3,
            std::time::Duration::from_secs(2),
        ))
    });
    let b = browser();
    let (code, state) = w
        .authorize(
            &b,
            "/auth/oidc/authorize",
            None,
            &TestAccount::new("lee", Some("lee@example.com"), true),
        )
        .await;
    let r = b
        .get(w.url("/auth/oidc/callback"))
        .query(&[("code", &code), ("state", &state)])
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let login_code = location
        .strip_prefix("https://spa.example.com/signed-in?code=")
        .unwrap_or_else(|| panic!("{location}"))
        .to_owned();
    // Password guesses at the same account (it has none: each is a failure)...
    for _ in 0..3 {
        let r = browser()
            .post(w.url("/auth/jwt/login"))
            .form(&[("username", "Lee@example.com "), ("password", "guess")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    let redeem = || {
        browser()
            .post(w.url("/auth/oidc/token"))
            .json(&json!({"code": login_code}))
            .send()
    };
    // ...throttle its one-time code too, which the 429 does not spend.
    let r = redeem().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = read(redeem().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "the code survived the 429: {body}");
}

/// Whether a response clears the CSRF cookie.
fn clears_the_csrf_cookie(r: &reqwest::Response) -> bool {
    r.headers().get_all("set-cookie").iter().any(|c| {
        c.to_str()
            .unwrap()
            .starts_with("fastapiusersoauthcsrf=\"\"; HttpOnly; Max-Age=0")
    })
}

#[tokio::test]
async fn a_credential_less_link_ends_with_logout_or_a_password_change_and_errors_clear_the_cookie()
{
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let path = "/auth/associate/oidc";
    let callback = |b: Client, code: String, state: String| {
        let url = w.url(&format!("{path}/callback"));
        async move {
            b.get(url)
                .query(&[("code", code), ("state", state)])
                .send()
                .await
                .unwrap()
        }
    };

    // Logout ends the session the state stood for.
    let token = w.register("lou@example.com", "pw-of-the-loft-1").await;
    let account = TestAccount::new("lou-at-idp", Some("lou@idp.example.com"), true);
    let b = browser();
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), Some(&token), &account)
        .await;
    let r = b
        .post(w.url("/auth/jwt/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert!(clears_the_csrf_cookie(&r), "logout clears the CSRF cookie");
    // That browser no longer has the cookie: the callback is refused.
    let r = callback(b.clone(), code, state).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Logout, with the cookie of the flow still in the browser.
    let token = w.register("liz@example.com", "pw-of-the-lake-1").await;
    let b = browser();
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), Some(&token), &account)
        .await;
    let r = Client::new()
        .post(w.url("/auth/jwt/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = callback(b.clone(), code, state).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(
        clears_the_csrf_cookie(&r),
        "an error after the state matched ends the flow"
    );

    // A password change (as after a reset) ends it too.
    let token = w.register("pat@example.com", "pw-of-the-pier-1").await;
    let b = browser();
    let (code, state) = w
        .authorize(&b, &format!("{path}/authorize"), Some(&token), &account)
        .await;
    let r = Client::new()
        .patch(w.url("/users/me"))
        .bearer_auth(&token)
        .json(&json!({"password": "Zq9 an unrelated passphrase", "current_password": "pw-of-the-pier-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let r = callback(b.clone(), code, state).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.linked("liz@example.com").await + w.linked("pat@example.com").await,
        0
    );
}

/// The secret of the CSRF cookie a response sets.
fn csrf_secret(r: &reqwest::Response) -> String {
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let (_, rest) = cookie.split_once('=').unwrap();
    rest.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn planted_csrf_cookies_and_cookie_authorizes_do_not_link_without_credentials() {
    let Some(w) = world(OAuthPolicy::default()).await else {
        return;
    };
    let path = "/auth/associate/oidc";
    let account = TestAccount::new("cy-at-idp", Some("cy@idp.example.com"), true);

    // A cookie app's authorize: its state never stands in for the cookie.
    let b = w.cookie_user("cy@example.com", "pw-of-the-cove-1").await;
    let r = b
        .get(w.url(&format!("{path}/authorize")))
        .send()
        .await
        .unwrap();
    let secret = csrf_secret(&r);
    let (_, body) = read(r).await;
    let cb = login(body["authorization_url"].as_str().unwrap(), &account).await;
    let r = Client::new()
        .get(w.url(&format!("{path}/callback")))
        .query(&[("code", &cb.code), ("state", &cb.state)])
        .header("cookie", format!("fastapiusersoauthcsrf={secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(w.linked("cy@example.com").await, 0);

    // Two CSRF cookies (one planted by a sibling site) are refused, whichever comes first.
    let token = w.register("di@example.com", "pw-of-the-dune-1").await;
    let r = Client::new()
        .get(w.url(&format!("{path}/authorize")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let secret = csrf_secret(&r);
    let (_, body) = read(r).await;
    let cb = login(body["authorization_url"].as_str().unwrap(), &account).await;
    let r = Client::new()
        .get(w.url(&format!("{path}/callback")))
        .query(&[("code", &cb.code), ("state", &cb.state)])
        .header(
            "cookie",
            format!("fastapiusersoauthcsrf={secret}; fastapiusersoauthcsrf=planted"),
        )
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::BAD_REQUEST, json!("OAUTH_INVALID_STATE"))
    );
    assert_eq!(w.linked("di@example.com").await, 0);
}

#[tokio::test]
async fn the_csrf_cookie_is_host_prefixed_when_secure_unless_strict_compat() {
    for (strict, expected) in [
        (false, "__Host-fastapiusersoauthcsrf="),
        (true, "fastapiusersoauthcsrf="),
    ] {
        let Some((listener, base, idp)) = listener_and_idp().await else {
            return;
        };
        let users = AxumUsers::builder(MemoryStore::<uuid::Uuid, NoFields>::new(), SECRET)
            .strict_compat(strict)
            .public_url(base.clone())
            .oauth(OAuthClient::new(discover(&idp, CLIENT_ID).await))
            .build()
            .unwrap();
        let app: Router = users.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let r = Client::new()
            .get(format!("{base}/auth/oidc/authorize"))
            .send()
            .await
            .unwrap();
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(
            cookie.starts_with(expected)
                && cookie.contains("; Path=/;")
                && cookie.ends_with("; Secure"),
            "{cookie}"
        );
        assert!(!cookie.contains("Domain="), "{cookie}");
        drop(idp);
    }
}

/// Fields with one only a superuser may set.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct Planned {
    #[serde(default)]
    display_name: Option<String>,
    /// Privileged: a self-service change never touches it.
    #[serde(default)]
    plan: Option<String>,
}

impl axum_users::UserFields for Planned {
    type Update = Planned;

    fn apply(&mut self, update: Planned) {
        if update.display_name.is_some() {
            self.display_name = update.display_name;
        }
        if update.plan.is_some() {
            self.plan = update.plan;
        }
    }

    fn drop_privileged(update: &mut Planned) {
        update.plan = None;
    }

    fn reset_privileged(&mut self) {
        self.plan = None;
    }
}

/// A profile hook that tries to grant a plan, and records the `on_after_update` dicts.
#[derive(Clone, Default)]
struct Upgrading(Arc<std::sync::Mutex<Vec<Value>>>);

impl UserHooks<uuid::Uuid, Planned> for Upgrading {
    async fn on_oauth_profile(
        &self,
        profile: &axum_users::OAuthProfile,
        _: Option<&User<uuid::Uuid, Planned>>,
    ) -> Option<Planned> {
        Some(Planned {
            display_name: profile.name.clone(),
            plan: Some("enterprise".into()),
        })
    }

    async fn on_after_update(
        &self,
        _: &User<uuid::Uuid, Planned>,
        update: &Value,
        _: Option<&http::request::Parts>,
    ) {
        self.0.lock().unwrap().push(update.clone());
    }
}

#[tokio::test]
async fn the_provider_profile_cannot_set_privileged_fields_and_updates_name_what_changed() {
    let store: MemoryStore<uuid::Uuid, Planned> = MemoryStore::new();
    let updates = Upgrading::default();
    let Some(w) = profile_world(store.clone(), updates.clone()).await else {
        return;
    };

    // A new user: the name from the profile, no plan.
    let eve = TestAccount::new("eve", Some("eve@example.com"), true).with_name("Eve");
    let (status, body) = w.sign_in(&eve).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me = w.me(token(&body)).await;
    assert_eq!(
        (me["display_name"].clone(), me["plan"].clone()),
        (json!("Eve"), Value::Null),
        "{me}"
    );

    // A link: the name changes, the plan the user had stays.
    let alice = w.register("alice@example.com", "pw-of-the-mirror-1").await;
    let stored = store
        .get_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    let mut changes = axum_users::UserChanges::default();
    changes.fields = Some(Planned {
        display_name: None,
        plan: Some("basic".into()),
    });
    store.update(&stored.id, changes).await.unwrap();
    updates.0.lock().unwrap().clear();
    let elsewhere =
        TestAccount::new("alice-at-idp", Some("alice@idp.example.com"), true).with_name("Alice");
    let (status, body) = w.link(&alice, &elsewhere).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["display_name"].clone(), body["plan"].clone()),
        (json!("Alice"), json!("basic")),
        "{body}"
    );
    assert_eq!(
        *updates.0.lock().unwrap(),
        [json!({"display_name": "Alice"})],
        "on_after_update names what the profile changed"
    );
}

#[tokio::test]
async fn linking_a_provider_needs_a_recent_sign_in_unless_strict_compat() {
    for strict in [false, true] {
        let Some((listener, base, idp)) = listener_and_idp().await else {
            return;
        };
        let client = OAuthClient::new(discover(&idp, CLIENT_ID).await);
        let w = serve_app_with(listener, base, client, idp, |builder| {
            builder
                .mfa(
                    axum_users::MfaSettings::default()
                        .with_recent_sign_in(std::time::Duration::from_secs(1)),
                )
                .strict_compat(strict)
        });
        let old = w.register("link@example.com", "chain-phrase-long-1").await;
        // Sessions are dated in whole seconds: two of them past a window of one.
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (status, body) = read(
            browser()
                .get(w.url("/auth/associate/oidc/authorize"))
                .bearer_auth(&old)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if strict {
            assert_eq!(status, StatusCode::OK, "as the reference: {body}");
            continue;
        }
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"detail": "OAUTH_RECENT_SIGN_IN_REQUIRED"})
            ),
            "an old token (perhaps stolen) cannot add a way in"
        );
        // Signed in again just now: the same user links.
        let (_, body) = read(
            browser()
                .post(w.url("/auth/jwt/login"))
                .form(&[
                    ("username", "link@example.com"),
                    ("password", "chain-phrase-long-1"),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await;
        let account = TestAccount::new("link-at-idp", Some("link@example.com"), true);
        let (status, body) = w.link(token(&body), &account).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}
