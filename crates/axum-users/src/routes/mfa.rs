//! Second factors: `GET /users/me/mfa`, `POST|DELETE /users/me/mfa/totp`,
//! `POST /users/me/mfa/totp/confirm`, `POST /users/me/mfa/recovery-codes`, the superuser's
//! `DELETE /users/{id}/mfa`, and the second step of a sign-in, `POST /auth/{backend}/mfa`.
//! The rules are the manager's (`mfa/`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value, json};

use super::auth::BackendState;
use crate::auth::{Authenticated, Requirements};
use crate::body::{Fields, parse_form, parse_json};
use crate::error::{ApiError, ValidationIssue};
use crate::hooks::UserHooks;
use crate::mfa::{MfaProof, SecondFactorAnswer};
use crate::route_state::RouteState;
use crate::secret::Secret;
use crate::store::UserStore;

/// The routes under `/users`.
pub(crate) fn users_router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/me/mfa", get(status::<S, H>))
        .route("/me/mfa/totp", post(begin::<S, H>).delete(disable::<S, H>))
        .route("/me/mfa/totp/confirm", post(confirm::<S, H>))
        .route("/me/mfa/recovery-codes", post(regenerate::<S, H>))
        .route("/{id}/mfa", delete(remove_theirs::<S, H>))
        .with_state(inner)
}

/// `POST /auth/{backend}/mfa`, JSON or form: `{"mfa_token", "code"}` or
/// `{"mfa_token", "recovery_code"}`, for the backend's normal login response.
pub(super) async fn complete<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = body_value(&parts, &body)?;
    let (token, code, recovery) = Fields::read(&value, |f| {
        (
            f.string("mfa_token"),
            f.optional_string("code", true),
            f.optional_string("recovery_code", true),
        )
    })?;
    let answer = match (code, recovery) {
        (Some(code), _) => SecondFactorAnswer::Code(code),
        (None, Some(recovery)) => SecondFactorAnswer::RecoveryCode(Secret::new(recovery)),
        (None, None) => {
            // One of the two is required: say so as a missing `code`.
            return Err(ApiError::validation(vec![ValidationIssue::body_field(
                "missing",
                "code",
                "Field required",
                value,
            )]));
        }
    };
    let inner = &state.inner;
    let backend = inner.backend(state.index);
    let outcome = inner
        .manager
        .login_with_second_factor(&token, answer, backend, Some(&parts))
        .await;
    super::login_answer(outcome, super::server_error)
}

/// A JSON body, or a form's fields as an object of strings.
fn body_value(parts: &Parts, body: &[u8]) -> Result<Value, ApiError> {
    let content_type = crate::body::content_type(&parts.headers).to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded")
        || content_type.starts_with("multipart/form-data")
    {
        let fields = parse_form(&parts.headers, body)?;
        let map: Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        return Ok(Value::Object(map));
    }
    parse_json(&parts.headers, body)
}

pub(super) async fn me<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
) -> Result<Authenticated<S::Id, S::Fields>, ApiError> {
    let requirements = Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser: false,
    };
    inner.extension().require(parts, requirements).await
}

/// The signed-in user and the optional `current_password` of a JSON body: the fresh proof
/// that adding a factor (a TOTP factor, a passkey) asks for.
pub(super) async fn me_and_current_password<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
    body: &Bytes,
) -> Result<(Authenticated<S::Id, S::Fields>, Option<Secret>), ApiError> {
    let me = me(inner, parts).await?;
    let value = json_or_empty(parts, body)?;
    let current = Fields::read(&value, |f| f.optional_string("current_password", true))?;
    Ok((me, current.map(Secret::new)))
}

pub(super) fn no_store_json(status: StatusCode, value: Value) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    crate::auth::no_store(&mut response);
    response
}

async fn status<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let status = inner
        .manager
        .mfa_status(&me.user)
        .await
        .map_err(super::server_error)?;
    Ok(no_store_json(
        StatusCode::OK,
        json!({
            "totp": status.totp,
            "recovery_codes_left": status.recovery_codes_left,
            "passkeys": status.passkeys,
        }),
    ))
}

async fn begin<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (me, current) = me_and_current_password(&inner, &parts, &body).await?;
    let enrolment = inner
        .manager
        .begin_totp(
            &me.user,
            current.as_ref(),
            me.session_id.as_deref(),
            Some(&parts),
        )
        .await
        .map_err(super::server_error)?;
    Ok(no_store_json(
        StatusCode::OK,
        json!({
            "secret": enrolment.secret.expose(),
            "otpauth_uri": enrolment.otpauth_uri.expose(),
            "qr_svg": enrolment.qr_svg,
        }),
    ))
}

/// The signed-in user and the `code` of a JSON body.
async fn me_and_code<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
    body: &Bytes,
) -> Result<(Authenticated<S::Id, S::Fields>, String), ApiError> {
    let me = me(inner, parts).await?;
    let value = parse_json(&parts.headers, body)?;
    let code = Fields::read(&value, |f| f.string("code"))?;
    Ok((me, code))
}

/// A JSON body, or `{}` for none (the proofs of these routes are optional members).
pub(super) fn json_or_empty(parts: &Parts, body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        Ok(json!({}))
    } else {
        parse_json(&parts.headers, body)
    }
}

fn codes_json(codes: &[Secret]) -> Value {
    json!({"recovery_codes": codes.iter().map(Secret::expose).collect::<Vec<_>>()})
}

async fn confirm<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (me, code) = me_and_code(&inner, &parts, &body).await?;
    let codes = inner
        .manager
        .confirm_totp(&me.user, &code, me.session_id.as_deref(), Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(no_store_json(StatusCode::OK, codes_json(&codes)))
}

async fn disable<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let value = json_or_empty(&parts, &body)?;
    let (code, current) = Fields::read(&value, |f| {
        (
            f.optional_string("code", true),
            f.optional_string("current_password", true),
        )
    })?;
    let proof = match (code, current) {
        (Some(code), _) => MfaProof::Code(code),
        (None, Some(password)) => MfaProof::CurrentPassword(Secret::new(password)),
        (None, None) => {
            return Err(super::server_error(
                crate::manager::ManagerError::CurrentPasswordRequired,
            ));
        }
    };
    inner
        .manager
        .disable_totp(&me.user, proof, Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn regenerate<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (me, code) = me_and_code(&inner, &parts, &body).await?;
    let codes = inner
        .manager
        .regenerate_recovery_codes(&me.user, &code, Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(no_store_json(StatusCode::OK, codes_json(&codes)))
}

async fn remove_theirs<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    super::admin::superuser(&inner, &mut parts).await?;
    let user = super::users::user_or_404(&inner, &id).await?;
    inner
        .manager
        .remove_second_factors(&user.id, Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
