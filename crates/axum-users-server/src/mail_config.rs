//! The `[mail]` table: SMTP details, templates and the links in mail. Declared here, flattened
//! into [`crate::config::Settings`], and checked once by [`MailSettings::resolve`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use axum_users_mail::{LinkTemplate, SmtpSettings, SmtpUrl, Templates};
use clap::Args;
use serde::Deserialize;

/// The `[mail]` table.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MailKeys {
    /// PEM file of CA certificates trusted besides the system's, for a private SMTP relay
    #[arg(
        id = "mail.smtp_ca_file",
        long = "mail-smtp-ca-file",
        global = true,
        env = "AXUM_USERS_SMTP_CA_FILE",
        value_name = "FILE"
    )]
    smtp_ca_file: Option<PathBuf>,
    /// Longest wait for the SMTP relay per command, connecting included [default: 10]
    #[arg(
        id = "mail.smtp_timeout_seconds",
        long = "mail-smtp-timeout-seconds",
        global = true,
        env = "AXUM_USERS_SMTP_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    smtp_timeout_seconds: Option<f64>,
    /// Most pooled connections to the SMTP relay [default: 4]
    #[arg(
        id = "mail.smtp_max_connections",
        long = "mail-smtp-max-connections",
        global = true,
        env = "AXUM_USERS_SMTP_MAX_CONNECTIONS",
        value_name = "N"
    )]
    smtp_max_connections: Option<u32>,
    /// Folder of templates replacing the shipped ones by file name (see docs/mail.md)
    #[arg(
        id = "mail.templates",
        long = "mail-templates",
        global = true,
        env = "AXUM_USERS_MAIL_TEMPLATES",
        value_name = "DIR"
    )]
    templates: Option<PathBuf>,
    /// The application's name in mail [default: axum-users]
    #[arg(
        id = "mail.app_name",
        long = "mail-app-name",
        global = true,
        env = "AXUM_USERS_APP_NAME",
        value_name = "NAME"
    )]
    app_name: Option<String>,
    /// Link of the reset mail, with {token} [default: <frontend_url>/reset-password?token={token}; without a frontend_url and with the pages on: <public_url><ui_prefix>/reset-password?token={token}]
    #[arg(
        id = "mail.reset_url",
        long = "mail-reset-url",
        global = true,
        env = "AXUM_USERS_RESET_URL",
        value_name = "URL"
    )]
    reset_url: Option<String>,
    /// Link of the verification mail, with {token} [default: <frontend_url>/verify?token={token}; without a frontend_url and with the pages on: <public_url><ui_prefix>/verify?token={token}]
    #[arg(
        id = "mail.verify_url",
        long = "mail-verify-url",
        global = true,
        env = "AXUM_USERS_VERIFY_URL",
        value_name = "URL"
    )]
    verify_url: Option<String>,
    /// Attempts to send a message before it is marked failed [default: 10]
    #[arg(
        id = "mail.max_attempts",
        long = "mail-max-attempts",
        global = true,
        env = "AXUM_USERS_MAIL_MAX_ATTEMPTS",
        value_name = "N"
    )]
    max_attempts: Option<u32>,
    /// Wait after a message's first failed attempt, doubled after each further one [default: 1]
    #[arg(
        id = "mail.retry_base_seconds",
        long = "mail-retry-base-seconds",
        global = true,
        env = "AXUM_USERS_MAIL_RETRY_BASE_SECONDS",
        value_name = "S"
    )]
    retry_base_seconds: Option<f64>,
    /// true: a notice to the user's address when their password is changed or reset [default: true]
    #[arg(
        id = "mail.notify_password_changed",
        long = "mail-notify-password-changed",
        global = true,
        env = "AXUM_USERS_MAIL_NOTIFY_PASSWORD_CHANGED",
        value_name = "BOOL"
    )]
    notify_password_changed: Option<bool>,
    /// true: a notice to the old address when the account's e-mail address is being changed and when it was changed [default: true]
    #[arg(
        id = "mail.notify_email_changed",
        long = "mail-notify-email-changed",
        global = true,
        env = "AXUM_USERS_MAIL_NOTIFY_EMAIL_CHANGED",
        value_name = "BOOL"
    )]
    notify_email_changed: Option<bool>,
    /// true: a notice to the user's address when a second factor is added to or removed from their account [default: true]
    #[arg(
        id = "mail.notify_second_factor",
        long = "mail-notify-second-factor",
        global = true,
        env = "AXUM_USERS_MAIL_NOTIFY_SECOND_FACTOR",
        value_name = "BOOL"
    )]
    notify_second_factor: Option<bool>,
    /// true: a notice to the user's address when they sign in from a device (user agent) none of their live sessions has, once they had signed in before [default: true]
    #[arg(
        id = "mail.notify_new_device",
        long = "mail-notify-new-device",
        global = true,
        env = "AXUM_USERS_MAIL_NOTIFY_NEW_DEVICE",
        value_name = "BOOL"
    )]
    notify_new_device: Option<bool>,
    /// Link of the e-mail change confirmation, with {token} [default: <frontend_url>/confirm-email-change?token={token}; without a frontend_url and with the pages on: <public_url><ui_prefix>/confirm-email-change?token={token}]
    #[arg(
        id = "mail.email_change_url",
        long = "mail-email-change-url",
        global = true,
        env = "AXUM_USERS_EMAIL_CHANGE_URL",
        value_name = "URL"
    )]
    email_change_url: Option<String>,
}

/// The mail settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct MailSettings {
    /// SMTP details, when the mailer is an SMTP URL.
    pub(crate) smtp: Option<SmtpSettings>,
    /// The override folder of the templates.
    pub(crate) templates: Option<PathBuf>,
    /// The application's name in mail.
    pub(crate) app_name: String,
    /// Link of the reset mail.
    pub(crate) reset_url: LinkTemplate,
    /// Link of the verification mail.
    pub(crate) verify_url: LinkTemplate,
    /// Link of the e-mail change confirmation.
    pub(crate) email_change_url: LinkTemplate,
    /// Retries of the outbox worker.
    pub(crate) retry: axum_users_mail::RetryPolicy,
    /// Which security notices are mailed.
    pub(crate) notices: Notices,
}

/// The security notices, each toggleable: a notice goes to the account's address (the old one
/// for an e-mail change) so that a takeover does not go unnoticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notices {
    /// After a password change (`PATCH` with a password) or a reset.
    pub(crate) password_changed: bool,
    /// To the old address, when a change of address is requested and when it is applied.
    pub(crate) email_changed: bool,
    /// When a second factor is added or removed (by the user or a superuser).
    pub(crate) second_factor: bool,
    /// After a sign-in from a device none of the user's live sessions has.
    pub(crate) new_device: bool,
}

impl Default for Notices {
    fn default() -> Self {
        Self {
            password_changed: true,
            email_changed: true,
            second_factor: true,
            new_device: true,
        }
    }
}

impl MailSettings {
    /// Checks the `[mail]` keys: `smtp` is the mailer's URL when it is an SMTP one, `mail_from_set`
    /// whether a sender was configured (required with SMTP).
    ///
    /// # Errors
    /// A message naming the key whose value is wrong.
    pub(crate) fn resolve(
        keys: MailKeys,
        smtp: Option<&SmtpUrl>,
        mail_from_set: bool,
        frontend_url: &str,
    ) -> Result<Self> {
        if smtp.is_some() && !mail_from_set {
            bail!(
                "missing mail_from (AXUM_USERS_MAIL_FROM): an SMTP mailer needs the sender's \
                 address, e.g. `Example <no-reply@example.com>`"
            );
        }
        let retry = retry_policy(&keys)?;
        let link = |value: Option<String>, id: &str, env: &str, path: &str| {
            match value {
                Some(v) => LinkTemplate::new(v),
                None => LinkTemplate::under(frontend_url, path),
            }
            .map_err(|e| anyhow::anyhow!("invalid value for {id} ({env}): {e}"))
        };
        let reset_url = link(
            keys.reset_url,
            "mail.reset_url",
            "AXUM_USERS_RESET_URL",
            "/reset-password",
        )?;
        let verify_url = link(
            keys.verify_url,
            "mail.verify_url",
            "AXUM_USERS_VERIFY_URL",
            "/verify",
        )?;
        let email_change_url = link(
            keys.email_change_url,
            "mail.email_change_url",
            "AXUM_USERS_EMAIL_CHANGE_URL",
            "/confirm-email-change",
        )?;
        if let Some(dir) = &keys.templates {
            if !dir.is_dir() {
                bail!(
                    "invalid value for mail.templates (AXUM_USERS_MAIL_TEMPLATES): {} is not a folder",
                    dir.display()
                );
            }
            Templates::with_overrides(dir).map_err(|e| {
                anyhow::anyhow!("invalid value for mail.templates (AXUM_USERS_MAIL_TEMPLATES): {e}")
            })?;
        }
        let timeout = keys.smtp_timeout_seconds.unwrap_or(10.0);
        if !(0.001..=3600.0).contains(&timeout) {
            bail!(
                "invalid value for mail.smtp_timeout_seconds (AXUM_USERS_SMTP_TIMEOUT_SECONDS): \
                 between 0.001 and 3600 seconds"
            );
        }
        let max_connections = keys.smtp_max_connections.unwrap_or(4);
        if max_connections == 0 {
            bail!(
                "invalid value for mail.smtp_max_connections (AXUM_USERS_SMTP_MAX_CONNECTIONS): at least 1"
            );
        }
        if let Some(ca) = &keys.smtp_ca_file {
            let pem = std::fs::read_to_string(ca).map_err(|e| {
                anyhow::anyhow!(
                    "invalid value for mail.smtp_ca_file (AXUM_USERS_SMTP_CA_FILE): cannot read {}: {e}",
                    ca.display()
                )
            })?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                bail!(
                    "invalid value for mail.smtp_ca_file (AXUM_USERS_SMTP_CA_FILE): no PEM certificate in {}",
                    ca.display()
                );
            }
        }
        let smtp = smtp.map(|url| {
            let mut settings =
                SmtpSettings::new(url.clone()).with_timeout(Duration::from_secs_f64(timeout));
            settings.max_connections = max_connections;
            if let Some(ca) = &keys.smtp_ca_file {
                settings = settings.with_ca_file(ca);
            }
            settings
        });
        Ok(Self {
            smtp,
            templates: keys.templates,
            app_name: keys.app_name.unwrap_or_else(|| "axum-users".into()),
            reset_url,
            verify_url,
            email_change_url,
            retry,
            notices: Notices {
                password_changed: keys.notify_password_changed.unwrap_or(true),
                email_changed: keys.notify_email_changed.unwrap_or(true),
                second_factor: keys.notify_second_factor.unwrap_or(true),
                new_device: keys.notify_new_device.unwrap_or(true),
            },
        })
    }
}

/// The messages' composer: the shipped templates or the folder's, and the configured links.
///
/// # Errors
/// When the template folder is unusable (checked at start-up already).
pub(crate) fn composer(settings: &MailSettings) -> Result<axum_users_mail::Composer> {
    let templates = match &settings.templates {
        Some(dir) => Templates::with_overrides(dir)?,
        None => Templates::shipped(),
    };
    let links = axum_users_mail::Links::new(
        settings.reset_url.clone(),
        settings.verify_url.clone(),
        settings.email_change_url.clone(),
    );
    Ok(axum_users_mail::Composer::new(
        templates,
        links,
        settings.app_name.clone(),
    ))
}

/// The mail outbox in the server's database, bodies sealed with a sub-key of the secret.
pub(crate) fn outbox(
    config: &crate::config::Config,
    store: crate::app::Store,
    secret: &axum_users::Secret,
) -> axum_users_mail::Outbox<crate::app::Store> {
    let seal = axum_users::MailSeal::new(secret.clone(), config.previous_secrets.clone());
    axum_users_mail::Outbox::new(store, seal)
}

/// The outbox worker's retries from `mail.max_attempts` and `mail.retry_base_seconds`.
fn retry_policy(keys: &MailKeys) -> Result<axum_users_mail::RetryPolicy> {
    let mut policy = axum_users_mail::RetryPolicy::default();
    if let Some(n) = keys.max_attempts {
        if n == 0 {
            bail!("invalid value for mail.max_attempts (AXUM_USERS_MAIL_MAX_ATTEMPTS): at least 1");
        }
        policy.max_attempts = n;
    }
    if let Some(base) = keys.retry_base_seconds {
        if !(0.001..=3600.0).contains(&base) {
            bail!(
                "invalid value for mail.retry_base_seconds (AXUM_USERS_MAIL_RETRY_BASE_SECONDS): \
                 between 0.001 and 3600 seconds"
            );
        }
        policy.base_delay = Duration::from_secs_f64(base);
    }
    Ok(policy)
}
