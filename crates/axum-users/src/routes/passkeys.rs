//! Passkeys: `POST /users/me/passkeys/register/start|finish`, `GET /users/me/passkeys`,
//! `PATCH|DELETE /users/me/passkeys/{id}`, and per backend the passwordless sign-in
//! `POST /auth/{backend}/passkey/start|finish` and the second factor
//! `POST /auth/{backend}/mfa/passkey/start|finish`. The rules are the manager's
//! (`passkeys/`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use super::auth::BackendState;
use super::mfa::{me, me_and_current_password, no_store_json};
use crate::body::{Fields, parse_json};
use crate::error::{ApiError, ValidationIssue};
use crate::hooks::UserHooks;
use crate::limits::LimitedRoute;
use crate::passkeys::{PasskeyCeremony, PasskeyInfo};
use crate::route_state::RouteState;
use crate::store::UserStore;

/// The largest body of a passkey route: a credential with its attestation is a few KiB.
pub(crate) const PASSKEY_BODY_LIMIT: usize = 64 * 1024;

/// The routes under `/users`.
pub(crate) fn users_router<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/me/passkeys", get(list::<S, H>))
        .route("/me/passkeys/register/start", post(register_start::<S, H>))
        .route(
            "/me/passkeys/register/finish",
            post(register_finish::<S, H>),
        )
        .route(
            "/me/passkeys/{id}",
            patch(rename::<S, H>).delete(remove::<S, H>),
        )
        .layer(DefaultBodyLimit::max(PASSKEY_BODY_LIMIT))
        .with_state(inner)
}

/// The routes of one backend, merged into its router.
pub(super) fn backend_routes<S: UserStore, H: UserHooks<S::Id, S::Fields>>()
-> Router<BackendState<S, H>> {
    Router::new()
        .route("/passkey/start", post(sign_in_start::<S, H>))
        .route("/passkey/finish", post(sign_in_finish::<S, H>))
        .route("/mfa/passkey/start", post(second_factor_start::<S, H>))
        .route("/mfa/passkey/finish", post(second_factor_finish::<S, H>))
        .layer(DefaultBodyLimit::max(PASSKEY_BODY_LIMIT))
}

fn info_json(info: &PasskeyInfo) -> Value {
    json!({
        "id": info.id,
        "name": info.name,
        "created_at": crate::directory::format_time(info.created_at),
        "last_used_at": info.last_used_at.map(crate::directory::format_time),
    })
}

/// `{"challenge_id", "publicKey": {...}}` (and `mediation`), not to be cached.
fn ceremony_json(ceremony: PasskeyCeremony) -> Response {
    let mut body = match ceremony.options {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    body.insert(
        "challenge_id".into(),
        Value::String(ceremony.challenge_id.expose().to_owned()),
    );
    no_store_json(StatusCode::OK, Value::Object(body))
}

/// The `credential` member: the browser's `PublicKeyCredential.toJSON()`, an object.
fn credential_of(value: &Value) -> Result<Value, ApiError> {
    match value.get("credential") {
        Some(credential @ Value::Object(_)) => Ok(credential.clone()),
        Some(other) => Err(ApiError::validation(vec![ValidationIssue::body_field(
            "dict_type",
            "credential",
            "Input should be a valid dictionary",
            other.clone(),
        )])),
        None => Err(ApiError::validation(vec![ValidationIssue::body_field(
            "missing",
            "credential",
            "Field required",
            value.clone(),
        )])),
    }
}

async fn list<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let passkeys = inner
        .manager
        .passkeys(&me.user)
        .await
        .map_err(super::server_error)?;
    let list: Vec<Value> = passkeys.iter().map(info_json).collect();
    Ok(no_store_json(StatusCode::OK, Value::Array(list)))
}

async fn register_start<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (me, current) = me_and_current_password(&inner, &parts, &body).await?;
    let ceremony = inner
        .manager
        .begin_passkey_registration(
            &me.user,
            current.as_ref(),
            me.session_id.as_deref(),
            Some(&parts),
        )
        .await
        .map_err(super::server_error)?;
    Ok(ceremony_json(ceremony))
}

async fn register_finish<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let value = parse_json(&parts.headers, &body)?;
    let (challenge_id, name) = Fields::read(&value, |f| {
        (f.string("challenge_id"), f.optional_string("name", true))
    })?;
    let credential = credential_of(&value)?;
    let registered = inner
        .manager
        .finish_passkey_registration(
            &me.user,
            &challenge_id,
            &credential,
            name.as_deref(),
            Some(&parts),
        )
        .await
        .map_err(super::server_error)?;
    let mut answer = info_json(&registered.passkey);
    if let Some(codes) = &registered.recovery_codes {
        answer["recovery_codes"] = codes.iter().map(|c| c.expose()).collect();
    }
    Ok(no_store_json(StatusCode::CREATED, answer))
}

async fn rename<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let value = parse_json(&parts.headers, &body)?;
    let name = Fields::read(&value, |f| f.string("name"))?;
    let info = inner
        .manager
        .rename_passkey(&me.user, &id, &name)
        .await
        .map_err(super::server_error)?;
    Ok(no_store_json(StatusCode::OK, info_json(&info)))
}

async fn remove<S: crate::RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (me, current) = me_and_current_password(&inner, &parts, &body).await?;
    inner
        .manager
        .remove_passkey(
            &me.user,
            &id,
            current.as_ref(),
            me.session_id.as_deref(),
            Some(&parts),
        )
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn sign_in_start<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    // Each start writes a ceremony row: counted as a sign-in of the client's address.
    inner.limit(LimitedRoute::Login, &parts, None).await?;
    let backend = inner.backend(state.index);
    let ceremony = inner
        .manager
        .begin_passkey_sign_in(backend, Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(ceremony_json(ceremony))
}

async fn sign_in_finish<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let challenge_id = Fields::read(&value, |f| f.string("challenge_id"))?;
    let credential = credential_of(&value)?;
    let inner = &state.inner;
    let backend = inner.backend(state.index);
    let outcome = inner
        .manager
        .login_with_passkey(&challenge_id, &credential, backend, Some(&parts))
        .await;
    super::login_answer(outcome, super::server_error)
}

async fn second_factor_start<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let token = Fields::read(&value, |f| f.string("mfa_token"))?;
    let inner = &state.inner;
    inner.limit(LimitedRoute::Login, &parts, None).await?;
    let backend = inner.backend(state.index);
    let ceremony = inner
        .manager
        .begin_passkey_second_factor(&token, backend)
        .await
        .map_err(super::server_error)?;
    Ok(ceremony_json(ceremony))
}

async fn second_factor_finish<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let (token, challenge_id) = Fields::read(&value, |f| {
        (f.string("mfa_token"), f.string("challenge_id"))
    })?;
    let credential = credential_of(&value)?;
    let inner = &state.inner;
    let backend = inner.backend(state.index);
    let outcome = inner
        .manager
        .login_with_passkey_second_factor(&token, &challenge_id, &credential, backend, Some(&parts))
        .await;
    super::login_answer(outcome, super::server_error)
}
