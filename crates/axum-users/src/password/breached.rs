//! The breached-password check: a Pwned-Passwords-style k-anonymity range API. Only the first
//! five hex characters of the password's SHA-1 leave the process (`GET {url}/{prefix}`, with
//! `Add-Padding: true` so the answer's size says nothing either); the answer lists
//! `SUFFIX:COUNT` lines, padding lines having a count of 0. A time-out or an outage never
//! blocks a password change: the check fails open with a warning. So do an answer over
//! [`MAX_ANSWER`] bytes (read in chunks, never whole) and a check beyond the concurrent bound
//! (the range API cannot make password changes queue). Plain `http://` is refused except to
//! a loopback address: the prefix and the answer would travel in clear.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::hooks::InvalidPassword;
use crate::password::PasswordRefusal;

/// The largest range answer read (a padded real one is about 40 KB).
pub(crate) const MAX_ANSWER: usize = 64 * 1024;

/// Checks in flight at most, by default; beyond them a check fails open at once.
const DEFAULT_CONCURRENT: usize = 32;

/// A breached-password check that cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BreachedSetupError {
    /// The URL is not `https://`, nor `http://` to a loopback address.
    #[error("`{0}` must be https:// (http:// only to a loopback address)")]
    NotHttps(String),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Why one check failed open.
#[derive(Debug, thiserror::Error)]
enum Unanswered {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("the answer is over {MAX_ANSWER} bytes")]
    TooLarge,
    #[error("{DEFAULT_CONCURRENT} or more checks are in flight")]
    Busy,
}

/// A client of the range API.
#[derive(Debug, Clone)]
pub struct BreachedPasswords {
    url: String,
    threshold: u64,
    client: reqwest::Client,
    outages: Arc<AtomicU64>,
    in_flight: Arc<tokio::sync::Semaphore>,
}

impl BreachedPasswords {
    /// A client of the range API at `url` (e.g. `https://api.pwnedpasswords.com/range`),
    /// refusing passwords seen at least `threshold` times (at least 1), waiting at most
    /// `timeout` (2 s is a good default).
    ///
    /// # Errors
    /// [`BreachedSetupError`]: a URL neither `https://` nor loopback `http://`, or a client
    /// that cannot be built.
    pub fn new(
        url: impl Into<String>,
        threshold: u64,
        timeout: Duration,
    ) -> Result<Self, BreachedSetupError> {
        let url: String = url.into();
        if !secure_enough(&url) {
            return Err(BreachedSetupError::NotHttps(url));
        }
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("axum-users/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            threshold: threshold.max(1),
            client,
            outages: Arc::default(),
            in_flight: Arc::new(tokio::sync::Semaphore::new(DEFAULT_CONCURRENT)),
        })
    }

    /// At most `checks` in flight (default 32); beyond them a check fails open at once.
    #[must_use]
    pub fn with_max_concurrent(mut self, checks: usize) -> Self {
        self.in_flight = Arc::new(tokio::sync::Semaphore::new(checks.max(1)));
        self
    }

    /// How many checks failed open (time-out, outage, unreadable answer) so far: a metric.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Refuses a password seen in breaches at least `threshold` times.
    ///
    /// # Errors
    /// An [`InvalidPassword`] with the breach reason; never for an outage.
    pub async fn check(&self, password: &str) -> Result<(), InvalidPassword> {
        let digest = hex_upper(&Sha1::digest(password.as_bytes()));
        let (prefix, suffix) = digest.split_at(5);
        match self.count(prefix, suffix).await {
            Ok(count) if count >= self.threshold => Err(PasswordRefusal::Breached.into()),
            Ok(_) => Ok(()),
            Err(e) => {
                self.outages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "breached-password check failed; the password is accepted");
                Ok(())
            }
        }
    }

    async fn count(&self, prefix: &str, suffix: &str) -> Result<u64, Unanswered> {
        let _permit = self.in_flight.try_acquire().map_err(|_| Unanswered::Busy)?;
        let mut response = self
            .client
            .get(format!("{}/{prefix}", self.url))
            .header("Add-Padding", "true")
            .send()
            .await?
            .error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_ANSWER {
                return Err(Unanswered::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(count_in(&String::from_utf8_lossy(&body), suffix))
    }
}

/// `https://`, or `http://` to a loopback address (a local mirror, a test).
fn secure_enough(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "https" => true,
        "http" => parsed.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }),
        _ => false,
    }
}

/// The count of `suffix` in a range answer (0 when absent or a padding line).
fn count_in(body: &str, suffix: &str) -> u64 {
    body.lines()
        .filter_map(|line| line.trim().split_once(':'))
        .find(|(s, _)| s.eq_ignore_ascii_case(suffix))
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or(0)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_and_padding_counts_nothing() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n\
                    1E4C9B93F3F0682250B6CF8331B7EE68FD8:3861493\r\n\
                    FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n";
        assert_eq!(
            count_in(body, "1E4C9B93F3F0682250B6CF8331B7EE68FD8"),
            3_861_493
        );
        assert_eq!(
            count_in(body, "1e4c9b93f3f0682250b6cf8331b7ee68fd8"),
            3_861_493
        );
        assert_eq!(count_in(body, "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"), 0);
        assert_eq!(count_in(body, "0000000000000000000000000000000000A"), 0);
    }

    /// A range API on loopback answering every prefix with `answer` after `delay`.
    async fn range_api(status: u16, answer: String, delay: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/range", listener.local_addr().unwrap());
        let app = axum::Router::new().route(
            "/range/{prefix}",
            axum::routing::get(move || {
                let answer = answer.clone();
                async move {
                    tokio::time::sleep(delay).await;
                    (http::StatusCode::from_u16(status).unwrap(), answer)
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    const PASSWORD: &str = "password";
    const SUFFIX: &str = "1E4C9B93F3F0682250B6CF8331B7EE68FD8";

    fn check(url: &str) -> BreachedPasswords {
        BreachedPasswords::new(url, 1, Duration::from_secs(2)).unwrap()
    }

    #[tokio::test]
    async fn a_listed_password_is_refused() {
        let url = range_api(200, format!("{SUFFIX}:7\r\n"), Duration::ZERO).await;
        assert!(check(&url).check(PASSWORD).await.is_err());
    }

    #[tokio::test]
    async fn an_oversized_answer_an_error_status_or_a_refused_connection_fail_open() {
        // The listed suffix after 100 KB of padding: never read.
        let padding = "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n".repeat(2800);
        let url = range_api(200, format!("{padding}{SUFFIX}:7\r\n"), Duration::ZERO).await;
        let oversized = check(&url);
        assert!(oversized.check(PASSWORD).await.is_ok());
        assert_eq!(oversized.outages(), 1);
        let url = range_api(503, format!("{SUFFIX}:7\r\n"), Duration::ZERO).await;
        let failing = check(&url);
        assert!(failing.check(PASSWORD).await.is_ok());
        assert_eq!(failing.outages(), 1);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/range", closed.local_addr().unwrap());
        drop(closed);
        let refused = check(&url);
        assert!(refused.check(PASSWORD).await.is_ok());
        assert_eq!(refused.outages(), 1);
    }

    #[tokio::test]
    async fn checks_beyond_the_bound_fail_open_at_once() {
        let url = range_api(200, format!("{SUFFIX}:7\r\n"), Duration::from_millis(500)).await;
        let bounded = check(&url).with_max_concurrent(1);
        let slow = tokio::spawn({
            let bounded = bounded.clone();
            async move { bounded.check(PASSWORD).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        assert!(
            bounded.check(PASSWORD).await.is_ok(),
            "over the bound: open"
        );
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "and at once"
        );
        assert!(
            slow.await.unwrap().is_err(),
            "the one in flight still refuses"
        );
        assert_eq!(bounded.outages(), 1);
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let new = |url: &str| BreachedPasswords::new(url, 1, Duration::from_secs(1));
        assert!(matches!(
            new("http://api.pwnedpasswords.com/range"),
            Err(BreachedSetupError::NotHttps(_))
        ));
        assert!(new("ftp://localhost/range").is_err());
        for fine in [
            "https://api.pwnedpasswords.com/range",
            "http://127.0.0.1:8080/range",
            "http://[::1]/range",
            "http://localhost/range",
        ] {
            assert!(new(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn the_digest_is_upper_hex() {
        let digest = hex_upper(&Sha1::digest(b"password"));
        assert_eq!(digest, "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }
}
