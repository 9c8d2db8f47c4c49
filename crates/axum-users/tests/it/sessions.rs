//! Sessions over HTTP on the memory store: refresh tokens (rotation, reuse, grace), revocable
//! JWTs, the sessions list, and revocation on logout and password change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum_users::{
    AxumUsers, MemoryStore, Privilege, RevokeReason, SessionSettings, User, UserCreate, UserHooks,
    UserStore,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::library::{FAST, SECRET, call, serve};

/// Records every revoked session with its reason.
#[derive(Clone, Default)]
struct Revocations(Arc<Mutex<Vec<(String, RevokeReason)>>>);

impl UserHooks<uuid::Uuid, axum_users::NoFields> for Revocations {
    async fn on_session_revoked(&self, _: &uuid::Uuid, session: &str, reason: RevokeReason) {
        self.0.lock().unwrap().push((session.to_owned(), reason));
    }
}

impl Revocations {
    fn reasons(&self) -> Vec<RevokeReason> {
        self.0.lock().unwrap().iter().map(|(_, r)| *r).collect()
    }
}

struct App {
    base: String,
    hooks: Revocations,
    users: AxumUsers<MemoryStore, Revocations>,
}

async fn app(settings: SessionSettings) -> App {
    serve_app(MemoryStore::new(), settings, None).await
}

/// An app on `store` with `settings`, plus `extra` backend if given.
async fn serve_app(
    store: MemoryStore,
    settings: SessionSettings,
    extra: Option<axum_users::AuthBackend<uuid::Uuid>>,
) -> App {
    let hooks = Revocations::default();
    let mut builder = AxumUsers::builder(store, SECRET)
        .hooks(hooks.clone())
        .argon2(FAST)
        .sessions(settings)
        .cookie(axum_users::CookieSettings::auth().with_secure(false));
    if let Some(backend) = extra {
        builder = builder.backend(backend);
    }
    let users = builder.build().unwrap();
    let base = serve(users.router()).await;
    App { base, hooks, users }
}

async fn user(app: &App, email: &str) -> User<uuid::Uuid> {
    app.users
        .manager()
        .create(
            UserCreate::new(email, "correct horse"),
            Privilege::Superuser,
            None,
        )
        .await
        .unwrap()
}

/// Signs in through the bearer backend: the whole JSON answer.
async fn sign_in(app: &App, email: &str, agent: &str) -> Value {
    sign_in_at(app, "jwt", email, agent).await
}

/// Signs in through the bearer backend `backend`: the whole JSON answer.
async fn sign_in_at(app: &App, backend: &str, email: &str, agent: &str) -> Value {
    let r = reqwest::Client::new()
        .post(format!("{}/auth/{backend}/login", app.base))
        .header("user-agent", agent)
        .form(&[("username", email), ("password", "correct horse")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn refresh(app: &App, token: &str) -> (StatusCode, Value) {
    call(
        Method::POST,
        format!("{}/auth/jwt/refresh", app.base),
        None,
        Some(json!({"refresh_token": token})),
    )
    .await
}

/// `POST /auth/cookie/<route>` with one cookie header and nothing else.
async fn post_with_cookie(app: &App, route: &str, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{}/auth/cookie/{route}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .status()
}

/// An app with `settings` and one user, signed in once through the bearer backend.
async fn signed_in(settings: SessionSettings, email: &str) -> (App, Value) {
    let app = app(settings).await;
    user(&app, email).await;
    let login = sign_in(&app, email, "Firefox").await;
    (app, login)
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().unwrap()
}

fn refresh_token(body: &Value) -> &str {
    body["refresh_token"].as_str().unwrap()
}

async fn me(app: &App, token: &str) -> StatusCode {
    call(
        Method::GET,
        format!("{}/users/me", app.base),
        Some(token),
        None,
    )
    .await
    .0
}

#[tokio::test]
async fn login_answers_a_refresh_token_that_rotates_and_is_single_use() {
    let app = app(SessionSettings::default().with_reuse_grace(Duration::ZERO)).await;
    user(&app, "rotate@example.com").await;
    let login = sign_in(&app, "rotate@example.com", "Firefox").await;
    assert_eq!(login["token_type"], "bearer");
    assert_eq!(login["expires_in"], 3600);
    let first = refresh_token(&login).to_owned();
    assert!(first.len() >= 43, "256 bits");

    let (status, body) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = refresh_token(&body).to_owned();
    assert_ne!(second, first, "a new refresh token every time");
    assert_eq!(me(&app, access(&body)).await, StatusCode::OK);
    assert_eq!(
        me(&app, access(&login)).await,
        StatusCode::OK,
        "same session"
    );

    // After the grace window, the first token again: reuse, and the whole session ends.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = refresh(&app, &first).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "REFRESH_TOKEN_REUSED"})
        )
    );
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::ReuseDetected]);
    let (status, body) = refresh(&app, &second).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "REFRESH_TOKEN_INVALID"})
        ),
        "the legitimate holder's token died with the session"
    );
    assert_eq!(
        me(&app, access(&login)).await,
        StatusCode::UNAUTHORIZED,
        "the session's JWTs are revoked at once"
    );
}

#[tokio::test]
async fn a_reuse_within_the_grace_window_continues_the_session() {
    let app = app(SessionSettings::default()).await;
    user(&app, "tabs@example.com").await;
    let login = sign_in(&app, "tabs@example.com", "Firefox").await;
    let first = refresh_token(&login).to_owned();
    let (status, one) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK);
    let (status, two) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK, "a second tab within 10 s: {two}");
    assert_eq!(me(&app, access(&two)).await, StatusCode::OK);
    assert!(app.hooks.reasons().is_empty(), "nothing revoked");
    let (status, three) = refresh(&app, refresh_token(&two)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the chain goes on from the last token"
    );
    // The first tab's token was replaced by the second tab's refresh: it stays recorded as
    // rotated out, so presenting it (the owner, after a thief raced them) revokes the session.
    assert_eq!(
        refresh(&app, refresh_token(&one)).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "REFRESH_TOKEN_REUSED"})
        ),
        "the token the grace refresh replaced is reuse, even within the window"
    );
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::ReuseDetected]);
    assert_eq!(
        refresh(&app, refresh_token(&three)).await.0,
        StatusCode::UNAUTHORIZED,
        "the whole session ended"
    );
    assert_eq!(me(&app, access(&three)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_token_of_any_earlier_rotation_is_reuse_and_revokes_the_session() {
    let (app, login) = signed_in(SessionSettings::default(), "chain@example.com").await;
    let first = refresh_token(&login).to_owned();
    let (status, one) = refresh(&app, &first).await;
    assert_eq!(status, StatusCode::OK);
    let (status, two) = refresh(&app, refresh_token(&one)).await;
    assert_eq!(status, StatusCode::OK);
    // `first` is two rotations old: no longer the session's previous token, still reuse
    // (even within the grace window, which covers the last replaced token only).
    assert_eq!(
        refresh(&app, &first).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "REFRESH_TOKEN_REUSED"})
        )
    );
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::ReuseDetected]);
    assert_eq!(
        refresh(&app, refresh_token(&two)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(me(&app, access(&two)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_refresh_tokens_are_401_refresh_token_invalid() {
    let app = app(SessionSettings::default()).await;
    let u = user(&app, "bad@example.com").await;
    let login = sign_in(&app, "bad@example.com", "x").await;
    let invalid = json!({"detail": "REFRESH_TOKEN_INVALID"});
    for token in ["", "not-a-token", access(&login)] {
        assert_eq!(
            refresh(&app, token).await,
            (StatusCode::UNAUTHORIZED, invalid.clone()),
            "{token:?}"
        );
    }
    let form = reqwest::Client::new()
        .post(format!("{}/auth/jwt/refresh", app.base))
        .form(&[("refresh_token", refresh_token(&login))])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK, "a form body works too");
    let again: Value = form.json().await.unwrap();
    // Another backend's refresh route does not take it.
    let r = reqwest::Client::new()
        .post(format!("{}/auth/cookie/refresh", app.base))
        .json(&json!({"refresh_token": refresh_token(&again)}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // An inactive user's refresh is refused too (deactivated behind the manager's back, so
    // that the session is still there and the refresh itself must check).
    let mut deactivate = axum_users::UserChanges::default();
    deactivate.is_active = Some(false);
    let login2 = refresh_token(&again).to_owned();
    app.users
        .manager()
        .store()
        .update(&u.id, deactivate)
        .await
        .unwrap();
    assert_eq!(
        refresh(&app, &login2).await,
        (StatusCode::UNAUTHORIZED, invalid)
    );
    let sessions = app.users.manager().store().session_store().unwrap();
    let hash = axum_users::hash_token(&login2);
    let session = sessions
        .find_session_by_refresh(&hash, axum_users::now_unix())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        session.refresh.current,
        Some(hash),
        "the refused refresh rotated nothing (the user is checked first)"
    );
}

#[tokio::test]
async fn a_refreshed_jwt_never_outlives_its_session() {
    let settings = SessionSettings::default()
        .with_jwt_revocable(false)
        .with_refresh_lifetime(Duration::from_secs(2));
    let (app, login) = signed_in(settings, "short@example.com").await;
    let (status, refreshed) = refresh(&app, refresh_token(&login)).await;
    assert_eq!(status, StatusCode::OK);
    for answer in [&login, &refreshed] {
        let expires_in = answer["expires_in"].as_u64().unwrap();
        assert!(expires_in <= 2, "capped at the session's end: {expires_in}");
    }
    assert_eq!(me(&app, access(&refreshed)).await, StatusCode::OK);
    // Whole seconds: `exp` is at most 2 s after the sign-in's second, so 3.1 s is past it.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(
        me(&app, access(&refreshed)).await,
        StatusCode::UNAUTHORIZED,
        "a stateless JWT expires with its session, not an access lifetime later"
    );
}

#[tokio::test]
async fn logout_revokes_the_jwt_and_the_sessions_list_shows_devices() {
    let app = app(SessionSettings::default()).await;
    user(&app, "devices@example.com").await;
    let laptop = sign_in(&app, "devices@example.com", "Laptop/1.0").await;
    let phone = sign_in(&app, "devices@example.com", "Phone/2.0").await;
    let (status, list) = call(
        Method::GET,
        format!("{}/users/me/sessions", app.base),
        Some(access(&phone)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let current: Vec<&Value> = list.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["user_agent"], "Phone/2.0");
    assert_eq!(current[0]["method"], "password");
    assert!(current[0]["created_at"].as_str().unwrap().ends_with('Z'));
    let text = serde_json::to_string(&list).unwrap();
    assert!(
        !text.contains(refresh_token(&phone)) && !text.contains("refresh"),
        "no token material"
    );

    // DELETE another user's or an unknown session: 404 SESSION_NOT_FOUND.
    let (status, body) = call(
        Method::DELETE,
        format!("{}/users/me/sessions/nope", app.base),
        Some(access(&phone)),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "SESSION_NOT_FOUND"})
        )
    );
    let laptop_id = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = call(
        Method::DELETE,
        format!("{}/users/me/sessions/{laptop_id}", app.base),
        Some(access(&phone)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, access(&laptop)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::User]);

    // Logout: the JWT stops working at once.
    let (status, _) = call(
        Method::POST,
        format!("{}/auth/jwt/logout", app.base),
        Some(access(&phone)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, access(&phone)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&app, refresh_token(&phone)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.hooks.reasons(),
        vec![RevokeReason::User, RevokeReason::Logout]
    );
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_sign_out_everywhere_keeps_this_one() {
    let app = app(SessionSettings::default()).await;
    user(&app, "change@example.com").await;
    let a = sign_in(&app, "change@example.com", "A").await;
    let b = sign_in(&app, "change@example.com", "B").await;
    let c = sign_in(&app, "change@example.com", "C").await;
    let (status, _) = call(
        Method::PATCH,
        format!("{}/users/me", app.base),
        Some(access(&a)),
        Some(json!({"password": "a new long password", "current_password": "correct horse"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, access(&a)).await,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(me(&app, access(&b)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, access(&c)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.hooks.reasons(),
        vec![RevokeReason::PasswordChange, RevokeReason::PasswordChange]
    );

    let d = reqwest::Client::new()
        .post(format!("{}/auth/jwt/login", app.base))
        .form(&[
            ("username", "change@example.com"),
            ("password", "a new long password"),
        ])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let (status, _) = call(
        Method::DELETE,
        format!("{}/users/me/sessions", app.base),
        Some(access(&a)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, access(&a)).await, StatusCode::OK);
    assert_eq!(me(&app, access(&d)).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn with_jwt_revocable_off_jwts_are_stateless_but_refresh_still_ends_with_logout() {
    let app = app(SessionSettings::default().with_jwt_revocable(false)).await;
    user(&app, "stateless@example.com").await;
    let login = sign_in(&app, "stateless@example.com", "x").await;
    let (status, _) = call(
        Method::POST,
        format!("{}/auth/jwt/logout", app.base),
        Some(access(&login)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(&app, access(&login)).await,
        StatusCode::OK,
        "a stateless JWT lives until it expires"
    );
    assert_eq!(
        refresh(&app, refresh_token(&login)).await.0,
        StatusCode::UNAUTHORIZED,
        "but the session, and its refresh token, ended"
    );
}

#[tokio::test]
async fn with_refresh_tokens_off_the_login_answer_is_the_reference_one() {
    let app = app(SessionSettings::default().with_refresh_tokens(false)).await;
    user(&app, "plain@example.com").await;
    let login = sign_in(&app, "plain@example.com", "x").await;
    let keys: Vec<&String> = login.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["access_token", "token_type"]);
    assert_eq!(me(&app, access(&login)).await, StatusCode::OK);
}

#[tokio::test]
async fn the_cookie_backend_refreshes_with_its_path_scoped_refresh_cookie() {
    let app = app(SessionSettings::default()).await;
    user(&app, "cookie@example.com").await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = client
        .post(format!("{}/auth/cookie/login", app.base))
        .form(&[
            ("username", "cookie@example.com"),
            ("password", "correct horse"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    let refresh_cookie = cookies
        .iter()
        .find(|c| c.starts_with("fastapiusersauth_refresh="))
        .unwrap();
    let attributes: Vec<&str> = refresh_cookie.split("; ").skip(1).collect();
    let max_age: u64 = attributes
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("a persistent cookie")
        .parse()
        .unwrap();
    assert!(
        (30 * 24 * 3600 - 5..=30 * 24 * 3600).contains(&max_age),
        "the session's remaining lifetime, not the access cookie's: {max_age}"
    );
    assert!(attributes.contains(&"HttpOnly"));
    assert!(attributes.contains(&"SameSite=lax"));
    assert!(
        attributes.contains(&"Path=/auth/cookie/"),
        "refresh and logout receive it: {refresh_cookie}"
    );
    assert!(
        !attributes.contains(&"Secure"),
        "Secure follows the auth cookie's, explicitly off here (plain HTTP)"
    );
    let refresh_value = refresh_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("fastapiusersauth_refresh=")
        .to_owned();

    let r = client
        .post(format!("{}/auth/cookie/refresh", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "the cookie is the token"
    );
    let r = client
        .get(format!("{}/users/me", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A cross-site refresh is refused before it rotates anything.
    let r = client
        .post(format!("{}/auth/cookie/refresh", app.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Logout with the refresh cookie alone (the access cookie expired) ends the session.
    let refreshed = client
        .post(format!("{}/auth/cookie/refresh", app.base))
        .send()
        .await
        .unwrap();
    let current = refreshed
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("fastapiusersauth_refresh="))
        .unwrap();
    let current = current.split(';').next().unwrap().to_owned();
    assert_ne!(current, format!("fastapiusersauth_refresh={refresh_value}"));
    // Only the refresh cookie, as a browser sends it once the access cookie is gone.
    let with_refresh_cookie = |route: &'static str| post_with_cookie(&app, route, &current);
    assert_eq!(with_refresh_cookie("logout").await, StatusCode::NO_CONTENT);
    assert!(app.hooks.reasons().contains(&RevokeReason::Logout));
    assert_eq!(
        with_refresh_cookie("refresh").await,
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
    assert_eq!(
        with_refresh_cookie("logout").await,
        StatusCode::UNAUTHORIZED,
        "a dead refresh token signs nothing out"
    );
}

#[tokio::test]
async fn logout_with_the_refresh_token_in_the_body_ends_the_session() {
    let (app, login) = signed_in(SessionSettings::default(), "expired@example.com").await;
    let (status, _) = call(
        Method::POST,
        format!("{}/auth/jwt/logout", app.base),
        None,
        Some(json!({"refresh_token": "not-a-token"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        Method::POST,
        format!("{}/auth/jwt/logout", app.base),
        None,
        Some(json!({"refresh_token": refresh_token(&login)})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "no access token needed");
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::Logout]);
    assert_eq!(me(&app, access(&login)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refresh(&app, refresh_token(&login)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn deactivating_and_deleting_end_every_session_with_their_reason() {
    let app = app(SessionSettings::default()).await;
    let u = user(&app, "gone@example.com").await;
    let a = sign_in(&app, "gone@example.com", "A").await;
    let b = sign_in(&app, "gone@example.com", "B").await;
    let manager = app.users.manager();
    let deactivate = axum_users::UserUpdate {
        is_active: Some(false),
        ..Default::default()
    };
    let current = manager.get(&u.id).await.unwrap();
    let current = manager
        .update(current, deactivate, Privilege::Superuser, None)
        .await
        .unwrap();
    assert_eq!(
        app.hooks.reasons(),
        vec![RevokeReason::Deactivated, RevokeReason::Deactivated]
    );
    let reactivate = axum_users::UserUpdate {
        is_active: Some(true),
        ..Default::default()
    };
    manager
        .update(current, reactivate, Privilege::Superuser, None)
        .await
        .unwrap();
    for token in [access(&a), access(&b)] {
        assert_eq!(
            me(&app, token).await,
            StatusCode::UNAUTHORIZED,
            "still revoked"
        );
    }
    sign_in(&app, "gone@example.com", "C").await;
    let current = manager.get(&u.id).await.unwrap();
    manager.delete(&current, None).await.unwrap();
    assert_eq!(app.hooks.reasons().last(), Some(&RevokeReason::Deleted));
    assert_eq!(app.hooks.reasons().len(), 3);
}

#[tokio::test]
async fn tokens_of_no_session_cannot_outlive_a_revocation() {
    let app = database_app(SessionSettings::default()).await;
    let store = app.users.manager().store().clone();
    let jwt = AxumUsers::builder(store.clone(), SECRET)
        .jwt_strategy()
        .unwrap();
    let u = user(&app, "legacy@example.com").await;

    // A JWT without `sid` (as issued before sessions existed): no revocation could reach it,
    // so a store that keeps sessions refuses it.
    use axum_users::{AccessTokenStore, Strategy};
    let old_jwt = jwt.write_token(&u.id).await.unwrap();
    assert_eq!(
        me(&app, old_jwt.access_token.expose()).await,
        StatusCode::UNAUTHORIZED
    );

    // A database token of no session works, until the user's other sessions are revoked.
    let raw = "a-database-token-from-before-sessions";
    store
        .create_token(&axum_users::hash_token(raw), &u.id, axum_users::now_unix())
        .await
        .unwrap();
    assert_eq!(me(&app, raw).await, StatusCode::OK);
    let current = sign_in(&app, "legacy@example.com", "A").await;
    let (status, _) = call(
        Method::PATCH,
        format!("{}/users/me", app.base),
        Some(access(&current)),
        Some(json!({"password": "a new long password", "current_password": "correct horse"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, raw).await,
        StatusCode::UNAUTHORIZED,
        "a password change deletes the tokens of no session"
    );
    assert_eq!(me(&app, access(&current)).await, StatusCode::OK);
}

/// An app with an extra backend `db` (database tokens, bearer), with `settings`.
async fn database_app(settings: SessionSettings) -> App {
    let store = MemoryStore::new();
    let database = axum_users::AuthBackend::new(
        "db",
        axum_users::Transport::Bearer {
            token_url: "auth/db/login".into(),
        },
        axum_users::DatabaseStrategy::new(store.clone(), None),
    );
    serve_app(store, settings, Some(database)).await
}

#[tokio::test]
async fn a_refresh_deletes_the_database_tokens_it_superseded() {
    let app = database_app(SessionSettings::default().with_reuse_grace(Duration::ZERO)).await;
    user(&app, "pile@example.com").await;
    let login = sign_in_at(&app, "db", "pile@example.com", "x").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let db_refresh = |token: String| {
        call(
            Method::POST,
            format!("{}/auth/db/refresh", app.base),
            None,
            Some(json!({"refresh_token": token})),
        )
    };
    let (status, one) = db_refresh(refresh_token(&login).to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(
        me(&app, access(&login)).await,
        StatusCode::OK,
        "the token of before the last refresh still works (requests in flight)"
    );
    let (status, two) = db_refresh(refresh_token(&one).to_owned()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me(&app, access(&login)).await,
        StatusCode::UNAUTHORIZED,
        "superseded twice: deleted"
    );
    assert_eq!(me(&app, access(&one)).await, StatusCode::OK);
    assert_eq!(me(&app, access(&two)).await, StatusCode::OK);
}

#[tokio::test]
async fn a_sign_in_beyond_the_cap_ends_the_oldest_session() {
    let app = app(SessionSettings::default().with_max_sessions_per_user(2)).await;
    user(&app, "many@example.com").await;
    let first = sign_in(&app, "many@example.com", "1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = sign_in(&app, "many@example.com", "2").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let third = sign_in(&app, "many@example.com", "3").await;
    assert_eq!(app.hooks.reasons(), vec![RevokeReason::TooManySessions]);
    assert_eq!(me(&app, access(&first)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, access(&second)).await, StatusCode::OK);
    assert_eq!(me(&app, access(&third)).await, StatusCode::OK);
}

#[tokio::test]
async fn another_users_session_cannot_be_ended_and_the_superuser_routes_are_403() {
    let app = app(SessionSettings::default()).await;
    user(&app, "alice@example.com").await;
    let bob = user(&app, "bob@example.com").await;
    let alice_login = sign_in(&app, "alice@example.com", "A").await;
    let bob_login = sign_in(&app, "bob@example.com", "B").await;
    let (status, list) = call(
        Method::GET,
        format!("{}/users/me/sessions", app.base),
        Some(access(&bob_login)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let bob_session = list[0]["id"].as_str().unwrap().to_owned();
    // A real id of another user's live session answers as an unknown one.
    assert_eq!(
        call(
            Method::DELETE,
            format!("{}/users/me/sessions/{bob_session}", app.base),
            Some(access(&alice_login)),
            None,
        )
        .await,
        (
            StatusCode::NOT_FOUND,
            json!({"detail": "SESSION_NOT_FOUND"})
        )
    );
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = call(
            method.clone(),
            format!("{}/users/{}/sessions", app.base, bob.id),
            Some(access(&alice_login)),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} by a non-superuser");
    }
    assert!(app.hooks.reasons().is_empty(), "nothing was revoked");
    assert_eq!(me(&app, access(&bob_login)).await, StatusCode::OK);
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_session_records_the_forwarded_client() {
    let users = AxumUsers::<MemoryStore>::builder(MemoryStore::new(), SECRET)
        .argon2(FAST)
        .trusted_proxies(["127.0.0.1/32".parse::<axum_users::IpNet>().unwrap()])
        .build()
        .unwrap();
    users
        .manager()
        .create(
            UserCreate::new("proxied@example.com", "correct horse"),
            Privilege::Superuser,
            None,
        )
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = users
        .router()
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/auth/jwt/login"))
        .header("x-forwarded-for", "203.0.113.7")
        .form(&[
            ("username", "proxied@example.com"),
            ("password", "correct horse"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, list) = call(
        Method::GET,
        format!("{base}/users/me/sessions"),
        Some(access(&login)),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["ip"], "203.0.113.7", "not the proxy's 127.0.0.1");
}
