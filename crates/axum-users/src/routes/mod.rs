//! The HTTP routes, one file per router. Routes parse, call the manager, and map its errors to
//! FastAPI Users' codes; the rules live in the manager.

pub(crate) mod admin;
pub(crate) mod auth;
pub(crate) mod email_change;
pub(crate) mod mfa;
#[cfg(feature = "oauth")]
pub(crate) mod oauth;
pub(crate) mod passkeys;
pub(crate) mod refresh;
pub(crate) mod register;
pub(crate) mod reset;
pub(crate) mod sessions;
pub(crate) mod users;
pub(crate) mod verify;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::Value;

use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::login::LoginOutcome;
use crate::manager::ManagerError;
use crate::model::{User, UserFields, UserId};
use crate::password::PasswordError;

/// A JSON response with a status.
pub(crate) fn json(status: StatusCode, value: impl serde::Serialize) -> Response {
    (status, axum::Json(value)).into_response()
}

/// `200` (or another status) with the public view of a user.
pub(crate) fn user_response<Id: UserId, F: UserFields>(
    status: StatusCode,
    user: &User<Id, F>,
) -> Response {
    json(status, user.public())
}

/// The JSON literal `null`, as FastAPI answers routes that return nothing.
pub(crate) fn null(status: StatusCode) -> Response {
    json(status, Value::Null)
}

/// The answer to every manager error whose code does not depend on the route; routes map
/// the few that do (an existing e-mail, a refused password) before calling this.
pub(crate) fn server_error(e: ManagerError) -> ApiError {
    let code = match e {
        ManagerError::Store(e) => return e.into(),
        ManagerError::Strategy(e) => return e.into(),
        ManagerError::Password(PasswordError::Busy) => {
            tracing::warn!("the password hasher is saturated; answering 503");
            return ApiError::unavailable();
        }
        ManagerError::LoginRefused(wait) => {
            return ApiError::code(ErrorCode::TooManyRequests)
                .with_retry_after(crate::limits::retry_after_seconds(wait));
        }
        ManagerError::BadCredentials => ErrorCode::LoginBadCredentials,
        ManagerError::UserNotVerified => ErrorCode::LoginUserNotVerified,
        ManagerError::CurrentPasswordRequired => ErrorCode::UpdateUserCurrentPasswordRequired,
        ManagerError::BadCurrentPassword => ErrorCode::UpdateUserBadCurrentPassword,
        ManagerError::OAuthEmailNotVerified => ErrorCode::OAuthEmailNotVerified,
        ManagerError::OAuthInvalidEmail => ErrorCode::OAuthInvalidEmail,
        ManagerError::OAuthAccountAlreadyLinked => ErrorCode::OAuthAccountAlreadyLinked,
        ManagerError::LastSignInMethod => ErrorCode::OAuthLastSignInMethod,
        ManagerError::InvalidLoginCode => ErrorCode::OAuthInvalidLoginCode,
        ManagerError::RefreshTokenInvalid => ErrorCode::RefreshTokenInvalid,
        ManagerError::RefreshTokenReused => ErrorCode::RefreshTokenReused,
        ManagerError::SessionNotFound => ErrorCode::SessionNotFound,
        ManagerError::InvalidEmailChangeToken => ErrorCode::EmailChangeBadToken,
        ManagerError::DirectoryUnavailable => ErrorCode::UsersListingUnavailable,
        ManagerError::MfaInvalidCode => ErrorCode::MfaInvalidCode,
        ManagerError::MfaTokenInvalid => ErrorCode::MfaTokenInvalid,
        ManagerError::MfaAlreadyEnabled => ErrorCode::MfaAlreadyEnabled,
        ManagerError::MfaNotEnabled => ErrorCode::MfaNotEnabled,
        ManagerError::MfaRecentSignInRequired => ErrorCode::MfaRecentSignInRequired,
        ManagerError::MfaUnavailable => ErrorCode::MfaUnavailable,
        ManagerError::PasskeyUnavailable => ErrorCode::PasskeyUnavailable,
        ManagerError::PasskeyChallengeInvalid => ErrorCode::PasskeyChallengeInvalid,
        ManagerError::PasskeyInvalid => ErrorCode::PasskeyInvalid,
        ManagerError::PasskeyNotFound => ErrorCode::PasskeyNotFound,
        ManagerError::PasskeyLimitReached => ErrorCode::PasskeyLimitReached,
        ManagerError::PasskeyNameInvalid => ErrorCode::PasskeyNameInvalid,
        ManagerError::OAuthAccountNotFound | ManagerError::UserNotExists => ErrorCode::NotFound,
        other => return ApiError::internal(&other),
    };
    ApiError::code(code)
}

/// The answer to a sign-in: the response that carries the token, or the code that asks for
/// a second factor.
pub(crate) fn login_answer<U>(
    outcome: Result<LoginOutcome<U>, ManagerError>,
    refused: fn(ManagerError) -> ApiError,
) -> Result<Response, ApiError> {
    match outcome.map_err(refused)? {
        LoginOutcome::SignedIn { response, .. } => Ok(*response),
        LoginOutcome::SecondFactorRequired { mfa: Some(mfa), .. } => Err(mfa_required(&mfa)),
        LoginOutcome::SecondFactorRequired { mfa: None, .. } => {
            Err(ApiError::code(ErrorCode::LoginSecondFactorRequired))
        }
    }
}

/// 401 with `detail` = `{"code": ErrorCode::LoginMfaRequired, "mfa_token", "methods"}`.
pub(crate) fn mfa_required(mfa: &crate::mfa::MfaRequired) -> ApiError {
    let code = ErrorCode::LoginMfaRequired;
    ApiError::new(
        code.status(),
        serde_json::json!({
            "code": code.as_str(),
            "mfa_token": mfa.mfa_token.expose(),
            "methods": mfa.methods,
        }),
    )
}

/// Turns a response into a 303 to `url`, keeping its headers (a cookie rides along).
pub(crate) fn redirect(response: &mut Response, url: &str) {
    *response.status_mut() = StatusCode::SEE_OTHER;
    *response.body_mut() = axum::body::Body::empty();
    response.headers_mut().remove(http::header::CONTENT_TYPE);
    match HeaderValue::from_str(url) {
        Ok(location) => {
            response
                .headers_mut()
                .insert(http::header::LOCATION, location);
        }
        Err(_) => tracing::error!("the redirect URL is not a valid header value"),
    }
}

/// The `{"email": ...}` of forgot-password and request-verify-token; the manager's
/// `*_at_floor` call then answers alike for every address (`mail_answer.rs`).
pub(crate) fn email_of(headers: &http::HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let value = crate::body::parse_json(headers, body)?;
    crate::body::Fields::read(&value, |f| f.email("email"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overloaded_hasher_and_a_throttle_answer_with_retry_after() {
        let busy = server_error(ManagerError::Password(PasswordError::Busy));
        assert_eq!(busy.error_code(), Some(ErrorCode::ServiceUnavailable));
        assert_eq!(
            (busy.status, busy.retry_after),
            (StatusCode::SERVICE_UNAVAILABLE, Some(1))
        );
        let throttled = server_error(ManagerError::LoginRefused(std::time::Duration::from_secs(
            30,
        )));
        assert_eq!(throttled.error_code(), Some(ErrorCode::TooManyRequests));
        assert_eq!(throttled.retry_after, Some(30));
        let rounded = server_error(ManagerError::LoginRefused(
            std::time::Duration::from_millis(29_001),
        ));
        assert_eq!(
            rounded.retry_after,
            Some(30),
            "rounded up: no retry too early"
        );
        let response = busy.into_response();
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
    }
}
