//! Links in mail: a front-end URL template with a `{token}` placeholder.

use std::fmt;
use std::str::FromStr;

/// A link template such as `https://app.example.com/reset?token={token}`: the token is
/// percent-encoded into the placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkTemplate(String);

/// Why a link template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkTemplateError {
    /// The template has no `{token}`, so the link could not carry the token.
    #[error("the link template has no {{token}} placeholder")]
    NoPlaceholder,
    /// The template is not an absolute `http` or `https` URL.
    #[error("the link template is not an absolute http(s) URL")]
    NotHttp,
}

impl LinkTemplate {
    /// Checks and wraps a template.
    ///
    /// # Errors
    /// [`LinkTemplateError`] when it has no `{token}` or is not an `http(s)` URL.
    pub fn new(template: impl Into<String>) -> Result<Self, LinkTemplateError> {
        let template = template.into();
        if !template.contains("{token}") {
            return Err(LinkTemplateError::NoPlaceholder);
        }
        let probe = template.replace("{token}", "t");
        match url::Url::parse(&probe) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => return Err(LinkTemplateError::NotHttp),
        }
        Ok(Self(template))
    }

    /// The default link under `base`: `{base}{path}?token={token}`.
    ///
    /// # Errors
    /// [`LinkTemplateError::NotHttp`] when `base` is not an `http(s)` URL.
    pub fn under(base: &str, path: &str) -> Result<Self, LinkTemplateError> {
        Self::new(format!(
            "{}{path}?token={{token}}",
            base.trim_end_matches('/')
        ))
    }

    /// The link for `token`, percent-encoded (tokens are URL-safe already; this guards the
    /// templates of applications whose tokens are not).
    pub fn link(&self, token: &str) -> String {
        let encoded: String =
            url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>();
        self.0.replace("{token}", &encoded)
    }
}

impl FromStr for LinkTemplate {
    type Err = LinkTemplateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

impl fmt::Debug for LinkTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkTemplate({:?})", self.0)
    }
}

impl fmt::Display for LinkTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_into_the_placeholder() {
        let t = LinkTemplate::new("https://app.example.com/#/reset/{token}?x=1").unwrap();
        assert_eq!(
            t.link("abc.def-g_h"),
            "https://app.example.com/#/reset/abc.def-g_h?x=1"
        );
        assert_eq!(
            t.link("a b&c"),
            "https://app.example.com/#/reset/a+b%26c?x=1"
        );
    }

    #[test]
    fn a_template_needs_a_placeholder_and_http() {
        assert_eq!(
            LinkTemplate::new("https://app.example.com/reset"),
            Err(LinkTemplateError::NoPlaceholder)
        );
        assert_eq!(
            LinkTemplate::new("javascript:{token}"),
            Err(LinkTemplateError::NotHttp)
        );
        assert_eq!(
            LinkTemplate::new("/reset?token={token}"),
            Err(LinkTemplateError::NotHttp)
        );
    }

    #[test]
    fn the_default_is_a_route_under_the_base() {
        let t = LinkTemplate::under("https://api.example.com/", "/verify").unwrap();
        assert_eq!(t.link("tok"), "https://api.example.com/verify?token=tok");
    }
}
