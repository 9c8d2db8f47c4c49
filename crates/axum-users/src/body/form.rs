//! Form bodies (the login route): `application/x-www-form-urlencoded` and `multipart/form-data`.

use http::HeaderMap;
use serde_json::{Value, json};

use crate::error::{ApiError, ValidationIssue};

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
