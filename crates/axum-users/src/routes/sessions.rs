//! `GET|DELETE /me/sessions`, `DELETE /me/sessions/{id}`, and for superusers
//! `GET|DELETE /{id}/sessions`: the signed-in devices, and signing out elsewhere.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};

use crate::auth::{Authenticated, Requirements};
use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::route_state::RouteState;
use crate::sessions::RevokeReason;
use crate::store::UserStore;

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route(
            "/me/sessions",
            get(list_mine::<S, H>).delete(revoke_others::<S, H>),
        )
        .route("/me/sessions/{id}", delete(revoke_mine::<S, H>))
        .route(
            "/{id}/sessions",
            get(list_theirs::<S, H>).delete(revoke_theirs::<S, H>),
        )
        .with_state(inner)
}

fn requirements<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    superuser: bool,
) -> Requirements {
    Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser,
    }
}

/// A session as clients see it: no token material.
fn session_json<Id>(session: &crate::Session<Id>, current: Option<&str>) -> Value {
    json!({
        "id": session.id,
        "created_at": iso8601(session.created_at),
        "last_seen_at": iso8601(session.last_seen_at),
        "expires_at": iso8601(session.expires_at),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "method": session.method,
        "current": current == Some(session.id.as_str()),
    })
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn iso8601(unix: i64) -> String {
    crate::directory::format_time(unix)
}

async fn list<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    user_id: &S::Id,
    current: Option<&str>,
) -> Result<Response, ApiError> {
    let sessions = inner
        .manager
        .list_sessions(user_id)
        .await
        .map_err(super::server_error)?;
    let body: Vec<Value> = sessions.iter().map(|s| session_json(s, current)).collect();
    let mut response = axum::Json(body).into_response();
    crate::auth::no_store(&mut response);
    Ok(response)
}

async fn me<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
) -> Result<Authenticated<S::Id, S::Fields>, ApiError> {
    inner
        .extension()
        .require(parts, requirements(inner, false))
        .await
}

async fn list_mine<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    list(&inner, &me.user.id, me.session_id.as_deref()).await
}

async fn revoke_others<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    inner
        .manager
        .revoke_sessions_for(
            &me.user.id,
            me.session_id.as_deref(),
            RevokeReason::User,
            Some(&parts),
        )
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn revoke_mine<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let me = me(&inner, &parts).await?;
    let found = inner
        .manager
        .revoke_session(&me.user.id, &id, RevokeReason::User)
        .await
        .map_err(super::server_error)?;
    if !found {
        return Err(ApiError::code(ErrorCode::SessionNotFound));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The user a superuser names, or 404.
async fn named_user<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &mut Parts,
    id: &str,
) -> Result<S::Id, ApiError> {
    super::admin::superuser(inner, parts).await?;
    Ok(super::users::user_or_404(inner, id).await?.id)
}

async fn list_theirs<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let user_id = named_user(&inner, &mut parts, &id).await?;
    list(&inner, &user_id, None).await
}

async fn revoke_theirs<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    let user_id = named_user(&inner, &mut parts, &id).await?;
    inner
        .manager
        .revoke_sessions_for(&user_id, None, RevokeReason::Admin, Some(&parts))
        .await
        .map_err(super::server_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso_8601() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(iso8601(951_825_599), "2000-02-29T11:59:59Z");
        assert_eq!(iso8601(-1), "1969-12-31T23:59:59Z");
    }
}
