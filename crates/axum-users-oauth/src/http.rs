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

/// The most a provider's answer may hold: token, profile, discovery and JWKS answers are a few
/// KiB, and a hostile or broken provider must not make us buffer more.
pub(crate) const MAX_BODY: usize = 1 << 20;

/// Reads a provider's answer, refusing one larger than [`MAX_BODY`] (by its `Content-Length`, or
/// as it arrives) with [`OAuthError::InvalidResponse`].
pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, OAuthError> {
    let too_large = || OAuthError::InvalidResponse(format!("answer larger than {MAX_BODY} bytes"));
    if response
        .content_length()
        .is_some_and(|length| length > MAX_BODY as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
            let body = read_body(response).await?;
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

    /// Serves one answer of `size` bytes, with or without a `Content-Length`.
    fn serve_once(size: usize, with_length: bool) -> String {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request);
            let head = if with_length {
                format!("HTTP/1.1 200 OK\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n")
            } else {
                "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_owned()
            };
            let _ = socket.write_all(head.as_bytes());
            let _ = socket.write_all(&vec![b'a'; size]);
        });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn answers_over_a_mebibyte_are_refused() {
        let client = HttpConfig::default().build_client().unwrap();
        for with_length in [true, false] {
            let url = serve_once(MAX_BODY + 1, with_length);
            let response = client.get(url).send().await.unwrap();
            assert!(
                matches!(
                    read_body(response).await,
                    Err(OAuthError::InvalidResponse(_))
                ),
                "with_length: {with_length}"
            );
            let url = serve_once(1000, with_length);
            let response = client.get(url).send().await.unwrap();
            assert_eq!(read_body(response).await.unwrap().len(), 1000);
        }
    }

    #[test]
    fn client_builds_with_rustls() {
        HttpConfig::default()
            .with_timeout(Duration::from_secs(1))
            .build_client()
            .expect("client builds");
    }
}
