//! The server's hooks: the password policy, and mail for reset and verification links.

use axum_users::{InvalidPassword, NoFields, PasswordOwner, Secret, User, UserHooks};
use http::request::Parts;
use uuid::Uuid;

use crate::mailer::{Mail, Mailer};

/// Mails links and enforces a minimum password length.
#[derive(Debug, Clone)]
pub(crate) struct ServerHooks {
    /// Where mail goes.
    pub(crate) mailer: Mailer,
    /// Base URL of the links.
    pub(crate) frontend_url: String,
    /// Shortest password accepted.
    pub(crate) password_min_length: usize,
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
    async fn validate_password(
        &self,
        password: &str,
        _owner: PasswordOwner<'_, Uuid, NoFields>,
    ) -> Result<(), InvalidPassword> {
        if password.chars().count() < self.password_min_length {
            return Err(InvalidPassword::new(format!(
                "Password should be at least {} characters",
                self.password_min_length
            )));
        }
        Ok(())
    }

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
