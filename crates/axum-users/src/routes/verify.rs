//! `POST /request-verify-token` and `POST /verify`.

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
        .route("/request-verify-token", post(request_verify_token::<S, H>))
        .route("/verify", post(verify::<S, H>))
        .with_state(inner)
}

/// Always 202, once the mail is written, at the same time for every address (see
/// forgot-password).
async fn request_verify_token<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    inner
        .limit(LimitedRoute::RequestVerify, &parts, None)
        .await?;
    let email = super::email_of(&parts.headers, &body)?;
    inner
        .manager
        .request_verify_at_floor(&email, Some(&parts))
        .await;
    Ok(super::null(StatusCode::ACCEPTED))
}

async fn verify<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    inner.limit(LimitedRoute::Verify, &parts, None).await?;
    let value = parse_json(&parts.headers, &body)?;
    let token = Fields::read(&value, |f| f.string("token"))?;
    match inner.manager.verify(&token, Some(&parts)).await {
        Ok(user) => Ok(super::user_response(StatusCode::OK, &user)),
        Err(ManagerError::InvalidVerifyToken | ManagerError::UserNotExists) => {
            Err(ApiError::code(ErrorCode::VerifyUserBadToken))
        }
        Err(ManagerError::UserAlreadyVerified) => {
            Err(ApiError::code(ErrorCode::VerifyUserAlreadyVerified))
        }
        Err(e) => Err(super::server_error(e)),
    }
}
