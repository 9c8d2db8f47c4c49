//! Sign-in and linking with an OAuth provider from the pages. The library's routes run the
//! flow (state, PKCE, CSRF cookie, the manager's sign-in rules); the pages start it in-process
//! and, for a flow they started (a signed cookie says so), answer its callback as a page.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_users::{CookieSettings, RouterStore, UserHooks};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use tower::ServiceExt;

use crate::PagesState;
use crate::flows::carry_cookies;

/// How long a flow the pages started may take (the library's link state lives as long).
const FLOW_SECONDS: u64 = 600;
/// The largest answer of the library's authorize route read.
const ANSWER_LIMIT: usize = 64 * 1024;

/// Which flow a callback ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    SignIn,
    Link,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::SignIn => "sign-in",
            Kind::Link => "link",
        }
    }
}

fn flow_cookie(secure: bool) -> CookieSettings {
    let name = if secure {
        "__Host-axum_users_pages_oauth"
    } else {
        "axum_users_pages_oauth"
    };
    CookieSettings::named(name).with_secure(secure)
}

/// `kind.provider.return_to(base64).signature`: which flow the pages started, signed.
fn flow_value<S: RouterStore, H>(
    state: &PagesState<S, H>,
    kind: Kind,
    provider: &str,
    return_to: &str,
) -> String {
    let payload = format!("{}.{provider}.{}", kind.as_str(), B64.encode(return_to));
    let signature = state.keys.sign("oauth-flow", &payload);
    format!("{payload}.{signature}")
}

/// The flow of a cookie value, when its signature holds: kind, provider, return_to.
fn read_flow<S: RouterStore, H>(
    state: &PagesState<S, H>,
    value: &str,
) -> Option<(Kind, String, String)> {
    let (payload, signature) = value.rsplit_once('.')?;
    if !state.keys.verify("oauth-flow", payload, signature) {
        return None;
    }
    let mut parts = payload.splitn(3, '.');
    let kind = match parts.next()? {
        "sign-in" => Kind::SignIn,
        "link" => Kind::Link,
        _ => return None,
    };
    let provider = parts.next()?.to_owned();
    let return_to = String::from_utf8(B64.decode(parts.next()?).ok()?).ok()?;
    Some((kind, provider, return_to))
}

/// `GET /oauth/{name}/sign-in?return_to=...`.
pub(crate) async fn sign_in<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<Arc<PagesState<S, H>>>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(parts.uri.query().unwrap_or_default()).unwrap_or_default();
    let return_to = pairs
        .iter()
        .find(|(k, _)| k == "return_to")
        .and_then(|(_, v)| state.return_to.allowed(v))
        .unwrap_or_default();
    start(&state, &parts, &name, Kind::SignIn, &return_to).await
}

/// `GET /oauth/{name}/link`: for the signed-in user.
pub(crate) async fn link<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<Arc<PagesState<S, H>>>,
    Path(name): Path<String>,
    parts: Parts,
) -> Response {
    start(&state, &parts, &name, Kind::Link, "").await
}

/// Calls the library's authorize route with the browser's request, and sends the browser to
/// the provider with the library's CSRF cookie and the pages' flow cookie.
async fn start<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    state: &PagesState<S, H>,
    parts: &Parts,
    name: &str,
    kind: Kind,
    return_to: &str,
) -> Response {
    let visit = state.visit(parts);
    if !state.config.providers.iter().any(|p| p == name) {
        return state.message(&visit, StatusCode::NOT_FOUND, "error_not_found", None, None);
    }
    let path = match kind {
        Kind::SignIn => format!("/auth/{name}/authorize"),
        Kind::Link => format!("/auth/associate/{name}/authorize"),
    };
    let mut request = Request::new(Body::empty());
    *request.uri_mut() = match path.parse() {
        Ok(uri) => uri,
        Err(_) => return state.bad_request(&visit),
    };
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    let answer = match state.oauth.clone().oneshot(request).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    let status = answer.status();
    let cookies = answer.headers().clone();
    let body = axum::body::to_bytes(answer.into_body(), ANSWER_LIMIT)
        .await
        .unwrap_or_default();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let back = match kind {
        Kind::SignIn => state.path("sign-in"),
        Kind::Link => state.path("account"),
    };
    let url = json["authorization_url"]
        .as_str()
        .filter(|_| status == StatusCode::OK);
    let Some(url) = url else {
        let code = json["detail"].as_str().unwrap_or("OAUTH");
        // Not signed in, or not lately enough to link: sign in (again), then come back.
        let target = if status == StatusCode::UNAUTHORIZED
            || code == axum_users::ErrorCode::OAuthRecentSignInRequired.as_str()
        {
            format!(
                "{}?return_to={}",
                state.path("sign-in"),
                state.path("account")
            )
        } else {
            format!("{back}?error={}", code_param(code))
        };
        return state.redirect(&visit, &target);
    };
    let mut response = state.redirect(&visit, url);
    for value in cookies.get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, value.clone());
    }
    let flow = flow_cookie(state.config.secure_cookies).set_cookie(
        &flow_value(state, kind, name, return_to),
        Some(FLOW_SECONDS),
    );
    if let Ok(value) = HeaderValue::from_str(&flow) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The mfa token of a `LOGIN_MFA_REQUIRED` answer.
fn mfa_token_of(json: &serde_json::Value) -> Option<&str> {
    let detail = &json["detail"];
    (detail["code"] == axum_users::ErrorCode::LoginMfaRequired.as_str())
        .then(|| detail["mfa_token"].as_str())
        .flatten()
}

/// An error code as a query value: the characters a code has.
fn code_param(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// The provider and kind a callback path names: `/auth/{name}/callback` or
/// `/auth/associate/{name}/callback`.
fn callback_of(path: &str) -> Option<(Kind, &str)> {
    let rest = path.strip_prefix("/auth/")?.strip_suffix("/callback")?;
    match rest.strip_prefix("associate/") {
        Some(name) if !name.contains('/') => Some((Kind::Link, name)),
        None if !rest.contains('/') => Some((Kind::SignIn, rest)),
        _ => None,
    }
}

/// The middleware of [`crate::Pages::wrap_oauth_callbacks`].
pub(crate) async fn callbacks<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<Arc<PagesState<S, H>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some((kind, name)) = callback_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let name = name.to_owned();
    let cookie = flow_cookie(state.config.secure_cookies);
    let flow = cookie
        .read(request.headers())
        .and_then(|value| read_flow(&state, &value))
        .filter(|(k, provider, _)| *k == kind && *provider == name);
    let Some((_, _, return_to)) = flow else {
        return next.run(request).await;
    };
    let (parts, body) = request.into_parts();
    let visit_parts = parts.clone();
    let answer = next.run(Request::from_parts(parts, body)).await;
    let status = answer.status();
    let cookies_set = answer.headers().contains_key(header::SET_COOKIE);
    let mut carried = StatusCode::SEE_OTHER.into_response();
    carry_cookies(&answer, &mut carried);
    let body = axum::body::to_bytes(answer.into_body(), ANSWER_LIMIT)
        .await
        .unwrap_or_default();
    let json = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
    if kind == Kind::SignIn
        && status == StatusCode::UNAUTHORIZED
        && let Some(mfa_token) = mfa_token_of(&json)
    {
        // The provider proved who it is; the account's second factor comes next, on a page
        // (the mfa token in its form, never in a URL).
        let visit = state.visit(&visit_parts);
        let return_to = Some(return_to.as_str()).filter(|r| !r.is_empty());
        let methods: Vec<&str> = json["detail"]["methods"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m.as_str()).collect())
            .unwrap_or_default();
        let mut page = crate::second_factor::form(
            &state,
            &visit,
            StatusCode::OK,
            mfa_token,
            &methods,
            return_to,
            None,
        );
        carry_cookies(&carried, &mut page);
        if let Ok(clear) = HeaderValue::from_str(&cookie.set_cookie("", Some(0))) {
            page.headers_mut().append(header::SET_COOKIE, clear);
        }
        // Outside the pages' router: the same headers as every page (CSP, no framing,
        // no referrer, no-store), for the mfa token it carries.
        crate::security::apply_headers(&state, &mut page);
        return page;
    }
    let detail = json["detail"]
        .as_str()
        .map(code_param)
        .unwrap_or_else(|| "OAUTH".into());
    let target = match kind {
        // A cookie backend answers 204 (or 303 to its after-login page) with the cookie; a
        // Bearer backend's token (a 200 body) never reaches a page.
        Kind::SignIn
            if (status == StatusCode::NO_CONTENT || status == StatusCode::SEE_OTHER)
                && cookies_set =>
        {
            state
                .return_to
                .target(Some(return_to.as_str()).filter(|r| !r.is_empty()))
        }
        Kind::SignIn => format!("{}?error={detail}", state.path("sign-in")),
        Kind::Link if status == StatusCode::OK => format!("{}?done=linked", state.path("account")),
        Kind::Link => format!("{}?error={detail}", state.path("account")),
    };
    if let Ok(location) = HeaderValue::from_str(&target) {
        carried.headers_mut().insert(header::LOCATION, location);
    }
    if let Ok(clear) = HeaderValue::from_str(&cookie.set_cookie("", Some(0))) {
        carried.headers_mut().append(header::SET_COOKIE, clear);
    }
    crate::security::apply_headers(&state, &mut carried);
    carried
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_callback_paths_are_read_as_callbacks() {
        assert_eq!(
            callback_of("/auth/oidc/callback"),
            Some((Kind::SignIn, "oidc"))
        );
        assert_eq!(
            callback_of("/auth/associate/oidc/callback"),
            Some((Kind::Link, "oidc"))
        );
        assert_eq!(callback_of("/auth/oidc/authorize"), None);
        assert_eq!(callback_of("/auth/a/b/callback"), None);
        assert_eq!(callback_of("/ui/auth/oidc/callback"), None);
    }

    /// F19: the second-factor page a callback answers (and its redirects) carry the pages'
    /// security headers, though the callback is the library's route outside the pages' router.
    #[tokio::test]
    async fn the_callbacks_pages_carry_the_security_headers() {
        use axum::routing::get;
        let users = axum_users::AxumUsers::builder(
            axum_users::MemoryStore::<uuid::Uuid>::new(),
            "a secret of at least 32 bytes, for the test!",
        )
        .cookie(axum_users::CookieSettings::auth().with_secure(false))
        .build()
        .unwrap();
        let config = crate::PagesConfig::default().with_secure_cookies(false);
        let pages =
            crate::Pages::new(users, "the pages' secret of at least 32 bytes", config).unwrap();
        let mfa = serde_json::json!({"detail": {"code": "LOGIN_MFA_REQUIRED",
            "mfa_token": "pending-token", "methods": ["totp"]}});
        let refused = serde_json::json!({"detail": "OAUTH_INVALID_STATE"});
        let library = axum::Router::new()
            .route(
                "/auth/corp/callback",
                get(move || async move { (StatusCode::UNAUTHORIZED, axum::Json(mfa)) }),
            )
            .route(
                "/auth/associate/corp/callback",
                get(move || async move { (StatusCode::BAD_REQUEST, axum::Json(refused)) }),
            );
        let app = pages.wrap_oauth_callbacks(library);
        for (kind, path) in [
            (Kind::SignIn, "/auth/corp/callback"),
            (Kind::Link, "/auth/associate/corp/callback"),
        ] {
            let flow = flow_value(&pages.state, kind, "corp", "");
            let request = Request::get(path)
                .header("cookie", format!("axum_users_pages_oauth={flow}"))
                .body(Body::empty())
                .unwrap();
            let answer = app.clone().oneshot(request).await.unwrap();
            let headers = answer.headers();
            let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(
                csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
                "{path}: {csp}"
            );
            assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-store", "{path}");
            if kind == Kind::SignIn {
                assert_eq!(answer.status(), StatusCode::OK);
                let body = axum::body::to_bytes(answer.into_body(), ANSWER_LIMIT)
                    .await
                    .unwrap();
                let html = String::from_utf8_lossy(&body);
                assert!(html.contains("value=\"pending-token\""), "{html}");
            } else {
                assert_eq!(answer.status(), StatusCode::SEE_OTHER);
            }
        }
    }

    #[test]
    fn error_codes_keep_only_code_characters() {
        assert_eq!(code_param("OAUTH_INVALID_STATE"), "OAUTH_INVALID_STATE");
        assert_eq!(code_param("x&return_to=//evil"), "xreturn_toevil");
    }
}
