//! Where the browser may go after a sign-in: the pages' own paths, or an allowed origin.
//! Anything else (another host, a scheme-relative `//evil`, `/\evil`, `https:evil`, their
//! percent-encoded forms, control characters) is ignored: never an open redirect.

use percent_encoding::percent_decode_str;

use crate::PagesError;

/// The `return_to` allow-list.
#[derive(Debug, Clone)]
pub struct ReturnToPolicy {
    origins: Vec<String>,
    default: String,
}

impl ReturnToPolicy {
    /// The policy of pages under `prefix` that may also send browsers to `origins`.
    ///
    /// # Errors
    /// [`PagesError::InvalidOrigin`] for an origin that is not `http(s)://host[:port]`.
    pub fn new(prefix: &str, origins: &[String]) -> Result<Self, PagesError> {
        let mut checked = Vec::new();
        for origin in origins {
            let trimmed = origin.trim().trim_end_matches('/');
            let url =
                url::Url::parse(trimmed).map_err(|_| PagesError::InvalidOrigin(origin.clone()))?;
            let serialized = url.origin().ascii_serialization();
            let http = matches!(url.scheme(), "http" | "https");
            if !http || serialized != trimmed.to_ascii_lowercase() {
                return Err(PagesError::InvalidOrigin(origin.clone()));
            }
            checked.push(serialized);
        }
        Ok(Self {
            origins: checked,
            default: format!("{prefix}/account"),
        })
    }

    /// The origins, as `form-action` of the pages' CSP needs them.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Where to go after a sign-in.
    pub fn target(&self, requested: Option<&str>) -> String {
        requested
            .and_then(|r| self.allowed(r))
            .unwrap_or_else(|| self.default.clone())
    }

    /// `requested` when it is allowed, else `None`.
    pub fn allowed(&self, requested: &str) -> Option<String> {
        if requested.is_empty() || requested.len() > 2048 {
            return None;
        }
        // Checked as written and once decoded: a browser or a proxy may decode it later.
        let decoded = percent_decode_str(requested).decode_utf8().ok()?;
        for form in [requested, decoded.as_ref()] {
            if form
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
            {
                return None;
            }
        }
        if is_local_path(requested) && is_local_path(&decoded) {
            return Some(requested.to_owned());
        }
        let url = url::Url::parse(requested).ok()?;
        if !matches!(url.scheme(), "http" | "https") || !url.username().is_empty() {
            return None;
        }
        // `https:evil` parses as https://evil/: its origin decides, as for any URL.
        let origin = url.origin().ascii_serialization();
        let written = requested.to_ascii_lowercase();
        let spelled_out = written.starts_with(&format!("{origin}/")) || written == origin;
        (spelled_out && self.origins.contains(&origin)).then(|| url.to_string())
    }
}

/// `/path`, but not `//host` (scheme-relative).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/') && !path.starts_with("//")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> ReturnToPolicy {
        ReturnToPolicy::new("/ui", &["https://app.example.com".into()]).unwrap()
    }

    #[test]
    fn only_local_paths_and_allowed_origins_pass() {
        let p = policy();
        assert_eq!(p.target(None), "/ui/account");
        assert_eq!(p.target(Some("/ui/account?tab=1")), "/ui/account?tab=1");
        assert_eq!(
            p.target(Some("https://app.example.com/welcome")),
            "https://app.example.com/welcome"
        );
        assert_eq!(
            p.target(Some("https://app.example.com")),
            "https://app.example.com/"
        );
        for evil in [
            "//evil.example",
            "//evil.example/ui",
            "/\\evil.example",
            "\\\\evil.example",
            "https:evil.example",
            "https:/evil.example",
            "https:app.example.com.evil.example",
            "http://app.example.com/",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "https://user@app.example.com/",
            "%2F%2Fevil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "%2f%5cevil.example",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/ui/\nLocation: https://evil.example",
            " //evil.example",
            "/\t/evil.example",
            "",
        ] {
            assert_eq!(
                p.target(Some(evil)),
                "/ui/account",
                "{evil:?} must be ignored"
            );
        }
    }

    #[test]
    fn origins_must_be_bare_http_origins() {
        for bad in [
            "app.example.com",
            "https://app.example.com/path",
            "ftp://x.example",
            "https://",
        ] {
            assert!(ReturnToPolicy::new("/ui", &[bad.into()]).is_err(), "{bad}");
        }
        assert!(ReturnToPolicy::new("/ui", &["http://localhost:3000/".into()]).is_ok());
    }
}
