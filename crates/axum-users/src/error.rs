//! HTTP errors in FastAPI's shape: `{"detail": "CODE"}`, `{"detail": {"code", "reason"}}`, or
//! the 422 list `{"detail": [{"type", "loc", "msg", "input", "ctx"?}]}`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

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
}

impl ApiError {
    /// `{"detail": detail}` with a status.
    pub fn new(status: StatusCode, detail: impl Into<Value>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }

    /// 400 with one of FastAPI Users' error codes.
    pub fn bad_request(code: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code)
    }

    /// 400 `{"detail": {"code": code, "reason": reason}}` for refused passwords.
    pub fn invalid_password(code: &str, reason: Value) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            json!({"code": code, "reason": reason}),
        )
    }

    /// 401 `Unauthorized` (no `WWW-Authenticate`, as the reference).
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized")
    }

    /// 403 `Forbidden`.
    pub fn forbidden() -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden")
    }

    /// 404 `Not Found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }

    /// 422 with a list of issues.
    pub fn validation(issues: Vec<ValidationIssue>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, json!(issues))
    }

    /// 503: a backing service is down; the client may retry.
    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE")
    }

    /// 500 for failures that are the server's, never the client's; the cause is logged.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR")
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
        (self.status, axum::Json(json!({"detail": self.detail}))).into_response()
    }
}
