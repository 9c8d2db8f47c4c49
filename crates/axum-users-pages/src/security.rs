//! The pages' defences: the CSRF token (signed double-submit), the `Origin` check of every
//! POST, the security headers of every answer, and the bounded form body.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use axum_users::{CookieSettings, RouterStore, Secret, UserHooks};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use http::request::Parts;
use http::{HeaderValue, header};
use sha2::Sha256;

use crate::{PagesError, PagesState};

/// The largest form body a page accepts.
pub(crate) const FORM_LIMIT: usize = 16 * 1024;

/// The HKDF label of the pages' own sub-key: no other purpose derives it.
const CSRF_INFO: &[u8] = b"axum-users/pages-csrf/v1";

/// The pages' keys, derived from the users' secret.
pub(crate) struct PageKeys {
    csrf: [u8; 32],
}

impl PageKeys {
    pub(crate) fn new(secret: &Secret) -> Result<Self, PagesError> {
        if secret.expose().len() < 32 {
            return Err(PagesError::WeakSecret);
        }
        let mut csrf = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(None, secret.expose().as_bytes())
            .expand(CSRF_INFO, &mut csrf)
            .map_err(|_| PagesError::WeakSecret)?;
        Ok(Self { csrf })
    }

    /// `label`'s HMAC of `value` under the CSRF sub-key.
    pub(crate) fn sign(&self, label: &str, value: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.csrf)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        B64.encode(mac.finalize().into_bytes())
    }

    /// Whether `signature` is `label`'s HMAC of `value`, compared in constant time.
    pub(crate) fn verify(&self, label: &str, value: &str, signature: &str) -> bool {
        axum_users::constant_time_eq(self.sign(label, value).as_bytes(), signature.as_bytes())
    }
}

/// The CSRF cookie: `__Host-` prefixed when Secure (no subdomain can plant it).
pub(crate) fn csrf_cookie(secure: bool) -> CookieSettings {
    let name = if secure {
        "__Host-axum_users_pages_csrf"
    } else {
        "axum_users_pages_csrf"
    };
    CookieSettings::named(name).with_secure(secure)
}

/// Whether a POST may come from where it says it comes from: the pages' own origin (the
/// request's `Host`), or `Origin: null` (the pages' own forms under `no-referrer`) and no
/// `Origin` at all, unless `Sec-Fetch-Site` says another site sent it. The CSRF token is
/// checked as well, whatever this says.
pub(crate) fn same_origin(parts: &Parts) -> bool {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let fetch_site = header("sec-fetch-site");
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return false;
    }
    match header("origin") {
        None | Some("null") => true,
        Some(origin) => {
            let host = header("host").unwrap_or_default();
            let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
            !authority.is_empty() && authority.eq_ignore_ascii_case(host)
        }
    }
}

/// A parsed form body.
#[derive(Debug, Default)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        serde_urlencoded::from_bytes(body).ok().map(Form)
    }

    /// The first value of `name`, or `""`.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The value of `name` as a secret, `None` when absent or empty (an optional password).
    pub(crate) fn secret(&self, name: &str) -> Option<crate::Secret> {
        Some(self.get(name))
            .filter(|p| !p.is_empty())
            .map(crate::Secret::new)
    }
}

/// Adds the security headers to every answer of the pages.
pub(crate) async fn headers<S: RouterStore, H: UserHooks<S::Id, S::Fields>>(
    State(state): State<Arc<PagesState<S, H>>>,
    mut response: Response,
) -> Response {
    apply_headers(&state, &mut response);
    response
}

/// The security headers of the pages on `response` (also on the pages the OAuth callbacks
/// answer, outside the pages' router).
pub(crate) fn apply_headers<S: RouterStore, H>(state: &PagesState<S, H>, response: &mut Response) {
    let mut form_action = String::from("'self'");
    for origin in state.return_to.origins() {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    let csp = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
         connect-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    let fixed = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        if !(name == header::CACHE_CONTROL && headers.contains_key(&name)) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::post("/ui/sign-in").header("host", "id.example.com");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn posts_from_other_sites_are_refused_and_null_from_our_forms_passes() {
        assert!(same_origin(&post(&[("origin", "https://id.example.com")])));
        assert!(same_origin(&post(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(
            same_origin(&post(&[])),
            "no browser: the CSRF token decides"
        );
        assert!(!same_origin(&post(&[("origin", "https://evil.example")])));
        assert!(!same_origin(&post(&[
            ("origin", "null"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&post(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&post(&[(
            "origin",
            "https://id.example.com.evil.example"
        )])));
    }

    #[test]
    fn the_csrf_signature_is_bound_to_its_key_label_and_value() {
        let keys = PageKeys::new(&Secret::new("k".repeat(32))).unwrap();
        let other = PageKeys::new(&Secret::new("j".repeat(32))).unwrap();
        let token = keys.sign("csrf", "cookie-value");
        assert!(keys.verify("csrf", "cookie-value", &token));
        assert!(!keys.verify("csrf", "another-cookie", &token));
        assert!(!keys.verify("oauth", "cookie-value", &token));
        assert!(!other.verify("csrf", "cookie-value", &token));
        assert!(!keys.verify("csrf", "cookie-value", ""));
        assert!(PageKeys::new(&Secret::new("short")).is_err());
    }
}
