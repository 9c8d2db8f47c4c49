//! The breached-password check: a Pwned-Passwords-style k-anonymity range API. Only the first
//! five hex characters of the password's SHA-1 leave the process (`GET {url}/{prefix}`, with
//! `Add-Padding: true` so the answer's size says nothing either); the answer lists
//! `SUFFIX:COUNT` lines, padding lines having a count of 0. A time-out or an outage never
//! blocks a password change: the check fails open with a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::hooks::InvalidPassword;

/// The reason a breached password is refused with.
pub(crate) const BREACHED_REASON: &str = "This password has appeared in a data breach";

/// A client of the range API.
#[derive(Debug, Clone)]
pub struct BreachedPasswords {
    url: String,
    threshold: u64,
    client: reqwest::Client,
    outages: Arc<AtomicU64>,
}

impl BreachedPasswords {
    /// A client of the range API at `url` (e.g. `https://api.pwnedpasswords.com/range`),
    /// refusing passwords seen at least `threshold` times (at least 1), waiting at most
    /// `timeout` (2 s is a good default).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        url: impl Into<String>,
        threshold: u64,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("axum-users/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            url: url.into().trim_end_matches('/').to_owned(),
            threshold: threshold.max(1),
            client,
            outages: Arc::default(),
        })
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
            Ok(count) if count >= self.threshold => Err(InvalidPassword::new(BREACHED_REASON)),
            Ok(_) => Ok(()),
            Err(e) => {
                self.outages.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "breached-password check failed; the password is accepted");
                Ok(())
            }
        }
    }

    async fn count(&self, prefix: &str, suffix: &str) -> Result<u64, reqwest::Error> {
        let body = self
            .client
            .get(format!("{}/{prefix}", self.url))
            .header("Add-Padding", "true")
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(count_in(&body, suffix))
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

    #[test]
    fn the_digest_is_upper_hex() {
        let digest = hex_upper(&Sha1::digest(b"password"));
        assert_eq!(digest, "5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8");
    }
}
