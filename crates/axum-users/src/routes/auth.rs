//! `POST /login` and `POST /logout` of one backend.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::request::Parts;

use crate::app::Inner;
use crate::auth::Requirements;
use crate::body::{LoginForm, parse_form};
use crate::error::ApiError;
use crate::hooks::UserHooks;
use crate::store::UserStore;

struct BackendState<S: UserStore, H> {
    inner: Arc<Inner<S, H>>,
    index: usize,
}

impl<S: UserStore, H> Clone for BackendState<S, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            index: self.index,
        }
    }
}

pub(crate) fn router<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    inner: Arc<Inner<S, H>>,
    index: usize,
) -> Router {
    Router::new()
        .route(
            "/login",
            post(login::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .route("/logout", post(logout::<S, H>))
        .with_state(BackendState { inner, index })
}

async fn login<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = LoginForm::parse(&parse_form(&parts.headers, &body)?)?;
    let inner = &state.inner;
    let user = inner
        .manager
        .authenticate(&form.username, &form.password)
        .await
        .map_err(super::server_error)?
        .filter(|u| u.is_active)
        .ok_or_else(|| ApiError::bad_request("LOGIN_BAD_CREDENTIALS"))?;
    if inner.requires_verification && !user.is_verified {
        return Err(ApiError::bad_request("LOGIN_USER_NOT_VERIFIED"));
    }
    let backend = inner.backend(state.index);
    let token = backend.strategy.write_token(&user.id).await?;
    let mut response = backend.transport.login_response(&token);
    inner
        .manager
        .hooks()
        .on_after_login(&user, Some(&parts), &mut response)
        .await;
    Ok(response)
}

async fn logout<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    let requirements = Requirements {
        active: true,
        verified: inner.requires_verification,
        superuser: false,
    };
    let authenticated = inner
        .extension()
        .require(&parts.headers, requirements)
        .await?;
    let backend = inner.backend(state.index);
    backend.strategy.destroy_token(&authenticated.token).await?;
    Ok(backend.transport.logout_response())
}
