//! The server's hooks: mail for reset and verification links (the password policy is the
//! library's, configured in `abuse.rs`).

use axum_users::{NoFields, Secret, User, UserHooks};
use http::request::Parts;
use uuid::Uuid;

use crate::mailer::{Mail, Mailer};

/// Mails links.
#[derive(Debug, Clone)]
pub(crate) struct ServerHooks {
    /// Where mail goes.
    pub(crate) mailer: Mailer,
    /// Base URL of the links.
    pub(crate) frontend_url: String,
}

impl ServerHooks {
    async fn send(&self, to: &str, subject: &str, body: String, token: &str) {
        let mail = Mail {
            to: to.to_owned(),
            subject: subject.to_owned(),
            body,
            token: Secret::new(token),
        };
        if let Err(e) = self.mailer.send(mail).await {
            tracing::error!(error = %e, "sending mail failed");
        }
    }
}

impl UserHooks<Uuid, NoFields> for ServerHooks {
    async fn on_after_forgot_password(&self, user: &User, token: &str, _request: Option<&Parts>) {
        let link = format!("{}/reset-password?token={token}", self.frontend_url);
        let body = format!(
            "Someone asked to reset the password of this account.\n\nReset it here: {link}\n\nIf it was not you, ignore this message."
        );
        self.send(&user.email, "Reset your password", body, token)
            .await;
    }

    async fn on_after_request_verify(&self, user: &User, token: &str, _request: Option<&Parts>) {
        let link = format!("{}/verify?token={token}", self.frontend_url);
        let body = format!("Confirm your e-mail address here: {link}");
        self.send(&user.email, "Verify your e-mail address", body, token)
            .await;
    }
}
