//! The server's hooks: mail for reset and verification links (the password policy is the
//! library's, configured in `abuse.rs`).

use axum_users::{NewDevice, NoFields, SecondFactorChange, User, UserHooks};
use axum_users_mail::{Composer, Mail, Outbox, TemplateError};
use http::request::Parts;
use serde_json::Value;
use uuid::Uuid;

use crate::app::Store;

/// Mails links (through the outbox).
#[derive(Debug, Clone)]
pub(crate) struct ServerHooks {
    /// Where messages are queued; the worker of `serve` sends them.
    pub(crate) outbox: Outbox<Store>,
    /// Templates and links of the messages.
    pub(crate) composer: Composer,
    /// Which security notices are mailed.
    pub(crate) notices: crate::mail_config::Notices,
}

/// Hours the reset and verify links are valid (the manager's default token lifetimes), for the
/// templates.
const LINK_VALID_HOURS: u64 = 1;

/// Hours an e-mail change link is valid (the library's default), for the template.
const EMAIL_CHANGE_VALID_HOURS: u64 = 24;

impl ServerHooks {
    /// Queues a message; it is sent by the outbox worker, retried until it goes out.
    async fn queue(&self, kind: &str, mail: Result<Mail, TemplateError>) {
        let result = match mail {
            Ok(mail) => self
                .outbox
                .enqueue(kind, &mail)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = result {
            tracing::error!(kind, error = %e, "queueing mail failed");
        }
    }
}

impl UserHooks<Uuid, NoFields> for ServerHooks {
    async fn on_audit_event(&self, record: &axum_users::AuditRecord) {
        crate::webhooks::notify(record);
    }

    async fn on_after_forgot_password(&self, user: &User, token: &str, _request: Option<&Parts>) {
        self.queue(
            "reset",
            self.composer.reset(&user.email, token, LINK_VALID_HOURS),
        )
        .await;
    }

    async fn on_after_request_verify(&self, user: &User, token: &str, _request: Option<&Parts>) {
        self.queue(
            "verify",
            self.composer.verify(&user.email, token, LINK_VALID_HOURS),
        )
        .await;
    }

    async fn on_second_factor_changed(&self, user: &User, change: SecondFactorChange) {
        if !self.notices.second_factor {
            return;
        }
        let added = change == SecondFactorChange::Added;
        let kind = if added {
            "second_factor_added"
        } else {
            "second_factor_removed"
        };
        self.queue(
            kind,
            self.composer.second_factor_changed(&user.email, added),
        )
        .await;
    }

    async fn on_new_device(&self, user: &User, device: &NewDevice) {
        if self.notices.new_device {
            let notice = self.composer.new_sign_in(
                &user.email,
                device.ip.as_deref().unwrap_or(""),
                device.user_agent.as_deref().unwrap_or(""),
                &device.method,
                device.at,
            );
            self.queue("new_sign_in", notice).await;
        }
    }

    async fn on_after_reset_password(&self, user: &User, _request: Option<&Parts>) {
        if self.notices.password_changed {
            self.queue(
                "password_changed",
                self.composer.password_changed(&user.email),
            )
            .await;
        }
    }

    async fn on_after_request_email_change(
        &self,
        user: &User,
        new_email: &str,
        token: &str,
        _request: Option<&Parts>,
    ) {
        let confirm = self.composer.email_change_confirm(
            &user.email,
            new_email,
            token,
            EMAIL_CHANGE_VALID_HOURS,
        );
        self.queue("email_change_confirm", confirm).await;
        if self.notices.email_changed {
            let notice = self.composer.email_change_notice(&user.email, new_email);
            self.queue("email_change_notice", notice).await;
        }
    }

    async fn on_after_email_change(&self, user: &User, old_email: &str, _request: Option<&Parts>) {
        if self.notices.email_changed {
            let notice = self.composer.email_change_notice(old_email, &user.email);
            self.queue("email_change_notice", notice).await;
        }
    }

    async fn on_after_update(&self, user: &User, update: &Value, _request: Option<&Parts>) {
        let password_changed = update.get("password").is_some_and(Value::is_string);
        if self.notices.password_changed && password_changed {
            self.queue(
                "password_changed",
                self.composer.password_changed(&user.email),
            )
            .await;
        }
    }
}
