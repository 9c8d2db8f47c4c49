//! `POST /register`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::StatusCode;
use http::request::Parts;

use crate::app::Inner;
use crate::body::{Fields, parse_json};
use crate::error::ApiError;
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserCreate};
use crate::secret::Secret;
use crate::store::UserStore;

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<Inner<S, H>>,
) -> Router {
    Router::new()
        .route("/register", post(register::<S, H>))
        .with_state(inner)
}

async fn register<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<Inner<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let create = Fields::read(&value, |f| UserCreate {
        email: f.email("email"),
        password: Secret::new(f.string("password")),
        is_active: f.optional_bool("is_active", true),
        is_superuser: f.optional_bool("is_superuser", true),
        is_verified: f.optional_bool("is_verified", true),
        fields: f.custom(),
    })?;
    match inner.manager.create(create, true, Some(&parts)).await {
        Ok(user) => Ok(super::user_response(StatusCode::CREATED, &user)),
        Err(ManagerError::UserAlreadyExists) => {
            Err(ApiError::bad_request("REGISTER_USER_ALREADY_EXISTS"))
        }
        Err(ManagerError::InvalidPassword(p)) => Err(ApiError::invalid_password(
            "REGISTER_INVALID_PASSWORD",
            p.reason,
        )),
        Err(e) => Err(super::server_error(e)),
    }
}
