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
    // Every write of a cookie backend (login, second step, refresh, logout) sets or ends the
    // browser's session, so each one meets the Origin check: a login CSRF would sign the victim
    // into the attacker's account.
    let origins = inner
        .backend(index)
        .transport
        .is_cookie()
        .then(|| Arc::new(inner.auth.origins.clone()));
    let router = Router::new()
        .route(
            "/login",
            post(login::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .route(
            "/logout",
            post(logout::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .route(
            "/mfa",
            post(super::mfa::complete::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .route(
            "/refresh",
            post(super::refresh::refresh::<S, H>).layer(axum::extract::DefaultBodyLimit::max(
                crate::body::FORM_BODY_LIMIT,
            )),
        )
        .merge(super::passkeys::backend_routes())
        .with_state(BackendState { inner, index });
    match origins {
        Some(origins) => router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                let origins = origins.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    if let Err(refused) = origins.check(&parts) {
                        return axum::response::IntoResponse::into_response(refused);
                    }
                    next.run(axum::extract::Request::from_parts(parts, body))
                        .await
                }
            },
        )),
        None => router,
    }
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

/// Signs out with the access token; without a valid one (it expired), with the session's
/// refresh token (the refresh cookie, or `refresh_token` in the body), which ends the session.
async fn logout<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    #[allow(unused_mut)]
    let mut response = sign_out(&state, &parts, &body).await?;
    // A linking flow the user started ends with the sign-in it stood for.
    #[cfg(feature = "oauth")]
    super::oauth::clear_csrf_cookie(&state.inner.oauth, &mut response);
    Ok(response)
}

async fn sign_out<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    state: &BackendState<S, H>,
    parts: &Parts,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    let backend = inner.backend(state.index);
    let requirements = Requirements {
        active: true,
        verified: inner.requires_verification(),
        superuser: false,
    };
    let refused = match inner.extension().require(parts, requirements).await {
        Ok(authenticated) => {
            return inner
                .manager
                .logout(backend, &authenticated.token)
                .await
                .map_err(super::server_error);
        }
        Err(refused) => refused,
    };
    let Some(token) = super::refresh::presented_token(backend, parts, body)
        .ok()
        .flatten()
        .filter(|t| !t.is_empty())
    else {
        return Err(refused);
    };
    let ended = inner
        .manager
        .end_session_of_refresh(backend, &token)
        .await
        .map_err(super::server_error)?;
    if ended {
        Ok(crate::sessions::logout_response(backend))
    } else {
        Err(refused)
    }
}
