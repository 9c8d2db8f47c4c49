//! Transports: how a token travels between client and server (spec section 4.1).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::json;

use super::strategy::IssuedToken;

/// The `SameSite` attribute of a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=lax` (the default).
    Lax,
    /// `SameSite=strict`.
    Strict,
    /// `SameSite=none` (requires `Secure`).
    None,
}

impl SameSite {
    fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "lax",
            SameSite::Strict => "strict",
            SameSite::None => "none",
        }
    }
}

/// Attributes of a cookie written by the server. Defaults: HttpOnly, Secure, SameSite=lax,
/// Path=/, a session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CookieSettings {
    /// Cookie name.
    pub name: String,
    /// `Max-Age` in seconds; `None` makes a session cookie.
    pub max_age: Option<u64>,
    /// `Path`.
    pub path: String,
    /// `Domain`, if any.
    pub domain: Option<String>,
    /// `Secure`: only sent over HTTPS. Turn off only for local development over plain HTTP.
    pub secure: bool,
    /// `HttpOnly`: out of reach of scripts.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: SameSite,
}

impl CookieSettings {
    /// The auth cookie of FastAPI Users: `fastapiusersauth`.
    pub fn auth() -> Self {
        Self::named("fastapiusersauth")
    }

    /// Defaults with another name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_age: None,
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }

    /// Sets `Secure`.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sets `Max-Age`.
    pub fn with_max_age(mut self, seconds: Option<u64>) -> Self {
        self.max_age = seconds;
        self
    }

    /// A `Set-Cookie` value; attributes in the reference's (alphabetical) order.
    pub fn set_cookie(&self, value: &str, max_age: Option<u64>) -> String {
        let mut out = format!(
            "{}={}",
            self.name,
            if value.is_empty() { "\"\"" } else { value }
        );
        if let Some(domain) = &self.domain {
            out.push_str(&format!("; Domain={domain}"));
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(age) = max_age {
            out.push_str(&format!("; Max-Age={age}"));
        }
        out.push_str(&format!(
            "; Path={}; SameSite={}",
            self.path,
            self.same_site.as_str()
        ));
        if self.secure {
            out.push_str("; Secure");
        }
        out
    }

    /// The value of this cookie in a request, if present and not empty.
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        read_cookie(headers, &self.name).filter(|v| !v.is_empty())
    }
}

/// Reads a cookie by name from the `Cookie` headers.
pub fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie_values(headers, name)
        .next()
        .map(|v| v.trim_matches('"').to_owned())
}

/// Every value of the cookies named `name`, in the order the `Cookie` headers carry them.
pub(crate) fn cookie_values<'a>(
    headers: &'a HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(move |(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How the token travels.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// `Authorization: Bearer <token>`; login answers `{"access_token","token_type":"bearer"}`.
    Bearer {
        /// The login URL, advertised in the OpenAPI document.
        token_url: String,
    },
    /// An HttpOnly cookie; login answers 204 with `Set-Cookie`.
    Cookie(CookieSettings),
}

impl Transport {
    /// The credential carried by a request, if this transport finds one.
    pub fn read(&self, headers: &HeaderMap) -> Option<String> {
        match self {
            Transport::Bearer { .. } => {
                let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
                let (scheme, credentials) = value.split_once(' ').unwrap_or((value, ""));
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| credentials.to_owned())
            }
            Transport::Cookie(cookie) => cookie.read(headers),
        }
    }

    /// The response of a successful login; never cached (`Cache-Control: no-store`).
    pub fn login_response(&self, token: &IssuedToken) -> Response {
        let access = token.access_token.expose();
        let mut response = match self {
            Transport::Bearer { .. } => {
                let mut body = json!({"access_token": access, "token_type": "bearer"});
                // Additive: FastAPI Users clients ignore the fields they do not know.
                if let Some(refresh) = &token.refresh_token {
                    body["refresh_token"] = json!(refresh.expose());
                    if let Some(lifetime) = token.lifetime {
                        body["expires_in"] = json!(lifetime.as_secs());
                    }
                }
                axum::Json(body).into_response()
            }
            Transport::Cookie(cookie) => with_cookie(cookie.set_cookie(access, cookie.max_age)),
        };
        no_store(&mut response);
        response
    }

    /// Whether tokens travel in a cookie, which browsers attach to cross-site requests too.
    pub fn is_cookie(&self) -> bool {
        matches!(self, Transport::Cookie(_))
    }

    /// The response of a logout: 204, clearing the cookie with the same attributes.
    pub fn logout_response(&self) -> Response {
        match self {
            Transport::Bearer { .. } => StatusCode::NO_CONTENT.into_response(),
            Transport::Cookie(cookie) => with_cookie(cookie.set_cookie("", Some(0))),
        }
    }
}

/// Marks a response that carries a credential as never to be stored by caches.
pub(crate) fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn with_cookie(set_cookie: String) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    if let Ok(value) = HeaderValue::from_str(&set_cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn cookie_strings_match_the_reference() {
        let c = CookieSettings::auth();
        assert_eq!(
            c.set_cookie("tok", None),
            "fastapiusersauth=tok; HttpOnly; Path=/; SameSite=lax; Secure"
        );
        assert_eq!(
            c.set_cookie("", Some(0)),
            "fastapiusersauth=\"\"; HttpOnly; Max-Age=0; Path=/; SameSite=lax; Secure"
        );
        let insecure = CookieSettings::auth().with_secure(false);
        assert!(!insecure.set_cookie("t", None).contains("Secure"));
    }

    #[test]
    fn login_responses_are_never_cached() {
        let token = IssuedToken::new("tok", None);
        for t in [
            Transport::Bearer {
                token_url: "auth/jwt/login".into(),
            },
            Transport::Cookie(CookieSettings::auth()),
        ] {
            let r = t.login_response(&token);
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
            assert_eq!(r.headers()[header::PRAGMA], "no-cache");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let t = Transport::Bearer {
            token_url: "auth/jwt/login".into(),
        };
        assert_eq!(
            t.read(&headers(&[("authorization", "bearer abc")])),
            Some("abc".into())
        );
        assert_eq!(
            t.read(&headers(&[("authorization", "BEARER abc")])),
            Some("abc".into())
        );
        assert_eq!(t.read(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(
            t.read(&headers(&[("authorization", "Bearer")])),
            Some(String::new())
        );
        assert_eq!(t.read(&HeaderMap::new()), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let t = Transport::Cookie(CookieSettings::auth());
        assert_eq!(
            t.read(&headers(&[("cookie", "a=1; fastapiusersauth=tok; b=2")])),
            Some("tok".into())
        );
        assert_eq!(t.read(&headers(&[("cookie", "fastapiusersauth=")])), None);
        assert_eq!(t.read(&headers(&[("cookie", "x=1")])), None);
    }
}
