//! Form bodies (the login route): `application/x-www-form-urlencoded` and `multipart/form-data`.
//!
//! The login route is open to anyone, so the work done on a body is linear in its size, and its
//! size is capped ([`FORM_BODY_LIMIT`]). Multipart bodies are searched with `memchr::memmem`
//! finders built once per body; each search starts where the previous one ended, so each byte is
//! searched at most twice (for the next boundary, then within its part for the end of the part's
//! headers). The boundary (RFC 2046: at most 70 characters), the number of parts and the size of
//! each field are capped. What cannot be parsed gets FastAPI's answer: 400
//! `{"detail": "There was an error parsing the body"}`.

use http::HeaderMap;

use crate::error_code::ErrorCode;
use memchr::memmem::Finder;
use serde_json::{Value, json};

use crate::error::{ApiError, ValidationIssue};

/// The largest form body accepted, in bytes (a login form takes a few hundred). The login routes
/// use it as their body limit; [`parse_form`] enforces it too, so the rule holds whatever the
/// router does.
pub(crate) const FORM_BODY_LIMIT: usize = 16 * 1024;

/// The longest multipart boundary RFC 2046 allows.
const MAX_BOUNDARY_LEN: usize = 70;
/// The most fields (multipart parts, or urlencoded pairs) of one form; a login form has six.
const MAX_FIELDS: usize = 64;
/// The longest value of one field, in bytes.
const MAX_FIELD_LEN: usize = 4 * 1024;
/// The longest header block of one multipart part, in bytes.
const MAX_PART_HEADERS_LEN: usize = 1024;

/// Why a form body was refused: logged at debug level; the client gets
/// [`ErrorCode::UnparsableBody`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unparsable(&'static str);

impl From<Unparsable> for ApiError {
    fn from(e: Unparsable) -> Self {
        tracing::debug!(reason = e.0, "form body refused");
        ApiError::code(ErrorCode::UnparsableBody)
    }
}

/// The fields of a form body, `application/x-www-form-urlencoded` or `multipart/form-data` (text
/// fields only); other content types give none, so that every required field is reported missing
/// (as FastAPI does for JSON at a form route).
///
/// # Errors
/// 413 `Content Too Large` for a body over [`FORM_BODY_LIMIT`]; 400 `There was an error parsing
/// the body` for a malformed body, a missing or invalid boundary, more than 64 fields, or a field
/// over 4 KiB.
pub(crate) fn parse_form(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    if body.len() > FORM_BODY_LIMIT {
        return Err(ApiError::code(ErrorCode::PayloadTooLarge));
    }
    let content_type = super::content_type(headers);
    let fields = match super::media_type(content_type).as_str() {
        "application/x-www-form-urlencoded" => parse_urlencoded(body)?,
        "multipart/form-data" => Multipart::new(content_type)?.parse(body)?,
        _ => Vec::new(),
    };
    Ok(fields)
}

fn parse_urlencoded(body: &[u8]) -> Result<Vec<(String, String)>, Unparsable> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_bytes(body).map_err(|_| Unparsable("malformed urlencoded body"))?;
    if fields.len() > MAX_FIELDS {
        return Err(Unparsable("too many fields"));
    }
    if fields.iter().any(|(_, v)| v.len() > MAX_FIELD_LEN) {
        return Err(Unparsable("a field is too long"));
    }
    Ok(fields)
}

/// The `boundary` parameter of a `Content-Type`, unquoted.
fn boundary(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// RFC 2046 §5.1.1: 1 to 70 of `bchars`, not ending with a space.
fn is_valid_boundary(boundary: &str) -> bool {
    let bchar = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b);
    (1..=MAX_BOUNDARY_LEN).contains(&boundary.len())
        && boundary.bytes().all(|b| bchar(&b))
        && !boundary.ends_with(' ')
}

/// A `multipart/form-data` parser for one boundary.
struct Multipart {
    /// `\r\n--boundary`: every delimiter follows a line break, but one at the very start.
    delimiter: Finder<'static>,
    /// The blank line that ends a part's headers.
    headers_end: Finder<'static>,
    /// Bytes examined by the searches so far: the parser's work, which tests bound.
    scanned: usize,
}

impl Multipart {
    /// Refuses a missing or invalid boundary before anything of the body is read.
    fn new(content_type: &str) -> Result<Self, Unparsable> {
        let boundary = boundary(content_type).ok_or(Unparsable("no boundary"))?;
        if !is_valid_boundary(boundary) {
            return Err(Unparsable("invalid boundary"));
        }
        let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
        Ok(Self {
            delimiter: Finder::new(&delimiter).into_owned(),
            headers_end: Finder::new(b"\r\n\r\n"),
            scanned: 0,
        })
    }

    /// The text fields of a body; file parts are skipped, and so are values that are not UTF-8.
    fn parse(&mut self, body: &[u8]) -> Result<Vec<(String, String)>, Unparsable> {
        let mut fields = Vec::new();
        if body.is_empty() {
            return Ok(fields);
        }
        let Self {
            delimiter,
            headers_end,
            scanned,
        } = self;
        let delimiter_len = delimiter.needle().len();
        // A preamble may come before the first delimiter.
        let mut pos = if body.starts_with(&delimiter.needle()[2..]) {
            delimiter_len - 2
        } else {
            find(delimiter, body, scanned).ok_or(Unparsable("no boundary in the body"))?
                + delimiter_len
        };
        let mut parts = 0;
        loop {
            let rest = &body[pos..];
            if rest.starts_with(b"--") {
                return Ok(fields);
            }
            let padding = rest
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count();
            *scanned += padding;
            let Some(part_and_rest) = rest[padding..].strip_prefix(b"\r\n") else {
                return Err(Unparsable("no line break after a boundary"));
            };
            parts += 1;
            if parts > MAX_FIELDS {
                return Err(Unparsable("too many parts"));
            }
            let end = find(delimiter, part_and_rest, scanned)
                .ok_or(Unparsable("a part without a closing boundary"))?;
            if let Some(field) = text_field(headers_end, &part_and_rest[..end], scanned)? {
                fields.push(field);
            }
            pos = body.len() - part_and_rest.len() + end + delimiter_len;
        }
    }
}

/// Finds `finder`'s needle, counting the bytes examined in `scanned`.
fn find(finder: &Finder<'_>, haystack: &[u8], scanned: &mut usize) -> Option<usize> {
    let found = finder.find(haystack);
    *scanned += found.map_or(haystack.len(), |i| i + finder.needle().len());
    found
}

/// The name and value of one part; `None` for a file or a value that is not UTF-8.
fn text_field(
    headers_end: &Finder<'_>,
    part: &[u8],
    scanned: &mut usize,
) -> Result<Option<(String, String)>, Unparsable> {
    let window = &part[..part.len().min(MAX_PART_HEADERS_LEN + 4)];
    let split = find(headers_end, window, scanned)
        .ok_or(Unparsable("part headers unterminated or too long"))?;
    let value = &part[split + 4..];
    if value.len() > MAX_FIELD_LEN {
        return Err(Unparsable("a field is too long"));
    }
    let head =
        std::str::from_utf8(&part[..split]).map_err(|_| Unparsable("part headers not UTF-8"))?;
    let disposition = head
        .split("\r\n")
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-disposition")
                .then_some(value)
        })
        .ok_or(Unparsable("a part without Content-Disposition"))?;
    let (kind, params) = disposition.split_once(';').unwrap_or((disposition, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(Unparsable("a part that is not form-data"));
    }
    let params = parameters(params)?;
    let is = |key: &str, name: &str| key.eq_ignore_ascii_case(name);
    if params
        .iter()
        .any(|(k, _)| is(k, "filename") || is(k, "filename*"))
    {
        return Ok(None);
    }
    let name = params
        .into_iter()
        .find_map(|(k, v)| is(k, "name").then_some(v))
        .ok_or(Unparsable("a part without a name"))?;
    Ok(std::str::from_utf8(value)
        .ok()
        .map(|value| (name, value.to_owned())))
}

/// The `key=value` parameters of a `Content-Disposition`, values unquoted (RFC 7578 §4.2).
fn parameters(mut rest: &str) -> Result<Vec<(&str, String)>, Unparsable> {
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(params);
        }
        let (key, after) = rest
            .split_once('=')
            .ok_or(Unparsable("a parameter without a value"))?;
        let key = key.trim();
        if key.is_empty() || key.contains([';', '"', ' ']) {
            return Err(Unparsable("a malformed parameter name"));
        }
        let after = after.trim_start();
        let (value, next) = match after.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None => {
                let end = after.find(';').unwrap_or(after.len());
                (after[..end].trim_end().to_owned(), &after[end..])
            }
        };
        params.push((key, value));
        let next = next.trim_start();
        rest = match next.strip_prefix(';') {
            Some(next) => next,
            None if next.is_empty() => next,
            None => return Err(Unparsable("text after a parameter")),
        };
    }
}

/// The content of a quoted string (after its opening quote), and what follows its closing quote.
fn unquote(quoted: &str) -> Result<(String, &str), Unparsable> {
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((value, &quoted[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => value.push(escaped),
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(Unparsable("an unterminated quoted string"))
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
            _ => Err(super::validation_error(issues)),
        }
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::body::test_support::{detail, with_content_type};

    fn multipart(boundary: &str) -> HeaderMap {
        with_content_type(&format!("multipart/form-data; boundary={boundary}"))
    }

    fn text_part(boundary: &str, name: &str, value: &str) -> String {
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        )
    }

    fn refusal(e: ApiError) -> (StatusCode, Value) {
        (e.status, e.detail)
    }

    fn unparsable() -> (StatusCode, Value) {
        (
            StatusCode::BAD_REQUEST,
            json!(ErrorCode::UnparsableBody.as_str()),
        )
    }

    /// Parses with a fresh parser and returns the fields with the bytes it examined.
    fn parse_counting(
        boundary: &str,
        body: &[u8],
    ) -> (Result<Vec<(String, String)>, Unparsable>, usize) {
        let ct = format!("multipart/form-data; boundary={boundary}");
        let Ok(mut parser) = Multipart::new(&ct) else {
            panic!("boundary {boundary:?} refused");
        };
        let fields = parser.parse(body);
        (fields, parser.scanned)
    }

    #[test]
    fn multipart_forms_give_their_text_fields() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice@example.com\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\np\u{e4}ss word\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nignored\r\n--XyZ--\r\n";
        let fields = parse_form(&multipart("XyZ"), body.as_bytes()).unwrap();
        assert_eq!(
            fields,
            vec![
                ("username".to_owned(), "alice@example.com".to_owned()),
                ("password".to_owned(), "p\u{e4}ss word".to_owned())
            ]
        );
        // No boundary, or a body that is not multipart: FastAPI's 400, not an empty form.
        let no_boundary = with_content_type("multipart/form-data");
        let e = parse_form(&no_boundary, body.as_bytes()).unwrap_err();
        assert_eq!(refusal(e), unparsable());
        let e = parse_form(&multipart("XyZ"), b"garbage").unwrap_err();
        assert_eq!(refusal(e), unparsable());
    }

    #[test]
    fn an_empty_multipart_body_is_an_empty_form() {
        let fields = parse_form(&multipart("XyZ"), b"").unwrap();
        let d = detail(LoginForm::parse(&fields).unwrap_err());
        assert_eq!(d[0]["type"], "missing");
    }

    #[test]
    fn preamble_padding_quotes_and_epilogue_are_understood() {
        let body = "preamble\r\n--a b\t \r\nCONTENT-DISPOSITION: Form-Data; name=\"u;\\\"x\\\"\"\r\nContent-Type: text/plain\r\n\r\nv\r\n--a b--\r\nepilogue";
        let headers = with_content_type("Multipart/Form-Data; charset=utf-8; boundary=\"a b\"");
        assert_eq!(
            parse_form(&headers, body.as_bytes()).unwrap(),
            vec![("u;\"x\"".to_owned(), "v".to_owned())]
        );
    }

    #[test]
    fn an_oversized_body_is_refused_before_it_is_read() {
        // The review's case: 2 MB with a 200 KB boundary. Refused on its length alone (no parser
        // is built), and the boundary alone would be refused before the body is looked at.
        let boundary = "b".repeat(200 * 1024);
        let mut body = text_part(&boundary, "username", "a").into_bytes();
        body.resize(2 * 1024 * 1024, b'b');
        let e = parse_form(&multipart(&boundary), &body).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let ct = format!("multipart/form-data; boundary={boundary}");
        assert_eq!(
            Multipart::new(&ct).err(),
            Some(Unparsable("invalid boundary"))
        );
        // The limit holds whatever the content type.
        let e = parse_form(&HeaderMap::new(), &body).unwrap_err();
        assert_eq!(e.status, StatusCode::PAYLOAD_TOO_LARGE);
        let body = vec![b'a'; FORM_BODY_LIMIT + 1];
        let e = parse_form(
            &with_content_type("application/x-www-form-urlencoded"),
            &body,
        );
        assert_eq!(e.unwrap_err().status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn boundaries_over_70_bytes_or_outside_rfc_2046_are_refused() {
        for (boundary, accepted) in [
            ("a".repeat(70), true),
            ("'()+_,-./:=? Az09".to_owned(), true),
            ("a".repeat(71), false),
            ("a;b".to_owned(), false),
            ("a\\b".to_owned(), false),
            ("trailing ".to_owned(), false),
        ] {
            let body = format!(
                "{}--{boundary}--\r\n",
                text_part(&boundary, "username", "u")
            );
            let headers =
                with_content_type(&format!("multipart/form-data; boundary=\"{boundary}\""));
            let parsed = parse_form(&headers, body.as_bytes());
            if accepted {
                assert_eq!(
                    parsed.unwrap(),
                    vec![("username".to_owned(), "u".to_owned())]
                );
            } else {
                assert_eq!(refusal(parsed.unwrap_err()), unparsable(), "{boundary:?}");
            }
        }
    }

    #[test]
    fn a_full_body_of_many_parts_is_parsed_in_linear_work() {
        // 16 KiB, a 70-byte boundary, the most parts allowed, and values full of near-boundaries:
        // each byte is examined at most twice.
        let boundary = format!("{}{}", "'()+_,-./:=?", "x".repeat(58));
        let closing = format!("--{boundary}--\r\n");
        let overhead = text_part(&boundary, "f00", "").len();
        let value_len = (FORM_BODY_LIMIT - closing.len()) / MAX_FIELDS - overhead;
        let near_miss = format!("\r\n--{}", &boundary[..69]);
        let value: String = near_miss.chars().cycle().take(value_len).collect();
        let body: String = (0..MAX_FIELDS)
            .map(|i| text_part(&boundary, &format!("f{i:02}"), &value))
            .chain([closing])
            .collect();
        assert!(body.len() <= FORM_BODY_LIMIT && body.len() > FORM_BODY_LIMIT - MAX_FIELDS);
        let (fields, scanned) = parse_counting(&boundary, body.as_bytes());
        let fields = fields.unwrap();
        assert_eq!(fields.len(), MAX_FIELDS);
        assert!(fields.iter().all(|(_, v)| *v == value));
        assert_eq!(fields[63].0, "f63");
        assert!(
            scanned <= 2 * body.len(),
            "{scanned} bytes examined for {}",
            body.len()
        );

        // A body of nothing but near-boundaries is searched once, then refused.
        let body: String = near_miss.chars().cycle().take(FORM_BODY_LIMIT).collect();
        let (fields, scanned) = parse_counting(&boundary, body.as_bytes());
        assert_eq!(fields, Err(Unparsable("no boundary in the body")));
        assert!(scanned <= body.len());
    }

    #[test]
    fn too_many_fields_or_too_long_a_field_are_refused() {
        let many: String = (0..=MAX_FIELDS)
            .map(|i| text_part("b", &format!("f{i}"), "v"))
            .collect();
        let e = parse_form(&multipart("b"), format!("{many}--b--").as_bytes()).unwrap_err();
        assert_eq!(refusal(e), unparsable());
        let long = text_part("b", "password", &"p".repeat(MAX_FIELD_LEN + 1));
        let e = parse_form(&multipart("b"), format!("{long}--b--").as_bytes()).unwrap_err();
        assert_eq!(refusal(e), unparsable());
        let fit = text_part("b", "password", &"p".repeat(MAX_FIELD_LEN));
        assert!(parse_form(&multipart("b"), format!("{fit}--b--").as_bytes()).is_ok());

        let urlencoded = with_content_type("application/x-www-form-urlencoded");
        let many = vec!["a=b"; MAX_FIELDS + 1].join("&");
        let e = parse_form(&urlencoded, many.as_bytes()).unwrap_err();
        assert_eq!(refusal(e), unparsable());
        let long = format!("password={}", "p".repeat(MAX_FIELD_LEN + 1));
        let e = parse_form(&urlencoded, long.as_bytes()).unwrap_err();
        assert_eq!(refusal(e), unparsable());
        let fit = vec!["a=b"; MAX_FIELDS].join("&");
        assert_eq!(
            parse_form(&urlencoded, fit.as_bytes()).unwrap().len(),
            MAX_FIELDS
        );
    }

    #[test]
    fn malformed_multipart_is_refused() {
        let part = text_part("b", "username", "u");
        for (body, reason) in [
            (part.clone(), "a part without a closing boundary"),
            (
                format!("--b junk\r\n{}--b--", &part[5..]),
                "no line break after a boundary",
            ),
            (
                "--b\r\nX-Other: 1\r\n\r\nv\r\n--b--".to_owned(),
                "a part without Content-Disposition",
            ),
            (
                "--b\r\nContent-Disposition: form-data\r\nv\r\n--b--".to_owned(),
                "part headers unterminated or too long",
            ),
            (
                "--b\r\nContent-Disposition: attachment; name=u\r\n\r\nv\r\n--b--".to_owned(),
                "a part that is not form-data",
            ),
            (
                "--b\r\nContent-Disposition: form-data; filler=1\r\n\r\nv\r\n--b--".to_owned(),
                "a part without a name",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"u\r\n\r\nv\r\n--b--".to_owned(),
                "an unterminated quoted string",
            ),
            (
                "--b\r\nContent-Disposition: form-data; name=\"u\" x\r\n\r\nv\r\n--b--".to_owned(),
                "text after a parameter",
            ),
            (
                format!(
                    "--b\r\nContent-Disposition: form-data; name=u\r\nX: {}\r\n\r\nv\r\n--b--",
                    "h".repeat(MAX_PART_HEADERS_LEN)
                ),
                "part headers unterminated or too long",
            ),
        ] {
            let (fields, _) = parse_counting("b", body.as_bytes());
            assert_eq!(fields, Err(Unparsable(reason)), "{body:?}");
            let e = parse_form(&multipart("b"), body.as_bytes()).unwrap_err();
            assert_eq!(refusal(e), unparsable());
        }
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

    #[test]
    fn login_form_errors_never_show_the_password() {
        let urlencoded = with_content_type("application/x-www-form-urlencoded");
        for body in [
            "password=hunter2",
            "password=hunter2&grant_type=hunter2x",
            "username=&password=hunter2&grant_type=x",
        ] {
            let fields = parse_form(&urlencoded, body.as_bytes()).unwrap();
            let d = detail(LoginForm::parse(&fields).unwrap_err());
            assert!(!d.to_string().contains("hunter2\""), "{d}");
        }
    }
}
