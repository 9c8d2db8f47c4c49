//! `POST /refresh` of one backend: a refresh token (the refresh cookie for a cookie backend, else
//! `refresh_token` in a form or JSON body) for a new access token and a new refresh token.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::request::Parts;

use crate::auth::Transport;
use crate::body::parse_form;
use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::hooks::UserHooks;
use crate::store::UserStore;

/// The refresh token of a request: the cookie backend's refresh cookie, or the body's
/// `refresh_token` (form or JSON).
pub(super) fn presented_token<Id>(
    backend: &crate::auth::AuthBackend<Id>,
    parts: &Parts,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    if let Transport::Cookie(cookie) = &backend.transport {
        let settings = crate::sessions::refresh_cookie(cookie, &backend.name);
        if let Some(token) = settings.read(&parts.headers) {
            return Ok(Some(token));
        }
    }
    let json = crate::body::content_type(&parts.headers).contains("json");
    if json {
        let value = crate::body::parse_json(&parts.headers, body)?;
        return Ok(value
            .get("refresh_token")
            .and_then(|v| v.as_str())
            .map(str::to_owned));
    }
    Ok(parse_form(&parts.headers, body)?
        .into_iter()
        .find(|(k, _)| k == "refresh_token")
        .map(|(_, v)| v))
}

pub(super) async fn refresh<S: UserStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<super::auth::BackendState<S, H>>,
    parts: Parts,
    body: Bytes,
) -> Result<Response, ApiError> {
    let inner = &state.inner;
    inner
        .limit(crate::limits::LimitedRoute::Refresh, &parts, None)
        .await?;
    let backend = inner.backend(state.index);
    let Some(token) = presented_token(backend, &parts, &body)?.filter(|t| !t.is_empty()) else {
        return Err(ApiError::code(ErrorCode::RefreshTokenInvalid));
    };
    let outcome = inner.manager.refresh(backend, &token).await;
    super::login_answer(outcome, super::server_error)
}
