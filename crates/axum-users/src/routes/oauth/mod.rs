//! OAuth sign-in (`/auth/{name}/authorize|callback|token`), linking
//! (`/auth/associate/{name}/...`) and the linked accounts of the current user
//! (`/users/me/oauth-accounts`). The handlers parse and render; the manager decides.
//!
//! Unlike the reference, the callback checks the state, the CSRF cookie and the provider
//! binding *before* it spends the code (see [`state`]), binds a PKCE verifier and an OIDC nonce
//! to the browser, and never puts a token in a URL (see [`codes`]).

mod client;
mod codes;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum_users_oauth::{AuthorizationRequest, OAuthError, PkcePair, PkceVerifier};
use http::request::Parts;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

pub use client::OAuthClient;
pub(crate) use codes::LoginCodes;
pub(crate) use state::csrf_cookie_name;
use state::{Flow, Linker, StateClaims, StateCodec};

use crate::auth::{Requirements, no_store};
use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::keys::Purpose;
use crate::limits::LimitedRoute;
use crate::login::LoginOutcome;
use crate::manager::{ManagerError, UserOf};
use crate::model::UserId;
use crate::oauth_manager::OAuthSignIn;
use crate::route_state::RouteState;
use crate::secret::{Secret, constant_time_eq};
use crate::store::OAuthAccountStore;

struct ClientState<S: OAuthAccountStore, H> {
    inner: Arc<RouteState<S, H>>,
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

    fn states(&self) -> StateCodec<'_> {
        StateCodec {
            codec: &self.inner.oauth.state_codec,
            keys: self.inner.manager.key_ring(),
        }
    }

    /// The backend this provider signs in through (checked to exist at build).
    fn backend(&self) -> Result<&crate::auth::AuthBackend<S::Id>, ApiError> {
        let name = &self.client().backend;
        self.inner
            .auth
            .backends
            .iter()
            .find(|b| &b.name == name)
            .ok_or_else(|| ApiError::internal(&format!("no backend named {name}")))
    }

    /// The callback URL: configured, or under the public URL; never from request headers.
    fn redirect_uri(&self, flow: Flow) -> String {
        let client = self.client();
        let configured = match flow {
            Flow::SignIn => &client.redirect_url,
            Flow::Associate => &client.associate_redirect_url,
        };
        if let Some(url) = configured {
            return url.clone();
        }
        let base = &self.inner.oauth.public_url;
        match flow {
            Flow::SignIn => format!("{base}/auth/{}/callback", client.name()),
            Flow::Associate => format!("{base}/auth/associate/{}/callback", client.name()),
        }
    }
}

/// Every OAuth route of every configured provider, plus the linked-accounts routes.
pub(crate) fn router<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
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
                .route(&format!("/auth/{name}/token"), post(redeem_code::<S, H>))
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
    router.merge(
        Router::new()
            .route("/users/me/oauth-accounts", get(list_accounts::<S, H>))
            .route(
                "/users/{id}/oauth-accounts",
                get(super::admin::oauth_accounts::<S, H>),
            )
            .route(
                "/users/me/oauth-accounts/{id}",
                delete(unlink_account::<S, H>),
            )
            .with_state(inner),
    )
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

fn pkce(states: &StateCodec<'_>, cookie_secret: &str) -> PkcePair {
    PkcePair::from_verifier(PkceVerifier::new(states.derive("pkce", cookie_secret)))
}

async fn authorize<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    state.inner.limit(LimitedRoute::OAuth, &parts, None).await?;
    start(&state, query, Flow::SignIn, Linker::default())
}

async fn associate_authorize<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Result<Response, ApiError> {
    state.inner.limit(LimitedRoute::OAuth, &parts, None).await?;
    let inner = &state.inner;
    let found = inner
        .extension()
        .require(&parts, user_requirements(inner))
        .await?;
    // Linking adds a way in that outlives a password change: a token alone (perhaps stolen)
    // is not proof enough, a recent sign-in is (not under strict_compat, as the reference). A
    // store that keeps no sessions cannot tell how recent: refused too.
    if !inner.policy.strict_compat {
        inner
            .manager
            .check_recent_sign_in(found.session_id.as_deref())
            .await
            .map_err(|e| match e {
                ManagerError::MfaRecentSignInRequired => {
                    ApiError::code(ErrorCode::OAuthRecentSignInRequired)
                }
                e => super::server_error(e),
            })?;
    }
    let bearer = inner
        .auth
        .backends
        .iter()
        .any(|b| b.name == found.backend && !b.transport.is_cookie());
    let linker = Linker {
        sub: Some(found.user.id.to_string()),
        sid: found.session_id,
        pwf: Some(
            inner
                .manager
                .password_fingerprint(&found.user.hashed_password),
        ),
        bearer,
    };
    start(&state, query, Flow::Associate, linker)
}

/// Answers `{"authorization_url": ...}` and sets the CSRF cookie.
fn start<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    query: Option<String>,
    flow: Flow,
    linker: Linker,
) -> Result<Response, ApiError> {
    let client = state.client();
    let scopes: Vec<String> = query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "scopes")
        .map(|(_, v)| v)
        .collect();
    let states = state.states();
    let new = states
        .issue(client.name(), flow, linker)
        .map_err(|e| ApiError::internal(&e))?;
    let mut request = AuthorizationRequest::new(state.redirect_uri(flow), new.state)
        .with_pkce(&pkce(&states, &new.cookie_secret))
        .with_nonce(states.derive("nonce", &new.cookie_secret));
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
        state
            .inner
            .oauth
            .csrf_cookie
            .set_cookie(&new.cookie_secret, Some(flow.lifetime() as u64)),
    );
    Ok(response)
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Ends the browser's flow: every callback answer (errors too) and logout clear the cookie.
pub(crate) fn clear_csrf_cookie(
    settings: &crate::route_state::OAuthSettings,
    response: &mut Response,
) {
    if !settings.clients.is_empty() {
        set_cookie(response, settings.csrf_cookie.set_cookie("", Some(0)));
    }
}

/// A callback's answer, success or error. Once the state matched the browser's cookie the
/// flow is over whatever the outcome, so the cookie is cleared; a state that does not match
/// leaves it (anyone can send a browser to a forged callback URL, which must not end its flow).
fn ending_flow<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    answer: Result<Response, ApiError>,
    verified: bool,
) -> Response {
    let mut response = answer.unwrap_or_else(IntoResponse::into_response);
    if verified {
        clear_csrf_cookie(&state.inner.oauth, &mut response);
    }
    response
}

async fn current_user<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
) -> Result<UserOf<S>, ApiError> {
    Ok(inner
        .extension()
        .require(parts, user_requirements(inner))
        .await?
        .user)
}

/// What the users' own OAuth routes require: an active user, verified where required.
fn user_requirements<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
) -> Requirements {
    Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser: false,
    }
}

/// The user an associate callback links to: the one whose credentials it carries (a cookie
/// rides on the provider's redirect), else, for a front end that called authorize with its
/// Bearer token, the user the state was issued to, while the session of that authorize is
/// live and the password unchanged (see [`Linker`]). The state is signed and bound to the CSRF
/// cookie of the browser that called authorize, so no other browser can complete it.
/// `strict_compat` keeps the reference's 401 without credentials.
async fn linking_user<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
    linker: &Linker,
) -> Result<UserOf<S>, ApiError> {
    if let Some(found) = inner.extension().0.authenticate(parts).await? {
        return Ok(found.user);
    }
    if inner.policy.strict_compat || !linker.bearer {
        return Err(ApiError::unauthorized());
    }
    let id = linker
        .sub
        .as_deref()
        .and_then(S::Id::parse)
        .ok_or_else(|| ApiError::code(ErrorCode::BadRequest))?;
    let user = match &linker.sid {
        Some(sid) => inner.manager.user_of_session(&id, sid).await,
        None => inner.manager.user_of_token(&id).await,
    }
    .map_err(super::server_error)?
    .ok_or_else(ApiError::unauthorized)?;
    let fingerprint = inner.manager.password_fingerprint(&user.hashed_password);
    let unchanged = linker
        .pwf
        .as_deref()
        .is_some_and(|p| constant_time_eq(p.as_bytes(), fingerprint.as_bytes()));
    if !unchanged {
        return Err(ApiError::unauthorized());
    }
    Ok(user)
}

/// The provider's `error` as the detail, reduced to the characters an OAuth error code has.
fn provider_error(error: &str) -> ApiError {
    let clean: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-. ".contains(*c))
        .take(64)
        .collect();
    if clean.is_empty() {
        return ApiError::code(ErrorCode::BadRequest);
    }
    ApiError::new(StatusCode::BAD_REQUEST, clean)
}

fn oauth_error(e: OAuthError) -> ApiError {
    match e {
        OAuthError::TokenRejected { error, .. } => {
            tracing::info!(%error, "the provider refused the authorization code");
            ApiError::code(ErrorCode::OAuthCodeExchangeFailed)
        }
        OAuthError::IdTokenInvalid(reason) => {
            tracing::warn!(?reason, "the provider's id_token was refused");
            ApiError::code(ErrorCode::OAuthInvalidIdToken)
        }
        OAuthError::InvalidConfig(_) | OAuthError::NotSupported(_) => ApiError::internal(&e),
        other => {
            tracing::warn!(error = %other, "the provider failed");
            ApiError::code(ErrorCode::OAuthProviderUnavailable)
        }
    }
}

/// What a callback carries once its checks passed: the code to spend, the state's claims and
/// the browser's cookie secret.
struct CheckedCallback {
    code: String,
    claims: StateClaims,
    cookie_secret: String,
}

/// The checks of a callback that come before the code is spent: provider error, code, state,
/// provider and flow binding, CSRF cookie.
fn check_callback<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    parts: &Parts,
    query: Option<String>,
    flow: Flow,
) -> Result<CheckedCallback, ApiError> {
    let pairs = query_pairs(query);
    if let Some(error) = query_value(&pairs, "error") {
        return Err(provider_error(&error));
    }
    let code = query_value(&pairs, "code")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::code(ErrorCode::BadRequest))?;
    let raw_state = query_value(&pairs, "state").unwrap_or_default();
    let cookie = &state.inner.oauth.csrf_cookie;
    // Two cookies of the name: one was planted (a sibling subdomain, a longer Path).
    if crate::auth::cookie_values(&parts.headers, &cookie.name).count() > 1 {
        return Err(ApiError::code(ErrorCode::OAuthInvalidState));
    }
    let cookie_secret = cookie.read(&parts.headers);
    let claims = state.states().check(
        &raw_state,
        cookie_secret.as_deref(),
        state.client().name(),
        flow,
    )?;
    Ok(CheckedCallback {
        code,
        claims,
        cookie_secret: cookie_secret.unwrap_or_default(),
    })
}

/// Spends the code and asks the provider who signed in.
async fn exchange<S: OAuthAccountStore, H>(
    state: &ClientState<S, H>,
    checked: &CheckedCallback,
    flow: Flow,
) -> Result<OAuthSignIn, ApiError> {
    let client = state.client();
    let states = state.states();
    let verifier = pkce(&states, &checked.cookie_secret).verifier;
    let token = client
        .provider
        .exchange_code(&checked.code, &state.redirect_uri(flow), Some(&verifier))
        .await
        .map_err(oauth_error)?;
    let nonce = states.derive("nonce", &checked.cookie_secret);
    let identity = client
        .provider
        .identity(&token, Some(&nonce))
        .await
        .map_err(oauth_error)?;
    let email = identity
        .email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::code(ErrorCode::OAuthNotAvailableEmail))?;
    Ok(OAuthSignIn {
        oauth_name: client.name().to_owned(),
        access_token: Secret::new(token.access_token.secret()),
        expires_at: token.expires_at,
        refresh_token: token
            .refresh_token
            .as_ref()
            .map(|t| Secret::new(t.secret())),
        account_id: identity.account_id,
        account_email: email,
        email_verified: identity.email_verified,
        profile: identity.profile.into(),
    })
}

/// The manager's errors of a provider sign-in or link, as answers.
fn sign_in_error(e: ManagerError) -> ApiError {
    match e {
        ManagerError::UserAlreadyExists => ApiError::code(ErrorCode::OAuthUserAlreadyExists),
        other => super::server_error(other),
    }
}

async fn callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Response {
    let mut verified = false;
    let answer = sign_in_callback(&state, query, &parts, &mut verified).await;
    ending_flow(&state, answer, verified)
}

async fn sign_in_callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    state: &ClientState<S, H>,
    query: Option<String>,
    parts: &Parts,
    verified: &mut bool,
) -> Result<Response, ApiError> {
    state.inner.limit(LimitedRoute::OAuth, parts, None).await?;
    let checked = check_callback(state, parts, query, Flow::SignIn)?;
    *verified = true;
    let sign_in = exchange(state, &checked, Flow::SignIn).await?;
    let inner = &state.inner;
    let client = state.client();
    let backend = state.backend()?;
    let response = match &client.after_login_redirect {
        // A Bearer token never goes into a URL: the front end gets a one-time code.
        Some(url) if !backend.transport.is_cookie() => {
            let user = inner
                .manager
                .oauth_resolve(&sign_in, client.policy, Some(parts))
                .await
                .map_err(sign_in_error)?;
            code_redirect(state, url, &user.id).await?
        }
        redirect => {
            let outcome = inner
                .manager
                .login_with_oauth(
                    &sign_in,
                    client.policy,
                    backend,
                    Some(parts),
                    redirect.as_deref(),
                )
                .await;
            match (redirect.as_deref(), outcome) {
                // A cookie sign-in that needs its second factor: no cookie yet, and no mfa token
                // in a URL; the front end redeems the one-time code and gets LOGIN_MFA_REQUIRED.
                (
                    Some(url),
                    Ok(LoginOutcome::SecondFactorRequired {
                        user, mfa: Some(_), ..
                    }),
                ) => code_redirect(state, url, &user.id).await?,
                (_, outcome) => super::login_answer(outcome, sign_in_error)?,
            }
        }
    };
    Ok(response)
}

/// A 303 to the front end's `url` with a one-time login code for `user_id`.
async fn code_redirect<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    state: &ClientState<S, H>,
    url: &str,
    user_id: &S::Id,
) -> Result<Response, ApiError> {
    let codec = state
        .inner
        .manager
        .key_ring()
        .codec(Purpose::LoginCode)
        .map_err(|e| ApiError::internal(&e))?;
    let issued = LoginCodes::issue(&codec, &user_id.to_string(), state.client().name())
        .map_err(|e| ApiError::internal(&e))?;
    state
        .inner
        .manager
        .remember_login_code(user_id, &issued.jti, issued.expires_at)
        .await
        .map_err(super::server_error)?;
    let code = issued.code;
    let separator = if url.contains('?') { '&' } else { '?' };
    let mut response = StatusCode::SEE_OTHER.into_response();
    super::redirect(&mut response, &format!("{url}{separator}code={code}"));
    no_store(&mut response);
    Ok(response)
}

/// `POST /auth/{name}/token {"code": ...}`: the one-time code of a redirect, for the
/// backend's normal login response.
async fn redeem_code<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = crate::body::parse_json(&parts.headers, &body)?;
    let code = crate::body::Fields::read(&value, |f| f.string("code"))?;
    let inner = &state.inner;
    let client = state.client();
    let codec = inner
        .manager
        .key_ring()
        .codec(Purpose::LoginCode)
        .map_err(|e| ApiError::internal(&e))?;
    let invalid = || ApiError::code(ErrorCode::OAuthInvalidLoginCode);
    let user_id = LoginCodes::peek(&codec, &code, client.name())
        .and_then(|id| S::Id::parse(&id))
        .ok_or_else(invalid)?;
    let backend = state.backend()?;
    let spend = async {
        match inner.oauth.login_codes.redeem(&codec, &code, client.name()) {
            Some(jti) => inner.manager.spend_login_code(&jti).await,
            None => Ok(false),
        }
    };
    let outcome = inner
        .manager
        .login_with_code(&user_id, client.name(), spend, backend, Some(&parts))
        .await;
    super::login_answer(outcome, super::server_error)
}

async fn associate_callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<ClientState<S, H>>,
    RawQuery(query): RawQuery,
    parts: Parts,
) -> Response {
    let mut verified = false;
    let answer = link_callback(&state, query, &parts, &mut verified).await;
    ending_flow(&state, answer, verified)
}

async fn link_callback<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    state: &ClientState<S, H>,
    query: Option<String>,
    parts: &Parts,
    verified: &mut bool,
) -> Result<Response, ApiError> {
    state.inner.limit(LimitedRoute::OAuth, parts, None).await?;
    if state.inner.policy.strict_compat {
        current_user(&state.inner, parts).await?;
    }
    let checked = check_callback(state, parts, query, Flow::Associate)?;
    *verified = true;
    let linker = &checked.claims.linker;
    let user = linking_user(&state.inner, parts, linker).await?;
    user_requirements(&state.inner).check(Some(&user))?;
    if linker.sub.as_deref() != Some(user.id.to_string().as_str()) {
        return Err(ApiError::code(ErrorCode::BadRequest));
    }
    let sign_in = exchange(state, &checked, Flow::Associate).await?;
    let user = state
        .inner
        .manager
        .oauth_associate(&user, &sign_in, Some(parts))
        .await
        .map_err(sign_in_error)?;
    Ok(super::user_response(StatusCode::OK, &user))
}

async fn list_accounts<S: OAuthAccountStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
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
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let user = current_user(&inner, &parts).await?;
    let Some(account_id) = S::Id::parse(&id) else {
        return Err(ApiError::not_found());
    };
    inner
        .manager
        .oauth_unlink(&user, &account_id)
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
