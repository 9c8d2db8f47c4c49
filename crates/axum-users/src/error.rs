//! HTTP errors in FastAPI's shape: `{"detail": "CODE"}`, `{"detail": {"code", "reason"}}`, or
//! the 422 list `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use crate::error_code::ErrorCode;
use crate::store::StoreError;

/// One entry of a 422 body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationIssue {
    /// Machine-readable kind: `missing`, `value_error`, `string_type`, `bool_parsing`, ...
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where: `["body", "email"]`.
    pub loc: Vec<Value>,
    /// Human-readable message.
    pub msg: String,
    /// The offending input.
    pub input: Value,
    /// Extra context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl ValidationIssue {
    /// An issue at `["body", field]`.
    pub fn body_field(
        kind: &'static str,
        field: &str,
        msg: impl Into<String>,
        input: Value,
    ) -> Self {
        Self {
            kind,
            loc: vec![json!("body"), json!(field)],
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    /// Adds context.
    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `detail` value.
    pub detail: Value,
    /// Seconds for a `Retry-After` header (overload, throttling).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// `{"detail": detail}` with a status, for details that are not one of our codes (a
    /// provider's own error).
    pub fn new(status: StatusCode, detail: impl Into<Value>) -> Self {
        Self {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// `{"detail": "CODE"}` with the code's status.
    pub fn code(code: ErrorCode) -> Self {
        Self::new(code.status(), code.as_str())
    }

    /// `{"detail": {"code": code, "reason": reason}}` for refused passwords.
    pub fn invalid_password(code: ErrorCode, reason: Value) -> Self {
        Self::new(
            code.status(),
            json!({"code": code.as_str(), "reason": reason}),
        )
    }

    /// 401 `Unauthorized` (no `WWW-Authenticate`, as the reference).
    pub fn unauthorized() -> Self {
        Self::code(ErrorCode::Unauthorized)
    }

    /// 403 `Forbidden`.
    pub fn forbidden() -> Self {
        Self::code(ErrorCode::Forbidden)
    }

    /// 404 `Not Found`.
    pub fn not_found() -> Self {
        Self::code(ErrorCode::NotFound)
    }

    /// 422 with a list of issues.
    pub fn validation(issues: Vec<ValidationIssue>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, json!(issues))
    }

    /// 503: a backing service is down or the server is overloaded; the client may retry.
    pub fn unavailable() -> Self {
        Self::code(ErrorCode::ServiceUnavailable).with_retry_after(1)
    }

    /// Adds a `Retry-After` of `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 500 for failures that are the server's, never the client's; the cause is logged.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::code(ErrorCode::InternalServerError)
    }

    /// The code of this answer, when its detail is one of ours.
    pub fn error_code(&self) -> Option<ErrorCode> {
        let detail = match &self.detail {
            Value::String(s) => s.as_str(),
            Value::Object(map) => map.get("code").and_then(Value::as_str)?,
            _ => return None,
        };
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == detail)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(%cause, "storage unavailable");
                Self::unavailable()
            }
            other => Self::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({"detail": self.detail}))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}
