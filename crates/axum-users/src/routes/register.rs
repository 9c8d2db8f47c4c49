//! `POST /register`.

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
use crate::manager::{ManagerError, Privilege, UserCreate};
use crate::route_state::RouteState;
use crate::secret::Secret;
use crate::store::UserStore;

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<RouteState<S, H>>,
) -> Router {
    Router::new()
        .route("/register", post(register::<S, H>))
        .with_state(inner)
}

async fn register<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(inner): State<Arc<RouteState<S, H>>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = parse_json(&parts.headers, &body)?;
    let create = Fields::read(&value, |f| {
        let mut create = UserCreate::new(f.email("email"), Secret::new(f.string("password")));
        create.is_active = f.optional_bool("is_active", true);
        create.is_superuser = f.optional_bool("is_superuser", true);
        create.is_verified = f.optional_bool("is_verified", true);
        create.fields = f.custom();
        create
    })?;
    inner
        .limit(LimitedRoute::Register, &parts, Some(&create.email))
        .await?;
    match inner
        .manager
        .create(create, Privilege::SelfService, Some(&parts))
        .await
    {
        Ok(user) => {
            if inner.send_verification_on_register && user.is_active && !user.is_verified {
                send_verification(&inner, user.clone(), parts);
            }
            Ok(super::user_response(StatusCode::CREATED, &user))
        }
        Err(ManagerError::UserAlreadyExists) => {
            Err(ApiError::code(ErrorCode::RegisterUserAlreadyExists))
        }
        Err(ManagerError::InvalidPassword(p)) => Err(ApiError::invalid_password(
            ErrorCode::RegisterInvalidPassword,
            p.reason,
        )),
        Err(e) => Err(super::server_error(e)),
    }
}

/// The verification mail of a new user, after the answer (its hook may talk to a mail server).
fn send_verification<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &Arc<RouteState<S, H>>,
    user: crate::store::UserOf<S>,
    parts: Parts,
) {
    let owner = inner.clone();
    super::in_background("verification on register", &inner.background, async move {
        owner.manager.request_verify(&user, Some(&parts)).await
    });
}
