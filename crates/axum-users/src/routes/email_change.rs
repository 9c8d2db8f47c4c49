//! `POST /confirm-email-change`: applies a pending change of address (see `email_change.rs`).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::StatusCode;
use http::request::Parts;

use crate::auth::Requirements;
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
        .route("/confirm-email-change", post(confirm::<S, H>))
        .with_state(inner)
}

/// Rate-limited with the verify rule: both trade a mailed token for a change of the account.
/// The route is public (the link may be opened anywhere); a request that also carries a valid
/// session keeps that one, every other session of the user ends.
async fn confirm<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    mut parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    inner.limit(LimitedRoute::Verify, &parts, None).await?;
    let value = parse_json(&parts.headers, &body)?;
    let token = Fields::read(&value, |f| f.string("token"))?;
    let signed_in = Requirements {
        active: true,
        verified: false,
        superuser: false,
    };
    if let Ok(Some(sid)) = inner
        .extension()
        .require(&parts, signed_in)
        .await
        .map(|me| me.session_id)
    {
        parts
            .extensions
            .insert(crate::sessions::CurrentSession(sid));
    }
    match inner
        .manager
        .confirm_email_change(&token, Some(&parts))
        .await
    {
        Ok(user) => Ok(super::user_response(StatusCode::OK, &user)),
        Err(ManagerError::UserAlreadyExists) => {
            Err(ApiError::code(ErrorCode::UpdateUserEmailAlreadyExists))
        }
        Err(e) => Err(super::server_error(e)),
    }
}
