//! Sending the reset and verification links: to the log (token redacted unless asked for), or
//! as `.eml` files in a folder.

use std::path::PathBuf;

use anyhow::{Context, Result};
use axum_users::Secret;

use crate::config::MailerConfig;

/// One message. No `Debug`: the body carries a live token.
#[derive(Clone)]
pub(crate) struct Mail {
    /// Recipient address.
    pub(crate) to: String,
    /// Subject line.
    pub(crate) subject: String,
    /// Plain-text body.
    pub(crate) body: String,
    /// The token in the body, which the log mailer replaces with `[redacted]`.
    pub(crate) token: Secret,
}

impl Mail {
    /// The body with the token replaced by `[redacted]`: what a log may show.
    fn redacted_body(&self) -> String {
        match self.token.expose() {
            "" => self.body.clone(),
            token => self.body.replace(token, "[redacted]"),
        }
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    config: MailerConfig,
    from: String,
}

impl Mailer {
    /// A mailer for the configured destination.
    pub(crate) fn new(config: MailerConfig, from: String) -> Self {
        Self { config, from }
    }

    /// Sends a message.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub(crate) async fn send(&self, mail: Mail) -> Result<()> {
        match &self.config {
            MailerConfig::Log { tokens } => {
                let body = if *tokens {
                    mail.body.clone()
                } else {
                    mail.redacted_body()
                };
                tracing::info!(to = %mail.to, subject = %mail.subject, "mail not sent (log mailer):\n{body}");
                Ok(())
            }
            MailerConfig::File(dir) => {
                let dir = dir.clone();
                let text = render(&self.from, &mail);
                tokio::task::spawn_blocking(move || write_atomically(dir, text)).await?
            }
        }
    }
}

/// An RFC 5322 message with a plain UTF-8 body.
fn render(from: &str, mail: &Mail) -> String {
    let id = axum_users::random_token(16);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@axum-users>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        to = mail.to,
        subject = mail.subject,
        date = rfc5322_date(axum_users::now_unix()),
        body = mail.body.replace('\n', "\r\n"),
    )
}

/// Writes to a temporary name and renames, so that readers never see half a message.
fn write_atomically(dir: PathBuf, text: String) -> Result<()> {
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the mail folder {}", dir.display()))?;
    let name = format!("{}-{}", axum_users::now_unix(), axum_users::random_token(6));
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write in {}", dir.display()))?;
    std::fs::rename(&tmp, dir.join(format!("{name}.eml")))?;
    Ok(())
}

/// `Sun, 29 Nov 2026 05:06:10 +0000`.
fn rfc5322_date(unix: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_929_257),
            "Sun, 29 Nov 2026 05:14:17 +0000"
        );
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }

    #[tokio::test]
    async fn file_mailer_writes_one_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(
            MailerConfig::File(dir.path().to_path_buf()),
            "me <me@example.com>".into(),
        );
        let mail = Mail {
            to: "a@example.com".into(),
            subject: "Hi".into(),
            body: "line1\nline2 tok3n".into(),
            token: Secret::new("tok3n"),
        };
        mailer.send(mail.clone()).await.unwrap();
        mailer.send(mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            text.starts_with("From: me <me@example.com>\r\nTo: a@example.com\r\nSubject: Hi\r\n")
        );
        assert!(
            text.contains("\r\n\r\nline1\r\nline2 tok3n"),
            "a delivery keeps the token"
        );
    }

    #[test]
    fn the_log_shows_the_link_without_its_token() {
        let mail = Mail {
            to: "a@example.com".into(),
            subject: "Reset".into(),
            body: "https://app/reset-password?token=abc.def.ghi here".into(),
            token: Secret::new("abc.def.ghi"),
        };
        assert_eq!(
            mail.redacted_body(),
            "https://app/reset-password?token=[redacted] here"
        );
    }
}
