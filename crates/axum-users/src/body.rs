//! Request bodies, validated into FastAPI's 422 shape. Bodies are parsed by hand so that every
//! malformed input gets a precise 422 and never reaches the store.

use http::HeaderMap;
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

/// The fields of a form body, `application/x-www-form-urlencoded` or `multipart/form-data` (text
/// fields only); other content types give none, so that every required field is reported missing
/// (as FastAPI does for JSON at a form route).
pub(crate) fn parse_form(headers: &HeaderMap, body: &[u8]) -> Vec<(String, String)> {
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let lower = content_type.to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        serde_urlencoded::from_bytes(body).unwrap_or_default()
    } else if lower.starts_with("multipart/form-data") {
        boundary(content_type)
            .map(|b| parse_multipart(&b, body))
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

fn boundary(content_type: &str) -> Option<String> {
    content_type
        .split(';')
        .find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.eq_ignore_ascii_case("boundary")
                .then(|| v.trim_matches('"').to_owned())
        })
        .filter(|b| !b.is_empty())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The text fields of a `multipart/form-data` body; file parts and malformed parts are skipped.
fn parse_multipart(boundary: &str, body: &[u8]) -> Vec<(String, String)> {
    let delimiter = format!("--{boundary}");
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end = find(rest, delimiter.as_bytes()).unwrap_or(rest.len());
        let part = rest[..end].strip_prefix(b"\r\n").unwrap_or(&rest[..end]);
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let (head, value) = (&part[..split], &part[split + 4..]);
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        let Ok(head) = std::str::from_utf8(head) else {
            continue;
        };
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition:"));
        let Some(disposition) = disposition else {
            continue;
        };
        let params: Vec<(&str, &str)> = disposition
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
            .collect();
        if params
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("filename"))
        {
            continue;
        }
        let name = params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("name"))
            .map(|(_, v)| *v);
        if let (Some(name), Ok(value)) = (name, std::str::from_utf8(value)) {
            fields.push((name.to_owned(), value.to_owned()));
        }
    }
    fields
}

/// The login form of OAuth2's password grant.
#[derive(Debug)]
pub(crate) struct LoginForm {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl LoginForm {
    /// Validates `username`, `password` (required, non-empty) and `grant_type` (`password`).
    pub(crate) fn parse(fields: &[(String, String)]) -> Result<Self, ApiError> {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let mut issues = Vec::new();
        if let Some(grant) = get("grant_type").filter(|g| g != "password") {
            issues.push(
                ValidationIssue::body_field(
                    "string_pattern_mismatch",
                    "grant_type",
                    "String should match pattern '^password$'",
                    Value::String(grant),
                )
                .with_ctx(json!({"pattern": "^password$"})),
            );
        }
        let username = get("username");
        let password = get("password");
        for (name, value) in [("username", &username), ("password", &password)] {
            if value.is_none() {
                issues.push(ValidationIssue::body_field(
                    "missing",
                    name,
                    "Field required",
                    Value::Null,
                ));
            }
        }
        match (username, password) {
            (Some(username), Some(password)) if issues.is_empty() => {
                Ok(Self { username, password })
            }
            _ => Err(ApiError::validation(issues)),
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

    #[test]
    fn multipart_forms_give_their_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice@example.com\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\np\u{e4}ss word\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nignored\r\n--XyZ--\r\n";
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let fields = parse_form(&headers, body.as_bytes());
        assert_eq!(
            fields,
            vec![
                ("username".to_owned(), "alice@example.com".to_owned()),
                ("password".to_owned(), "p\u{e4}ss word".to_owned())
            ]
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data".parse().unwrap(),
        );
        assert!(parse_form(&headers, body.as_bytes()).is_empty());
        headers.insert(
            http::header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        assert!(parse_form(&headers, b"garbage").is_empty());
    }

    #[test]
    fn login_form_rules() {
        let pairs = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(LoginForm::parse(&pairs(&[("username", "a"), ("password", "b")])).is_ok());
        assert!(
            LoginForm::parse(&pairs(&[
                ("username", "a"),
                ("password", "b"),
                ("grant_type", "password")
            ]))
            .is_ok()
        );
        let d = detail(
            LoginForm::parse(&pairs(&[
                ("username", "a"),
                ("password", "b"),
                ("grant_type", "x"),
            ]))
            .unwrap_err(),
        );
        assert_eq!(d[0]["type"], "string_pattern_mismatch");
        let d = detail(LoginForm::parse(&[]).unwrap_err());
        assert_eq!(d.as_array().unwrap().len(), 2);
        let d =
            detail(LoginForm::parse(&pairs(&[("username", ""), ("password", "b")])).unwrap_err());
        assert_eq!(d[0]["loc"], json!(["body", "username"]));
    }
}
