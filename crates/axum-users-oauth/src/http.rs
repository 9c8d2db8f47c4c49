//! The HTTP client every provider uses: rustls, no redirects followed, bounded time.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::OAuthError;

/// HTTP settings of a provider client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Limit for establishing the TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request, from connecting to the end of the body.
    pub timeout: Duration,
    /// The `User-Agent` header (GitHub rejects requests without one).
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(15),
            user_agent: concat!("axum-users-oauth/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the total request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the `User-Agent` header.
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Builds the client. Redirects are never followed: an OAuth client that follows them can
    /// be steered to internal addresses (SSRF) or leak credentials to another host.
    ///
    /// # Errors
    /// [`OAuthError::InvalidConfig`] if the TLS configuration or the client cannot be built.
    pub fn build_client(&self) -> Result<reqwest::Client, OAuthError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout)
            .user_agent(self.user_agent.clone())
            .build()
            .map_err(|error| OAuthError::InvalidConfig(format!("HTTP client: {error}")))
    }
}

/// Our reqwest client as `openidconnect`'s HTTP client (discovery and JWKS), so those requests
/// get the same rules: no redirects followed, time-outs, rustls, and errors without URLs.
#[derive(Debug, Clone)]
pub(crate) struct OidcHttp(pub(crate) reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for OidcHttp {
    type Error = OAuthError;
    type Future =
        Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, OAuthError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let response = self.0.execute(request).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?.to_vec();
            let mut converted = openidconnect::HttpResponse::new(body);
            *converted.status_mut() = status;
            *converted.headers_mut() = headers;
            Ok(converted)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_bounded() {
        let config = HttpConfig::default();
        assert!(config.connect_timeout <= config.timeout);
        assert!(config.user_agent.starts_with("axum-users-oauth/"));
    }

    #[test]
    fn client_builds_with_rustls() {
        HttpConfig::default()
            .with_timeout(Duration::from_secs(1))
            .build_client()
            .expect("client builds");
    }
}
