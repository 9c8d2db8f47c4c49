//! The HTTP routes, one file per router. Routes parse, call the manager, and map its errors to
//! FastAPI Users' codes; the rules live in the manager.

pub(crate) mod auth;
#[cfg(feature = "oauth")]
pub(crate) mod oauth;
pub(crate) mod register;
pub(crate) mod reset;
pub(crate) mod users;
pub(crate) mod verify;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

use crate::error::ApiError;
use crate::manager::ManagerError;
use crate::model::{User, UserFields, UserId};

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

/// Errors every route maps the same way: storage and internal failures.
pub(crate) fn server_error(e: ManagerError) -> ApiError {
    match e {
        ManagerError::Store(e) => e.into(),
        other => ApiError::internal(&other),
    }
}

/// Reads `{"email": ...}` and answers 202 at once, running `work` with the address after the
/// answer: neither the status nor the timing tells whether the address has an account.
pub(crate) fn accept_email<Fut>(
    what: &'static str,
    headers: &http::HeaderMap,
    body: &[u8],
    work: impl FnOnce(String) -> Fut,
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Result<(), ManagerError>> + Send + 'static,
{
    let value = crate::body::parse_json(headers, body)?;
    let email = crate::body::Fields::read(&value, |f| f.email("email"))?;
    in_background(what, work(email));
    Ok(null(StatusCode::ACCEPTED))
}

/// Runs work after the response, so that its duration (a lookup, a mail) reveals nothing.
pub(crate) fn in_background(
    what: &'static str,
    work: impl Future<Output = Result<(), ManagerError>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::error!(error = %e, "{what} failed");
        }
    });
}
