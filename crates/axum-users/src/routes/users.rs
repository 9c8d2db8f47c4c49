//! `GET|PATCH /me` and `GET|PATCH|DELETE /{id}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::StatusCode;
use http::request::Parts;
use serde_json::Value;

use crate::auth::Requirements;
use crate::body::{Fields, parse_json};
use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, Privilege, UserOf, UserUpdate};
use crate::model::UserId;
use crate::route_state::RouteState;
use crate::secret::Secret;
use crate::store::UserStore;

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        // `DELETE /me` falls through to `/{id}` with id "me", as in the reference: 404 for a superuser.
        .route(
            "/me",
            get(me::<S, H>)
                .patch(patch_me::<S, H>)
                .delete(delete_me::<S, H>),
        )
        .route(
            "/{id}",
            get(get_user::<S, H>)
                .patch(patch_user::<S, H>)
                .delete(delete_user::<S, H>),
        )
        .with_state(inner)
}

fn active<S: UserStore, H: UserHooks<S::Id, S::Fields>>(inner: &RouteState<S, H>) -> Requirements {
    Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser: false,
    }
}

async fn current<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    parts: &Parts,
    requirements: Requirements,
) -> Result<UserOf<S>, ApiError> {
    Ok(inner.extension().require(parts, requirements).await?.user)
}

pub(super) async fn user_or_404<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    id: &str,
) -> Result<UserOf<S>, ApiError> {
    let Some(id) = S::Id::parse(id) else {
        return Err(ApiError::not_found());
    };
    match inner.manager.get(&id).await {
        Ok(user) => Ok(user),
        Err(ManagerError::UserNotExists) => Err(ApiError::not_found()),
        Err(e) => Err(super::server_error(e)),
    }
}

/// Reads a PATCH body. `null` is refused (422) for non-nullable fields, where the reference
/// answered 500; `"password": null` stays a no-op.
fn parse_update<S: UserStore>(value: Value) -> Result<UserUpdate<S::Fields>, ApiError> {
    let update = Fields::read(&value, |f| UserUpdate {
        password: f.optional_string("password", true).map(Secret::new),
        current_password: f.optional_string("current_password", true).map(Secret::new),
        email: f.optional_email("email"),
        is_active: f.optional_bool("is_active", false),
        is_superuser: f.optional_bool("is_superuser", false),
        is_verified: f.optional_bool("is_verified", false),
        fields: f.custom(),
        raw: Value::Null,
    })?;
    Ok(UserUpdate {
        raw: value,
        ..update
    })
}

async fn apply_update<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    user: UserOf<S>,
    update: UserUpdate<S::Fields>,
    privilege: Privilege,
    parts: &Parts,
) -> Result<Response, ApiError> {
    match inner
        .manager
        .update_pending(user, update, privilege, Some(parts))
        .await
    {
        Ok((user, None)) => Ok(super::user_response(StatusCode::OK, &user)),
        Ok((user, Some(pending))) => {
            let mut body = serde_json::to_value(user.public()).unwrap_or_default();
            if let serde_json::Value::Object(map) = &mut body {
                map.insert("pending_email".into(), pending.into());
            }
            Ok(super::json(StatusCode::OK, body))
        }
        Err(ManagerError::UserAlreadyExists) => {
            Err(ApiError::code(ErrorCode::UpdateUserEmailAlreadyExists))
        }
        Err(ManagerError::InvalidPassword(p)) => Err(ApiError::invalid_password(
            ErrorCode::UpdateUserInvalidPassword,
            p.reason,
        )),
        Err(e) => Err(super::server_error(e)),
    }
}

async fn me<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // The request itself rather than `Parts`, which is extracted by cloning the headers and
    // the extensions: some 3,000 instructions of every `GET /users/me` (docs/benchmarks.md).
    let (parts, _) = request.into_parts();
    let user = current(&inner, &parts, active(&inner)).await?;
    Ok(super::user_response(StatusCode::OK, &user))
}

/// Order as in the reference: JSON syntax (422), then authentication (401), then fields (422).
async fn patch_me<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    mut parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let me = inner.extension().require(&parts, active(&inner)).await?;
    if let Some(sid) = me.session_id {
        // A new password ends the user's other sessions, not this one.
        parts
            .extensions
            .insert(crate::sessions::CurrentSession(sid));
    }
    let user = me.user;
    let update = parse_update::<S>(value)?;
    apply_update(&inner, user, update, Privilege::SelfService, &parts).await
}

async fn get_user<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    super::admin::superuser(&inner, &mut parts).await?;
    let user = user_or_404(&inner, &id).await?;
    // The superuser's view: the reference's members, then the times (additive).
    let times = inner
        .manager
        .user_times(&user.id)
        .await
        .map_err(super::server_error)?;
    Ok(super::json(
        StatusCode::OK,
        super::admin::admin_view(&user, times.as_ref()),
    ))
}

async fn patch_user<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    mut parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    super::admin::superuser(&inner, &mut parts).await?;
    let user = user_or_404(&inner, &id).await?;
    let update = parse_update::<S>(value)?;
    apply_update(&inner, user, update, Privilege::Superuser, &parts).await
}

async fn delete_user<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    Path(id): Path<String>,
    parts: Parts,
) -> Result<Response, ApiError> {
    delete(&inner, &id, parts).await
}

async fn delete_me<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    delete(&inner, "me", parts).await
}

async fn delete<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &RouteState<S, H>,
    id: &str,
    mut parts: Parts,
) -> Result<Response, ApiError> {
    // Names the superuser as the actor of what follows (audit records).
    super::admin::superuser(inner, &mut parts).await?;
    let user = user_or_404(inner, id).await?;
    match inner.manager.delete(&user, Some(&parts)).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(ManagerError::UserNotExists) => Err(ApiError::not_found()),
        Err(e) => Err(super::server_error(e)),
    }
}
