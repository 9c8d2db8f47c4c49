//! Sending mail: to the log (token redacted unless asked for), as `.eml` files in a folder, or
//! to an SMTP relay.

use std::path::PathBuf;

use anyhow::{Context, Result};
use axum_users_mail::{Mail, SendError, SmtpMailer};

use crate::config::MailerConfig;
use crate::mail_config::MailSettings;

/// Where messages go.
#[derive(Debug, Clone)]
enum Destination {
    Log { tokens: bool },
    File(PathBuf),
    Smtp(SmtpMailer),
}

/// Where messages go, and from whom.
#[derive(Debug, Clone)]
pub(crate) struct Mailer {
    destination: Destination,
    from: String,
}

impl Mailer {
    /// A mailer for the configured destination.
    ///
    /// # Errors
    /// When the SMTP settings are unusable (sender address, CA file).
    pub(crate) fn new(
        config: &MailerConfig,
        from: String,
        settings: &MailSettings,
    ) -> Result<Self> {
        let destination = match config {
            MailerConfig::Log { tokens } => Destination::Log { tokens: *tokens },
            MailerConfig::File(dir) => Destination::File(dir.clone()),
            MailerConfig::Smtp(url) => {
                let smtp = settings
                    .smtp
                    .clone()
                    .unwrap_or_else(|| axum_users_mail::SmtpSettings::new(url.clone()));
                Destination::Smtp(
                    SmtpMailer::new(&smtp, from.clone()).context("invalid SMTP mailer settings")?,
                )
            }
        };
        Ok(Self { destination, from })
    }

    /// Sends a message.
    ///
    /// # Errors
    /// [`SendError::Transient`] when the relay is unreachable or the file cannot be written,
    /// [`SendError::Permanent`] when the relay or the message format refuses it.
    pub(crate) async fn send(&self, mail: &Mail) -> Result<(), SendError> {
        match &self.destination {
            Destination::Log { tokens } => {
                let body = if *tokens {
                    mail.content.text.clone()
                } else {
                    mail.redacted_text()
                };
                tracing::info!(to = %mail.to, subject = %mail.content.subject, "mail not sent (log mailer):\n{body}");
                Ok(())
            }
            Destination::File(dir) => {
                let bytes = mail.to_rfc5322(&self.from)?;
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || write_atomically(dir, bytes))
                    .await
                    .map_err(|e| SendError::Transient(e.to_string()))?
                    .map_err(|e| SendError::Transient(format!("{e:#}")))
            }
            Destination::Smtp(smtp) => smtp.send(mail).await,
        }
    }
}

impl axum_users_mail::Deliver for Mailer {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        self.send(mail).await
    }
}

/// The running outbox worker of this node.
pub(crate) struct MailWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MailWorker {
    /// Stops the worker after the message it is sending, if any (a message it holds and has not
    /// sent is taken again by a worker once its lease runs out).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the worker that sends what the outbox holds, through the configured mailer.
///
/// # Errors
/// When the mailer's settings are unusable.
pub(crate) fn start_worker(
    config: &crate::config::Config,
    outbox: &axum_users_mail::Outbox<crate::app::Store>,
) -> Result<MailWorker> {
    let mailer = Mailer::new(&config.mailer, config.mail_from.clone(), &config.mail)?;
    let worker = outbox.worker(mailer, config.mail.retry);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    Ok(MailWorker { stop, task })
}

/// Writes to a temporary name and renames, so that readers never see half a message.
fn write_atomically(dir: PathBuf, bytes: Vec<u8>) -> Result<()> {
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the mail folder {}", dir.display()))?;
    let name = format!("{}-{}", axum_users::now_unix(), axum_users::random_token(6));
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write in {}", dir.display()))?;
    std::fs::rename(&tmp, dir.join(format!("{name}.eml")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum_users::Secret;
    use axum_users_mail::{LinkTemplate, RenderedMail};

    fn settings() -> MailSettings {
        let link = LinkTemplate::new("https://app/x?token={token}").unwrap();
        MailSettings {
            smtp: None,
            templates: None,
            app_name: "App".into(),
            reset_url: link.clone(),
            verify_url: link.clone(),
            email_change_url: link,
            retry: axum_users_mail::RetryPolicy::default(),
            notices: crate::mail_config::Notices::default(),
        }
    }

    #[tokio::test]
    async fn file_mailer_writes_one_eml_per_message() {
        let dir = tempfile::tempdir().unwrap();
        let mailer = Mailer::new(
            &MailerConfig::File(dir.path().to_path_buf()),
            "me <me@example.com>".into(),
            &settings(),
        )
        .unwrap();
        let content = RenderedMail {
            subject: "Hi".into(),
            text: "line1\nline2 tok3n\n".into(),
            html: "<p>tok3n</p>".into(),
        };
        let mail = Mail::new("a@example.com", content, Secret::new("tok3n"));
        mailer.send(&mail).await.unwrap();
        mailer.send(&mail).await.unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 2);
        let text = std::fs::read_to_string(&files[0]).unwrap();
        assert!(text.contains("From: me <me@example.com>\r\n"), "{text}");
        assert!(text.contains("\r\nTo: a@example.com\r\n"), "{text}");
        assert!(text.contains("\r\nSubject: Hi\r\n"), "{text}");
        assert!(
            text.contains("line1\r\nline2 tok3n"),
            "a delivery keeps the token"
        );
    }
}
