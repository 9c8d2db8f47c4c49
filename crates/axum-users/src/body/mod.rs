//! Request bodies, validated into FastAPI's 422 shape. Bodies are parsed by hand so that every
//! malformed input gets a precise 4xx and never reaches the store. JSON bodies (every route but
//! login) are read in [`json`], the login form in [`form`].

mod form;
mod json;

use http::HeaderMap;
use serde_json::{Value, json};

use crate::error::{ApiError, ValidationIssue};

pub(crate) use form::{FORM_BODY_LIMIT, LoginForm, parse_form};
pub(crate) use json::{Fields, parse_json};

/// The raw `Content-Type` of a request; empty when absent or not text.
pub(crate) fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The media type of a `Content-Type` value: `type/subtype`, lower-cased, without parameters.
fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or_default();
    essence.trim().to_ascii_lowercase()
}

/// The fields whose values no answer shows.
const PASSWORD_FIELDS: [&str; 3] = ["password", "current_password", "new_password"];

/// What a 422 shows instead of a password.
const REDACTED: &str = "[redacted]";

/// A 422 of these issues, with every password replaced by `[redacted]`: the input of an issue
/// about a password's value, password fields in a body object shown as input (a `missing` field,
/// the application's own fields), and a raw body text (not JSON) that names one.
fn validation_error(issues: Vec<ValidationIssue>) -> ApiError {
    ApiError::validation(issues.into_iter().map(redact).collect())
}

fn redact(mut issue: ValidationIssue) -> ValidationIssue {
    // A `missing` issue shows the whole body, not the field's value.
    let shows_a_password = issue.kind != "missing"
        && issue
            .loc
            .get(1)
            .and_then(Value::as_str)
            .is_some_and(is_password_field);
    let raw_text_with_password = issue.loc.len() == 1
        && issue
            .input
            .as_str()
            .is_some_and(|text| text.to_ascii_lowercase().contains("password"));
    if shows_a_password || raw_text_with_password {
        issue.input = json!(REDACTED);
    } else {
        redact_passwords(&mut issue.input);
    }
    issue
}

/// Replaces the value of every password field, at any depth.
fn redact_passwords(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if is_password_field(key) {
                    *value = json!(REDACTED);
                } else {
                    redact_passwords(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_passwords),
        _ => {}
    }
}

fn is_password_field(name: &str) -> bool {
    PASSWORD_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(name))
}

#[cfg(test)]
pub(crate) mod test_support {
    use http::HeaderMap;
    use serde_json::Value;

    use crate::error::ApiError;

    /// The issues of a 422.
    pub(crate) fn detail(e: ApiError) -> Value {
        assert_eq!(e.status, http::StatusCode::UNPROCESSABLE_ENTITY);
        e.detail
    }

    /// Headers with one `Content-Type`.
    pub(crate) fn with_content_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = http::HeaderValue::from_str(value).expect("a valid header value in a test");
        headers.insert(http::header::CONTENT_TYPE, value);
        headers
    }
}
