//! JSON bodies: syntax, then field by field into FastAPI's 422 list.

use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::validation_error;
use crate::email::normalize_email;
use crate::error::{ApiError, ValidationIssue};

/// Reads a JSON body as FastAPI does. An empty body is `missing`. A body declared
/// `application/json` or `application/*+json` (parameters such as `charset` allowed) is parsed;
/// bad syntax is `json_invalid`. Any other body, or one without a content type, is not parsed: it
/// is returned as its text, which [`Fields`] then refuses as FastAPI does
/// (`model_attributes_type` at `["body"]`, the text as input), so that a route checking
/// authentication first still answers 401 first, as the reference.
///
/// # Errors
/// 422 [`ApiError`].
pub(crate) fn parse_json(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(validation_error(vec![ValidationIssue {
            kind: "missing",
            loc: vec![json!("body")],
            msg: "Field required".into(),
            input: Value::Null,
            ctx: None,
        }]));
    }
    if !is_json(super::content_type(headers)) {
        return Ok(Value::String(String::from_utf8_lossy(body).into_owned()));
    }
    serde_json::from_slice(body).map_err(|e| {
        validation_error(vec![ValidationIssue {
            kind: "json_invalid",
            loc: vec![json!("body"), json!(error_offset(body, &e))],
            msg: "JSON decode error".into(),
            input: json!({}),
            ctx: Some(json!({"error": e.to_string()})),
        }])
    })
}

/// `application/json` or `application/*+json`, whatever the parameters.
fn is_json(content_type: &str) -> bool {
    let media_type = super::media_type(content_type);
    media_type.split_once('/').is_some_and(|(kind, subtype)| {
        kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
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
///
/// A route reads its body with [`Fields::read`]: required getters return a placeholder for a
/// missing or invalid field, and `read` returns what the route built only when no field had an
/// issue, so a placeholder never reaches the route and the route needs no "cannot happen" branch.
pub(crate) struct Fields<'a> {
    map: &'a Map<String, Value>,
    whole: &'a Value,
    issues: Vec<ValidationIssue>,
}

impl<'a> Fields<'a> {
    /// Validates a body: `build` reads the fields it needs; its result is returned only if the
    /// body is an object and every field read is valid, else one 422 lists all the issues.
    ///
    /// # Errors
    /// 422 [`ApiError`].
    pub(crate) fn read<T>(
        value: &'a Value,
        build: impl FnOnce(&mut Self) -> T,
    ) -> Result<T, ApiError> {
        let mut fields = Self::of(value)?;
        let built = build(&mut fields);
        fields.finish().map(|()| built)
    }

    /// The body must be an object.
    fn of(value: &'a Value) -> Result<Self, ApiError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                whole: value,
                issues: Vec::new(),
            }),
            other => Err(validation_error(vec![ValidationIssue {
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

    /// A required string (a placeholder if missing or invalid: see [`Fields::read`]).
    pub(crate) fn string(&mut self, field: &str) -> String {
        self.required_string(field).unwrap_or_default()
    }

    fn required_string(&mut self, field: &str) -> Option<String> {
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

    /// A required e-mail address, normalised (a placeholder if missing or invalid).
    pub(crate) fn email(&mut self, field: &str) -> String {
        self.required_string(field)
            .and_then(|raw| self.check_email(field, raw))
            .unwrap_or_default()
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
    fn finish(self) -> Result<(), ApiError> {
        if self.issues.is_empty() {
            Ok(())
        } else {
            Err(validation_error(self.issues))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::test_support::{detail, with_content_type};

    fn parse(body: &[u8]) -> Result<Value, ApiError> {
        parse_json(&with_content_type("application/json"), body)
    }

    #[test]
    fn malformed_json_gives_json_invalid_with_position() {
        let d = detail(parse(br#"{"email":"#).unwrap_err());
        assert_eq!(d[0]["type"], "json_invalid");
        assert_eq!(d[0]["loc"], json!(["body", 9]));
    }

    #[test]
    fn empty_body_is_missing() {
        let d = detail(parse(b"").unwrap_err());
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
        let read = Fields::read(&v, |f| {
            (
                f.email("email"),
                f.string("password"),
                f.optional_bool("is_active", true),
            )
        });
        let d = detail(read.unwrap_err());
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

    #[test]
    fn only_json_media_types_are_parsed() {
        let body = br#"{"email":"a@example.com"}"#;
        for json_type in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON ; charset=UTF-8",
            "application/vnd.api+json",
            "application/merge-patch+json; charset=utf-8",
        ] {
            let value = parse_json(&with_content_type(json_type), body).unwrap();
            assert_eq!(value, json!({"email": "a@example.com"}), "{json_type}");
        }
        let not_json = [
            with_content_type("text/plain"),
            HeaderMap::new(),
            with_content_type("text/json"),
            with_content_type("application/jsonp"),
            with_content_type("application/x-www-form-urlencoded"),
        ];
        for headers in not_json {
            let value = parse_json(&headers, body).unwrap();
            let d = detail(Fields::of(&value).err().unwrap());
            let expected = json!([{
                "type": "model_attributes_type",
                "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": r#"{"email":"a@example.com"}"#,
            }]);
            assert_eq!(d, expected, "{headers:?}");
        }
        // Not parsed, so not a JSON syntax error either; an empty body is still missing.
        let value = parse_json(&with_content_type("text/plain"), b"{oops").unwrap();
        assert_eq!(value, json!("{oops"));
        let d = detail(parse_json(&HeaderMap::new(), b"").unwrap_err());
        assert_eq!(d[0]["type"], "missing");
    }

    #[test]
    fn no_422_shows_a_password() {
        // Register-shaped: the missing e-mail's input is the body, and a non-string password.
        let v = json!({"password": "hunter2", "is_active": "maybe"});
        let mut f = Fields::of(&v).unwrap();
        f.email("email");
        f.string("password");
        f.optional_bool("is_active", true);
        let d = detail(f.finish().unwrap_err());
        assert_eq!(d[0]["type"], "missing");
        assert_eq!(
            d[0]["input"],
            json!({"password": "[redacted]", "is_active": "maybe"})
        );
        let v = json!({"email": "a@example.com", "password": 1234567});
        let mut f = Fields::of(&v).unwrap();
        f.string("password");
        let d = detail(f.finish().unwrap_err());
        assert_eq!(d[0]["type"], "string_type");
        assert_eq!(d[0]["input"], "[redacted]");
        // The missing password's input is the body, password-free here: shown as it is.
        let v = json!({"email": "a@example.com"});
        let mut f = Fields::of(&v).unwrap();
        f.string("password");
        assert_eq!(detail(f.finish().unwrap_err())[0]["input"], v);

        // PATCH-shaped: every password field, wherever the body is shown.
        #[derive(serde::Deserialize, Default)]
        struct Profile {
            #[serde(default)]
            _age: Option<u32>,
        }
        let v = json!({
            "password": 7, "current_password": "old-secret", "new_password": "new-secret",
            "_age": "old", "email": null,
        });
        let mut f = Fields::of(&v).unwrap();
        f.optional_string("password", true);
        f.optional_email("email");
        f.custom::<Profile>();
        let d = detail(f.finish().unwrap_err());
        assert_eq!(d.as_array().unwrap().len(), 3);
        assert_eq!(d[0]["input"], "[redacted]");
        assert_eq!(d[2]["input"]["current_password"], "[redacted]");
        assert_eq!(d[2]["input"]["new_password"], "[redacted]");
        assert_eq!(d[2]["input"]["_age"], "old");
        let text = d.to_string();
        assert!(!text.contains("secret") && !text.contains(":7"), "{text}");

        // A body sent as text is shown only if it names no password.
        let raw = br#"{"email":"a@example.com","password":"hunter2"}"#;
        let value = parse_json(&with_content_type("text/plain"), raw).unwrap();
        let d = detail(Fields::of(&value).err().unwrap());
        assert_eq!(d[0]["input"], "[redacted]");
    }

    #[test]
    fn values_are_returned_only_when_every_field_is_valid() {
        let v = json!({"email": "Bob@Example.com", "token": "t", "is_active": "no"});
        let read = Fields::read(&v, |f| {
            (
                f.email("email"),
                f.string("token"),
                f.optional_bool("is_active", true),
            )
        });
        let expected = ("Bob@example.com".to_owned(), "t".to_owned(), Some(false));
        assert_eq!(read.unwrap(), expected);
        // One invalid field, and nothing built escapes, not even the valid values.
        let v = json!({"email": "bob", "token": "t"});
        let read = Fields::read(&v, |f| (f.email("email"), f.string("token")));
        assert_eq!(
            detail(read.unwrap_err())[0]["loc"],
            json!(["body", "email"])
        );
        let read = Fields::read(&json!({}), |f| f.string("token"));
        assert_eq!(detail(read.unwrap_err())[0]["type"], "missing");
        let read = Fields::read(&json!("text"), |f| f.string("token"));
        assert_eq!(
            detail(read.unwrap_err())[0]["type"],
            "model_attributes_type"
        );
    }
}
