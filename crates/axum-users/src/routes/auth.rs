//! `POST /login`, `POST /logout` and `POST /refresh` of one backend.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use axum::routing::post;
use http::request::Parts;

use crate::auth::Requirements;
use crate::body::{LoginForm, parse_form};
use crate::error::ApiError;
use crate::hooks::UserHooks;
use crate::route_state::RouteState;
use crate::store::UserStore;

pub(super) struct BackendState<S: UserStore, H> {
    pub(super) inner: Arc<RouteState<S, H>>,
    pub(super) index: usize,
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
    inner: Arc<RouteState<S, H>>,
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
        .route(
            "/refresh",
            post(super::refresh::refresh::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .with_state(BackendState { inner, index })
}

async fn login<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let form = LoginForm::parse(&parse_form(&parts.headers, &body)?)?;
    let inner = &state.inner;
    let backend = inner.backend(state.index);
    let outcome = inner
        .manager
        .login_with_password(&form.username, &form.password, backend, Some(&parts))
        .await;
    super::login_answer(outcome, super::server_error)
}

async fn logout<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    let requirements = Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser: false,
    };
    let authenticated = inner.extension().require(&parts, requirements).await?;
    #[allow(unused_mut)]
    let mut response = inner
        .manager
        .logout(inner.backend(state.index), &authenticated.token)
        .await
        .map_err(super::server_error)?;
    // A linking flow the user started ends with the sign-in it stood for.
    #[cfg(feature = "oauth")]
    super::oauth::clear_csrf_cookie(&inner.oauth, &mut response);
    Ok(response)
}
