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
                send_verification(&inner, &user, &parts).await;
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

/// The verification mail of a new user, written before the 201 (as the reference awaits its
/// `on_after_register`), so that a crash after the answer cannot lose it: with the server's
/// outbox the hook only commits a row. A failure is logged, not answered: the account exists,
/// and request-verify-token sends the mail again.
async fn send_verification<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: &Arc<RouteState<S, H>>,
    user: &crate::store::UserOf<S>,
    parts: &Parts,
) {
    if let Err(e) = inner.manager.request_verify(user, Some(parts)).await {
        tracing::warn!(error = %e, "verification on register: the mail was not queued");
    }
}
