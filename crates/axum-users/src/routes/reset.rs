//! `POST /forgot-password` and `POST /reset-password`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::StatusCode;
use http::request::Parts;

use crate::body::{Fields, parse_json};
use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::limits::LimitedRoute;
use crate::manager::ManagerError;
use crate::route_state::RouteState;
use crate::store::UserStore;

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/forgot-password", post(forgot_password::<S, H>))
        .route("/reset-password", post(reset_password::<S, H>))
        .with_state(inner)
}

/// Always 202, once the mail is written, at the same time for every address
/// ([`crate::UserManager::forgot_password_at_floor`]).
async fn forgot_password<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    inner
        .limit(LimitedRoute::ForgotPassword, &parts, None)
        .await?;
    let email = super::email_of(&parts.headers, &body)?;
    inner
        .manager
        .forgot_password_at_floor(&email, Some(&parts))
        .await;
    Ok(super::null(StatusCode::ACCEPTED))
}

async fn reset_password<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    inner
        .limit(LimitedRoute::ResetPassword, &parts, None)
        .await?;
    let value = parse_json(&parts.headers, &body)?;
    let (token, password) = Fields::read(&value, |f| (f.string("token"), f.string("password")))?;
    match inner
        .manager
        .reset_password(&token, &password, Some(&parts))
        .await
    {
        Ok(_) => Ok(super::null(StatusCode::OK)),
        Err(
            ManagerError::InvalidResetPasswordToken
            | ManagerError::UserNotExists
            | ManagerError::UserInactive,
        ) => Err(ApiError::code(ErrorCode::ResetPasswordBadToken)),
        Err(ManagerError::InvalidPassword(p)) => Err(ApiError::invalid_password(
            ErrorCode::ResetPasswordInvalidPassword,
            p.reason,
        )),
        Err(e) => Err(super::server_error(e)),
    }
}
