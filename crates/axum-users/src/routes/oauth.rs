//! OAuth sign-in (`/auth/{name}/authorize|callback`), linking (`/auth/associate/{name}/...`) and
//! the linked accounts of the current user (`/users/me/oauth-accounts`).
//!
//! Unlike the reference, the callback checks the state, the CSRF cookie and the provider binding
//! *before* it spends the code, binds a PKCE verifier and an OIDC nonce to the state, and
//! clears the CSRF cookie after a successful sign-in.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum_users_oauth::{AuthorizationRequest, OAuthError, OAuthProvider, PkcePair, PkceVerifier};
use base64::Engine;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::app::Inner;
use crate::auth::{Requirements, Transport};
use crate::error::ApiError;
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserOf};
use crate::model::UserId;
use crate::oauth_manager::{OAuthPolicy, OAuthSignIn};
use crate::secret::{Secret, constant_time_eq, random_token};
use crate::store::OAuthAccountStore;
use crate::tokens::{OAUTH_STATE_AUDIENCE, TokenError, now_unix};

/// Lifetime of a state and its CSRF cookie, seconds (as the reference).
const STATE_LIFETIME: i64 = 3600;

/// One provider's sign-in and linking routes.
#[derive(Clone)]
pub struct OAuthClient {
    /// The provider.
    pub provider: Arc<dyn OAuthProvider>,
    /// The backend that logs the user in after a sign-in (default `jwt`).
    pub backend: String,
    /// Linking by e-mail and verified-by-default.
    pub policy: OAuthPolicy,
    /// The sign-in callback URL registered at the provider; default
    /// `{public_url}/auth/{name}/callback`.
    pub redirect_url: Option<String>,
    /// The linking callback URL; default `{public_url}/auth/associate/{name}/callback`.
    pub associate_redirect_url: Option<String>,
    /// For single-page apps: after a sign-in, answer 303 to this URL instead of the backend's
    /// login response (a cookie backend's cookie is set; a Bearer token travels in the fragment).
    pub after_login_redirect: Option<String>,
}

impl std::fmt::Debug for OAuthClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthClient")
            .field("provider", &self.provider.name())
            .field("backend", &self.backend)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl OAuthClient {
    /// Sign-in with `provider`, logging in through the `jwt` backend, no linking by e-mail.
    pub fn new(provider: Arc<dyn OAuthProvider>) -> Self {
        Self {
            provider,
            backend: "jwt".into(),
            policy: OAuthPolicy::default(),
            redirect_url: None,
            associate_redirect_url: None,
            after_login_redirect: None,
        }
    }

    /// The backend to log in through.
    pub fn with_backend(mut self, backend: impl Into<String>) -> Self {
        self.backend = backend.into();
        self
    }

    /// Linking by verified e-mail and verified-by-default.
    pub fn with_policy(mut self, policy: OAuthPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Redirect single-page apps here after a sign-in.
    pub fn with_after_login_redirect(mut self, url: impl Into<String>) -> Self {
        self.after_login_redirect = Some(url.into());
        self
    }

    fn name(&self) -> &str {
        self.provider.name()
    }
}

/// What the `state` parameter carries, signed.
#[derive(Debug, Serialize, Deserialize)]
struct StateClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default)]
    csrftoken: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    flow: String,
    aud: String,
    exp: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    SignIn,
    Associate,
}

impl Flow {
    fn as_str(self) -> &'static str {
        match self {
            Flow::SignIn => "sign-in",
            Flow::Associate => "associate",
        }
    }
}

struct ClientState<S: OAuthAccountStore, H> {
    inner: Arc<Inner<S, H>>,
    index: usize,
}

impl<S: OAuthAccountStore, H> Clone for ClientState<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            index: self.index,
        }
    }
}

impl<S: OAuthAccountStore, H> ClientState<S, H> {
    fn client(&self) -> &OAuthClient {
        &self.inner.oauth.clients[self.index]
    }
}

/// Every OAuth route of every configured provider, plus the linked-accounts routes.
pub(crate) fn router<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<Inner<S, H>>,
) -> Router {
    let mut router = Router::new();
    for index in 0..inner.oauth.clients.len() {
        let name = inner.oauth.clients[index].name().to_owned();
        let state = ClientState {
            inner: inner.clone(),
            index,
        };
        router = router.merge(
            Router::new()
                .route(&format!("/auth/{name}/authorize"), get(authorize::<S, H>))
                .route(&format!("/auth/{name}/callback"), get(callback::<S, H>))
                .route(
                    &format!("/auth/associate/{name}/authorize"),
                    get(associate_authorize::<S, H>),
                )
                .route(
                    &format!("/auth/associate/{name}/callback"),
                    get(associate_callback::<S, H>),
                )
                .with_state(state),
        );
    }
    router
        .merge(
            Router::new()
                .route("/users/me/oauth-accounts", get(list_accounts::<S, H>))
                .route(
                    "/users/me/oauth-accounts/{id}",
                    delete(unlink_account::<S, H>),
                )
                .with_state(inner.clone()),
        )
        .layer(axum::Extension(inner.extension()))
}

fn query_pairs(query: Option<String>) -> Vec<(String, String)> {
    query
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

fn query_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// A value derived from the CSRF token with the state key: the PKCE verifier and the nonce
/// need no server-side storage, and only this server can compute them.
fn derive(key: &Secret, purpose: &str, csrf: &str) -> String {
    #[allow(clippy::expect_used)]
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.expose().as_bytes()).expect("HMAC takes any key");
    mac.update(purpose.as_bytes());
    mac.update(b"|");
    mac.update(csrf.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn pkce(key: &Secret, csrf: &str) -> PkcePair {
    PkcePair::from_verifier(PkceVerifier::new(derive(key, "pkce", csrf)))
}

fn redirect_uri<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    parts: &Parts,
    flow: Flow,
) -> String {
    let client = state.client();
    let configured = match flow {
        Flow::SignIn => &client.redirect_url,
        Flow::Associate => &client.associate_redirect_url,
    };
    if let Some(url) = configured {
        return url.clone();
    }
    let base = state.inner.oauth.public_url.clone().unwrap_or_else(|| {
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        format!("http://{host}")
    });
    match flow {
        Flow::SignIn => format!("{base}/auth/{}/callback", client.name()),
        Flow::Associate => format!("{base}/auth/associate/{}/callback", client.name()),
    }
}

async fn authorize<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    start(&state, &parts, query, Flow::SignIn, None)
}

async fn associate_authorize<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    let user = current_user(&state.inner, &parts).await?;
    start(
        &state,
        &parts,
        query,
        Flow::Associate,
        Some(user.id.to_string()),
    )
}

/// Answers `{"authorization_url": ...}` and sets the CSRF cookie.
fn start<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    parts: &Parts,
    query: Option<String>,
    flow: Flow,
    sub: Option<String>,
) -> Result<Response, ApiError> {
    let oauth = &state.inner.oauth;
    let client = state.client();
    let scopes: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "scopes")
        .map(|(_, v)| v)
        .collect();
    let csrf = random_token(32);
    let claims = StateClaims {
        sub,
        csrftoken: csrf.clone(),
        provider: client.name().to_owned(),
        flow: flow.as_str().to_owned(),
        aud: OAUTH_STATE_AUDIENCE.into(),
        exp: now_unix() + STATE_LIFETIME,
    };
    let signed = oauth
        .state_codec
        .encode(&claims)
        .map_err(|e| ApiError::internal(&e))?;
    let mut request = AuthorizationRequest::new(redirect_uri(state, parts, flow), signed)
        .with_pkce(&pkce(&oauth.state_key, &csrf))
        .with_nonce(derive(&oauth.state_key, "nonce", &csrf));
    if !scopes.is_empty() {
        request = request.with_scopes(scopes);
    }
    let url = client
        .provider
        .authorization_url(&request)
        .map_err(|e| ApiError::internal(&e))?;
    let mut response = axum::Json(json!({"authorization_url": url.as_str()})).into_response();
    set_cookie(
        &mut response,
        oauth
            .csrf_cookie
            .set_cookie(&csrf, Some(STATE_LIFETIME as u64)),
    );
    Ok(response)
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

async fn current_user<S: OAuthAccountStore, H>(
    inner: &Inner<S, H>,
    parts: &Parts,
) -> Result<UserOf<S>, ApiError> {
    let requirements = Requirements {
        active: true,
        verified: inner.requires_verification,
        superuser: false,
    };
    Ok(inner
        .extension()
        .require(&parts.headers, requirements)
        .await?
        .user)
}

/// The provider's `error` as the detail, reduced to the characters an OAuth error code has.
fn provider_error(error: &str) -> ApiError {
    let clean: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-. ".contains(*c))
        .take(64)
        .collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        if clean.is_empty() {
            "Bad Request".to_owned()
        } else {
            clean
        },
    )
}

fn oauth_error(e: OAuthError) -> ApiError {
    match e {
        OAuthError::TokenRejected { error, .. } => {
            tracing::info!(%error, "the provider refused the authorization code");
            ApiError::bad_request("OAUTH_CODE_EXCHANGE_FAILED")
        }
        OAuthError::IdTokenInvalid(reason) => {
            tracing::warn!(?reason, "the provider's id_token was refused");
            ApiError::bad_request("OAUTH_INVALID_ID_TOKEN")
        }
        OAuthError::InvalidConfig(_) | OAuthError::NotSupported(_) => ApiError::internal(&e),
        other => {
            tracing::warn!(error = %other, "the provider failed");
            ApiError::new(StatusCode::BAD_GATEWAY, "OAUTH_PROVIDER_UNAVAILABLE")
        }
    }
}

/// The checks of a callback that come before the code is spent: provider error, code, state,
/// provider and flow binding, CSRF cookie. Returns the code and the state's claims.
fn check_callback<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    parts: &Parts,
    query: Option<String>,
    flow: Flow,
) -> Result<(String, StateClaims), ApiError> {
    let pairs = query_pairs(query);
    if let Some(error) = query_value(&pairs, "error") {
        return Err(provider_error(&error));
    }
    let code = query_value(&pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("Bad Request"))?;
    let raw_state = query_value(&pairs, "state").unwrap_or_default();
    let claims: StateClaims = state
        .inner
        .oauth
        .state_codec
        .decode(&raw_state, OAUTH_STATE_AUDIENCE)
        .map_err(|e| match e {
            TokenError::Expired => ApiError::bad_request("ACCESS_TOKEN_ALREADY_EXPIRED"),
            _ => ApiError::bad_request("ACCESS_TOKEN_DECODE_ERROR"),
        })?;
    let cookie = state
        .inner
        .oauth
        .csrf_cookie
        .read(&parts.headers)
        .unwrap_or_default();
    let bound = claims.provider == state.client().name() && claims.flow == flow.as_str();
    if claims.csrftoken.is_empty()
        || cookie.is_empty()
        || !constant_time_eq(cookie.as_bytes(), claims.csrftoken.as_bytes())
        || !bound
    {
        return Err(ApiError::bad_request("OAUTH_INVALID_STATE"));
    }
    Ok((code, claims))
}

/// Spends the code and asks the provider who signed in.
async fn exchange<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    parts: &Parts,
    code: &str,
    claims: &StateClaims,
    flow: Flow,
) -> Result<OAuthSignIn, ApiError> {
    let oauth = &state.inner.oauth;
    let client = state.client();
    let redirect = redirect_uri(state, parts, flow);
    let verifier = pkce(&oauth.state_key, &claims.csrftoken).verifier;
    let token = client
        .provider
        .exchange_code(code, &redirect, Some(&verifier))
        .await
        .map_err(oauth_error)?;
    let nonce = derive(&oauth.state_key, "nonce", &claims.csrftoken);
    let identity = client
        .provider
        .identity(&token, Some(&nonce))
        .await
        .map_err(oauth_error)?;
    let email = identity
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::bad_request("OAUTH_NOT_AVAILABLE_EMAIL"))?;
    Ok(OAuthSignIn {
        oauth_name: client.name().to_owned(),
        access_token: Secret::new(token.access_token.secret()),
        expires_at: token.expires_at,
        refresh_token: token
            .refresh_token
            .as_ref()
            .map(|t| Secret::new(t.secret())),
        account_id: identity.account_id,
        account_email: crate::normalize_email(&email).unwrap_or(email),
        email_verified: identity.email_verified,
    })
}

async fn callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    let (code, claims) = check_callback(&state, &parts, query, Flow::SignIn)?;
    let sign_in = exchange(&state, &parts, &code, &claims, Flow::SignIn).await?;
    let inner = &state.inner;
    let client = state.client();
    let user = match inner
        .manager
        .oauth_callback(&sign_in, client.policy, Some(&parts))
        .await
    {
        Ok(user) => user,
        Err(ManagerError::UserAlreadyExists) => {
            return Err(ApiError::bad_request("OAUTH_USER_ALREADY_EXISTS"));
        }
        Err(e) => return Err(super::server_error(e)),
    };
    if !user.is_active {
        return Err(ApiError::bad_request("LOGIN_BAD_CREDENTIALS"));
    }
    let backend = inner
        .auth
        .backends
        .iter()
        .find(|b| b.name == client.backend)
        .ok_or_else(|| ApiError::internal(&format!("no backend named {}", client.backend)))?;
    let token = backend.strategy.write_token(&user.id).await?;
    let mut response = match &client.after_login_redirect {
        None => backend.transport.login_response(&token),
        Some(url) => redirect_after_login(url, &backend.transport, &token),
    };
    inner
        .manager
        .hooks()
        .on_after_login(&user, Some(&parts), &mut response)
        .await;
    set_cookie(
        &mut response,
        inner.oauth.csrf_cookie.set_cookie("", Some(0)),
    );
    Ok(response)
}

/// 303 to the front end: the cookie backend's cookie rides along; a Bearer token goes in the
/// URL fragment, which browsers never send to servers.
fn redirect_after_login(url: &str, transport: &Transport, token: &str) -> Response {
    let mut response = match transport {
        Transport::Cookie(_) => transport.login_response(token),
        Transport::Bearer { .. } => Response::new(axum::body::Body::empty()),
    };
    let target = match transport {
        Transport::Cookie(_) => url.to_owned(),
        Transport::Bearer { .. } => format!("{url}#access_token={token}&token_type=bearer"),
    };
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(&target) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn associate_callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    let user = current_user(&state.inner, &parts).await?;
    let (code, claims) = check_callback(&state, &parts, query, Flow::Associate)?;
    if claims.sub.as_deref() != Some(user.id.to_string().as_str()) {
        return Err(ApiError::bad_request("Bad Request"));
    }
    let sign_in = exchange(&state, &parts, &code, &claims, Flow::Associate).await?;
    match state
        .inner
        .manager
        .oauth_associate(&user, &sign_in, Some(&parts))
        .await
    {
        Ok(()) => {
            let mut response = super::user_response(StatusCode::OK, &user);
            set_cookie(
                &mut response,
                state.inner.oauth.csrf_cookie.set_cookie("", Some(0)),
            );
            Ok(response)
        }
        Err(ManagerError::OAuthAccountAlreadyLinked) => {
            Err(ApiError::bad_request("OAUTH_ACCOUNT_ALREADY_LINKED"))
        }
        Err(e) => Err(super::server_error(e)),
    }
}

async fn list_accounts<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<Inner<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let user = current_user(&inner, &parts).await?;
    let accounts = inner
        .manager
        .oauth_accounts(&user)
        .await
        .map_err(super::server_error)?;
    let listed: Vec<_> = accounts
        .iter()
        .map(|a| {
            json!({"id": a.id, "oauth_name": a.oauth_name, "account_id": a.account_id,
                   "account_email": a.account_email, "expires_at": a.expires_at})
        })
        .collect();
    Ok(super::json(StatusCode::OK, listed))
}

async fn unlink_account<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<Inner<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let user = current_user(&inner, &parts).await?;
    let Some(account_id) = S::Id::parse(&id) else {
        return Err(ApiError::not_found());
    };
    match inner.manager.oauth_unlink(&user, &account_id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(ManagerError::OAuthAccountNotFound) => Err(ApiError::not_found()),
        Err(ManagerError::LastSignInMethod) => {
            Err(ApiError::bad_request("OAUTH_LAST_SIGN_IN_METHOD"))
        }
        Err(e) => Err(super::server_error(e)),
    }
}
