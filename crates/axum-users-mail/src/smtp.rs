//! Sending over SMTP: the relay's URL (password redacted everywhere), TLS with rustls and an
//! optional extra CA, pooled connections and time-outs.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use axum_users::Secret;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::message::{Mail, MessageError, mailbox};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SmtpSecurity {
    /// `smtp://`: no TLS (a relay on loopback or a private network); default port 25.
    Plain,
    /// `smtp+starttls://`: STARTTLS, required; default port 587.
    StartTls,
    /// `smtps://`: TLS from the first byte; default port 465.
    Tls,
}

/// A relay URL: `smtp://`, `smtp+starttls://` or `smtps://`, with optional `user:password@`
/// (percent-encoded). `Debug` and `Display` show the password as `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    security: SmtpSecurity,
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<Secret>,
}

/// Why an SMTP setting was refused or the mailer could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The URL does not parse or has an unknown scheme.
    #[error("invalid SMTP URL: {0}")]
    Url(String),
    /// Credentials over a plain connection to a host that is not loopback would travel in
    /// clear.
    #[error(
        "smtp:// sends the password in clear: use smtp+starttls:// or smtps:// for {0}, or a relay on loopback"
    )]
    CredentialsInClear(String),
    /// The extra CA file cannot be read or holds no certificate.
    #[error("cannot use the CA file {path}: {reason}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The TLS settings were refused.
    #[error("TLS settings: {0}")]
    Tls(String),
}

impl SmtpUrl {
    /// How the connection is protected.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// The relay's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl FromStr for SmtpUrl {
    type Err = SmtpError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // The error never repeats the text: it may hold the password.
        let url = url::Url::parse(text).map_err(|e| SmtpError::Url(e.to_string()))?;
        let (security, default_port) = match url.scheme() {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            "smtps" => (SmtpSecurity::Tls, 465),
            other => {
                return Err(SmtpError::Url(format!(
                    "unknown scheme {other:?} (smtp, smtp+starttls or smtps)"
                )));
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| SmtpError::Url("no host".into()))?
            .to_owned();
        if url.path() != "" && url.path() != "/" || url.query().is_some() {
            return Err(SmtpError::Url("no path or query expected".into()));
        }
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| SmtpError::Url("bad percent-encoding".into()))
        };
        let user = match url.username() {
            "" => None,
            user => Some(decode(user)?),
        };
        let password = url.password().map(decode).transpose()?.map(Secret::new);
        let parsed = Self {
            security,
            port: url.port().unwrap_or(default_port),
            host,
            user,
            password,
        };
        if parsed.security == SmtpSecurity::Plain && parsed.user.is_some() && !parsed.is_loopback()
        {
            return Err(SmtpError::CredentialsInClear(parsed.host));
        }
        Ok(parsed)
    }
}

fn percent_decode(text: &str) -> Option<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.security {
            SmtpSecurity::Plain => "smtp",
            SmtpSecurity::StartTls => "smtp+starttls",
            SmtpSecurity::Tls => "smtps",
        };
        write!(f, "{scheme}://")?;
        if let Some(user) = &self.user {
            write!(f, "{user}")?;
            if self.password.is_some() {
                f.write_str(":[redacted]")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// Everything the SMTP mailer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SmtpSettings {
    /// The relay.
    pub url: SmtpUrl,
    /// A PEM file of CA certificates trusted besides the platform's (a private relay).
    pub ca_file: Option<PathBuf>,
    /// Longest wait for the relay per SMTP command (connect included).
    pub timeout: Duration,
    /// Most pooled connections to the relay.
    pub max_connections: u32,
}

impl SmtpSettings {
    /// Settings for `url` with a 10 s time-out and at most 4 connections.
    pub fn new(url: SmtpUrl) -> Self {
        Self {
            url,
            ca_file: None,
            timeout: Duration::from_secs(10),
            max_connections: 4,
        }
    }

    /// With an extra CA file.
    #[must_use]
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// With a time-out per command.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Why a message was not sent: worth a retry or not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The relay is down, slow, or answered 4xx: try again later.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The relay refused the message for good (5xx), or the message is malformed.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    /// Whether a later try may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

impl From<MessageError> for SendError {
    fn from(e: MessageError) -> Self {
        SendError::Permanent(e.to_string())
    }
}

/// Sends messages to one relay over a pool of connections.
#[derive(Clone)]
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    url: SmtpUrl,
    from: String,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("url", &self.url)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer sending as `from` (`name <user@host>` or `user@host`) through `settings`.
    /// Connects lazily: a relay that is down now fails the first send, not this call. Call it
    /// inside a Tokio runtime (the pool runs a task).
    ///
    /// # Errors
    /// [`SmtpError`] when the sender is not an address, the CA file is unusable or TLS refuses
    /// the settings.
    pub fn new(settings: &SmtpSettings, from: impl Into<String>) -> Result<Self, SmtpError> {
        let from = from.into();
        mailbox(&from, "sender").map_err(|e| SmtpError::Url(e.to_string()))?;
        let url = &settings.url;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .timeout(Some(settings.timeout))
            .pool_config(
                PoolConfig::new()
                    .max_size(settings.max_connections.max(1))
                    .idle_timeout(Duration::from_secs(60)),
            );
        if url.security != SmtpSecurity::Plain {
            let params = tls_parameters(&url.host, settings.ca_file.as_ref())?;
            builder = builder.tls(match url.security {
                SmtpSecurity::StartTls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        if let Some(user) = &url.user {
            let password = url.password.as_ref().map(|p| p.expose().to_owned());
            builder =
                builder.credentials(Credentials::new(user.clone(), password.unwrap_or_default()));
        }
        Ok(Self {
            transport: builder.build(),
            url: url.clone(),
            from,
        })
    }

    /// The sender address.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// Sends one message.
    ///
    /// # Errors
    /// [`SendError::Transient`] when the relay is unreachable, times out or answers 4xx;
    /// [`SendError::Permanent`] when it answers 5xx or the message is malformed.
    pub async fn send(&self, mail: &Mail) -> Result<(), SendError> {
        let message = mail.to_message(&self.from)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            Err(e) => Err(SendError::Transient(e.to_string())),
        }
    }
}

fn tls_parameters(host: &str, ca_file: Option<&PathBuf>) -> Result<TlsParameters, SmtpError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let ca_error = |reason: String| SmtpError::CaFile {
            path: path.clone(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(ca_error("no PEM certificate in it".into()));
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| ca_error(e.to_string()))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| SmtpError::Tls(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_schemes_and_their_ports() {
        let u: SmtpUrl = "smtp://127.0.0.1:2525".parse().unwrap();
        assert_eq!(
            (u.security(), u.host(), u.port()),
            (SmtpSecurity::Plain, "127.0.0.1", 2525)
        );
        let u: SmtpUrl = "smtp+starttls://mail.example.com".parse().unwrap();
        assert_eq!((u.security(), u.port()), (SmtpSecurity::StartTls, 587));
        let u: SmtpUrl = "smtps://mail.example.com".parse().unwrap();
        assert_eq!((u.security(), u.port()), (SmtpSecurity::Tls, 465));
        assert!("smtpx://h".parse::<SmtpUrl>().is_err());
        assert!("smtp://".parse::<SmtpUrl>().is_err());
        assert!("smtp://h/path".parse::<SmtpUrl>().is_err());
    }

    #[tokio::test]
    async fn the_password_never_shows() {
        let u: SmtpUrl = "smtps://me%40corp:p%40ss+w0rd@mail.example.com:465"
            .parse()
            .unwrap();
        assert_eq!(u.user.as_deref(), Some("me@corp"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss+w0rd"));
        for shown in [u.to_string(), format!("{u:?}")] {
            assert!(!shown.contains("p@ss"), "{shown}");
            assert!(!shown.contains("w0rd"), "{shown}");
            assert!(
                shown.contains("me@corp:[redacted]@mail.example.com:465"),
                "{shown}"
            );
        }
        let settings = SmtpSettings::new(u);
        assert!(!format!("{settings:?}").contains("w0rd"));
        let mailer = SmtpMailer::new(&settings, "a@example.com").unwrap();
        assert!(!format!("{mailer:?}").contains("w0rd"));
    }

    #[test]
    fn a_bad_url_error_does_not_repeat_the_password() {
        let err = "smtps://u:sekr3t@[::1".parse::<SmtpUrl>().unwrap_err();
        assert!(!err.to_string().contains("sekr3t"));
    }

    #[test]
    fn credentials_in_clear_only_to_loopback() {
        assert!("smtp://u:p@127.0.0.1:2525".parse::<SmtpUrl>().is_ok());
        assert!("smtp://u:p@localhost:2525".parse::<SmtpUrl>().is_ok());
        assert!(
            "smtp://mail.example.com".parse::<SmtpUrl>().is_ok(),
            "no credentials"
        );
        assert!(matches!(
            "smtp://u:p@mail.example.com".parse::<SmtpUrl>(),
            Err(SmtpError::CredentialsInClear(_))
        ));
    }

    #[tokio::test]
    async fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let settings =
            SmtpSettings::new("smtps://mail.example.com".parse().unwrap()).with_ca_file(&path);
        assert!(matches!(
            SmtpMailer::new(&settings, "a@example.com"),
            Err(SmtpError::CaFile { .. })
        ));
        let missing = SmtpSettings::new("smtps://mail.example.com".parse().unwrap())
            .with_ca_file(dir.path().join("missing.pem"));
        assert!(SmtpMailer::new(&missing, "a@example.com").is_err());
    }
}
