//! JSON bodies: syntax, then field by field into FastAPI's 422 list.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::email::normalize_email;
use crate::error::{ApiError, ValidationIssue};

/// Parses a JSON body; an empty body is `missing`, bad syntax is `json_invalid`.
///
/// # Errors
/// 422 [`ApiError`].
pub(crate) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::validation(vec![ValidationIssue {
            kind: "missing",
            loc: vec![json!("body")],
            msg: "Field required".into(),
            input: Value::Null,
            ctx: None,
        }]));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::validation(vec![ValidationIssue {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(error_offset(body, &e))],
            msg: "JSON decode error".into(),
            input: json!({}),
            ctx: Some(json!({"error": e.to_string()})),
        }])
    })
}

/// Where the error is, as the offset Python's `json` reports (the end, for a truncated body).
fn error_offset(body: &[u8], e: &serde_json::Error) -> usize {
    if e.is_eof() {
        return body.len();
    }
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(e.line().saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + e.column().saturating_sub(1)).min(body.len())
}

/// Collects the issues of one body, field by field, so that all are reported at once.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    whole: &'a Value,
    issues: Vec<ValidationIssue>,
}

impl<'a> Fields<'a> {
    /// The body must be an object.
    pub(crate) fn of(value: &'a Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                whole: value,
                issues: Vec::new(),
            }),
            other => Err(ApiError::validation(vec![ValidationIssue {
                kind: "model_attributes_type",
                loc: vec![json!("body")],
                msg: "Input should be a valid dictionary or object to extract fields from".into(),
                input: other.clone(),
                ctx: None,
            }])),
        }
    }

    fn missing(&mut self, field: &str) {
        self.issues.push(ValidationIssue::body_field(
            "missing",
            field,
            "Field required",
            self.whole.clone(),
        ));
    }

    /// A required string.
    pub(crate) fn string(&mut self, field: &str) -> Option<String> {
        match self.map.get(field) {
            None => {
                self.missing(field);
                None
            }
            Some(v) => self.as_string(field, v),
        }
    }

    /// An optional string; `null` counts as absent when `null_ok`, else it is an error.
    pub(crate) fn optional_string(&mut self, field: &str, null_ok: bool) -> Option<String> {
        match self.map.get(field) {
            None => None,
            Some(Value::Null) if null_ok => None,
            Some(v) => self.as_string(field, v),
        }
    }

    fn as_string(&mut self, field: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            other => {
                self.issues.push(ValidationIssue::body_field(
                    "string_type",
                    field,
                    "Input should be a valid string",
                    other.clone(),
                ));
                None
            }
        }
    }

    /// A required e-mail address, normalised.
    pub(crate) fn email(&mut self, field: &str) -> Option<String> {
        let raw = self.string(field)?;
        self.check_email(field, raw)
    }

    /// An optional e-mail address; `null` is an error (the column is not nullable).
    pub(crate) fn optional_email(&mut self, field: &str) -> Option<String> {
        let raw = self.optional_string(field, false)?;
        self.check_email(field, raw)
    }

    fn check_email(&mut self, field: &str, raw: String) -> Option<String> {
        match normalize_email(&raw) {
            Ok(email) => Some(email),
            Err(reason) => {
                self.issues.push(
                    ValidationIssue::body_field(
                        "value_error",
                        field,
                        format!("value is not a valid email address: {}", reason.0),
                        Value::String(raw),
                    )
                    .with_ctx(json!({"reason": reason.0})),
                );
                None
            }
        }
    }

    /// An optional boolean, read leniently as pydantic does (`"yes"`, `1`, ...); `null` is an
    /// error when `null_ok` is false.
    pub(crate) fn optional_bool(&mut self, field: &str, null_ok: bool) -> Option<bool> {
        let value = self.map.get(field)?;
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::Null if null_ok => return None,
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
                "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
                _ => None,
            },
            _ => None,
        };
        if parsed.is_none() {
            let (kind, msg) = match value {
                Value::String(_) | Value::Number(_) => (
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                ),
                _ => ("bool_type", "Input should be a valid boolean"),
            };
            self.issues
                .push(ValidationIssue::body_field(kind, field, msg, value.clone()));
        }
        parsed
    }

    /// The application's own fields, read from the same object with serde.
    pub(crate) fn custom<T: DeserializeOwned + Default>(&mut self) -> T {
        match serde_json::from_value(self.whole.clone()) {
            Ok(v) => v,
            Err(e) => {
                self.issues.push(ValidationIssue {
                    kind: "value_error",
                    loc: vec![json!("body")],
                    msg: e.to_string(),
                    input: self.whole.clone(),
                    ctx: None,
                });
                T::default()
            }
        }
    }

    /// Ends validation: the issues found, as one 422.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.issues))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(e: ApiError) -> Value {
        assert_eq!(e.status, http::StatusCode::UNPROCESSABLE_ENTITY);
        e.detail
    }

    #[test]
    fn malformed_json_gives_json_invalid_with_position() {
        let d = detail(parse_json(br#"{"email":"#).unwrap_err());
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"], json!(["body", 9]));
    }

    #[test]
    fn empty_body_is_missing() {
        let d = detail(parse_json(b"").unwrap_err());
        assert_eq!(d[0]["type"], "missing");
        assert_eq!(d[0]["loc"], json!(["body"]));
    }

    #[test]
    fn non_objects_are_refused() {
        let v = json!([1]);
        let d = detail(Fields::of(&v).err().unwrap());
        assert_eq!(d[0]["type"], "model_attributes_type");
    }

    #[test]
    fn missing_and_invalid_fields_are_all_reported() {
        let v = json!({"email": "bob", "is_active": "maybe"});
        let mut f = Fields::of(&v).unwrap();
        assert_eq!(f.email("email"), None);
        assert_eq!(f.string("password"), None);
        assert_eq!(f.optional_bool("is_active", true), None);
        let d = detail(f.finish().unwrap_err());
        assert_eq!(
            d[0]["msg"],
            "value is not a valid email address: An email address must have an @-sign."
        );
        assert_eq!(
            d[0]["ctx"]["reason"],
            "An email address must have an @-sign."
        );
        assert_eq!(d[1]["type"], "missing");
        assert_eq!(d[1]["input"], v);
        assert_eq!(d[2]["type"], "bool_parsing");
    }

    #[test]
    fn nulls_are_errors_where_the_column_is_not_nullable() {
        let v = json!({"email": null, "is_active": null, "password": null});
        let mut f = Fields::of(&v).unwrap();
        assert_eq!(f.optional_email("email"), None);
        assert_eq!(f.optional_bool("is_active", false), None);
        assert_eq!(f.optional_string("password", true), None);
        let d = detail(f.finish().unwrap_err());
        assert_eq!(d.as_array().unwrap().len(), 2);
        assert_eq!(d[0]["type"], "string_type");
        assert_eq!(d[1]["type"], "bool_type");
    }

    #[test]
    fn lenient_booleans() {
        let v = json!({"a": "yes", "b": 0, "c": true});
        let mut f = Fields::of(&v).unwrap();
        assert_eq!(f.optional_bool("a", true), Some(true));
        assert_eq!(f.optional_bool("b", true), Some(false));
        assert_eq!(f.optional_bool("c", true), Some(true));
        assert!(f.finish().is_ok());
    }
}
