//! From a lifecycle event to a message: the template, the link and the variables.

use std::sync::Arc;

use axum_users::Secret;

use crate::link::LinkTemplate;
use crate::message::Mail;
use crate::template::{MailContext, MailKind, TemplateError, Templates};

/// The links of the messages that carry one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Links {
    /// The reset link.
    pub reset: LinkTemplate,
    /// The verification link.
    pub verify: LinkTemplate,
    /// The e-mail change confirmation link.
    pub email_change: LinkTemplate,
}

impl Links {
    /// The three links.
    pub fn new(reset: LinkTemplate, verify: LinkTemplate, email_change: LinkTemplate) -> Self {
        Self {
            reset,
            verify,
            email_change,
        }
    }
}

/// Makes every message of the lifecycle: templates, links and the application's name.
#[derive(Debug, Clone)]
pub struct Composer {
    templates: Arc<Templates>,
    links: Links,
    app_name: String,
}

impl Composer {
    /// A composer with these templates and links.
    pub fn new(templates: Templates, links: Links, app_name: impl Into<String>) -> Self {
        Self {
            templates: Arc::new(templates),
            links,
            app_name: app_name.into(),
        }
    }

    fn with_link(
        &self,
        kind: MailKind,
        link: &LinkTemplate,
        to: &str,
        token: &str,
        valid_hours: u64,
        context: MailContext,
    ) -> Result<Mail, TemplateError> {
        let context = context.with_link(link.link(token), valid_hours);
        let content = self.templates.render(kind, &context)?;
        Ok(Mail::new(to, content, Secret::new(token)))
    }

    fn context(&self, to: &str) -> MailContext {
        MailContext::new(self.app_name.clone(), to)
    }

    /// The reset link to `to`.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn reset(&self, to: &str, token: &str, valid_hours: u64) -> Result<Mail, TemplateError> {
        let context = self.context(to);
        self.with_link(
            MailKind::Reset,
            &self.links.reset,
            to,
            token,
            valid_hours,
            context,
        )
    }

    /// The verification link to `to`.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn verify(&self, to: &str, token: &str, valid_hours: u64) -> Result<Mail, TemplateError> {
        let context = self.context(to);
        self.with_link(
            MailKind::Verify,
            &self.links.verify,
            to,
            token,
            valid_hours,
            context,
        )
    }

    /// The confirmation link of a change from `old` to `new`, sent to `new`.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn email_change_confirm(
        &self,
        old: &str,
        new: &str,
        token: &str,
        valid_hours: u64,
    ) -> Result<Mail, TemplateError> {
        let context = self.context(new).with_change(old, new);
        self.with_link(
            MailKind::EmailChangeConfirm,
            &self.links.email_change,
            new,
            token,
            valid_hours,
            context,
        )
    }

    /// The notice of a change from `old` to `new`, sent to `old`.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn email_change_notice(&self, old: &str, new: &str) -> Result<Mail, TemplateError> {
        let context = self.context(old).with_change(old, new);
        let content = self
            .templates
            .render(MailKind::EmailChangeNotice, &context)?;
        Ok(Mail::new(old, content, Secret::new("")))
    }

    /// The notice that the password of `to` was changed or reset.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn password_changed(&self, to: &str) -> Result<Mail, TemplateError> {
        let content = self
            .templates
            .render(MailKind::PasswordChanged, &self.context(to))?;
        Ok(Mail::new(to, content, Secret::new("")))
    }

    /// The notice that a second factor was added to the account of `to` (`added`), or that
    /// its second factor was removed.
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn second_factor_changed(&self, to: &str, added: bool) -> Result<Mail, TemplateError> {
        let kind = if added {
            MailKind::SecondFactorAdded
        } else {
            MailKind::SecondFactorRemoved
        };
        let content = self.templates.render(kind, &self.context(to))?;
        Ok(Mail::new(to, content, Secret::new("")))
    }

    /// The notice of a sign-in to the account of `to` from a new device: its address, user
    /// agent, method and time (Unix seconds, shown in UTC).
    ///
    /// # Errors
    /// [`TemplateError`] when a template fails to render.
    pub fn new_sign_in(
        &self,
        to: &str,
        ip: &str,
        user_agent: &str,
        method: &str,
        at: i64,
    ) -> Result<Mail, TemplateError> {
        let context = self
            .context(to)
            .with_device(ip, user_agent, method, utc(at));
        let content = self.templates.render(MailKind::NewSignIn, &context)?;
        Ok(Mail::new(to, content, Secret::new("")))
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(at: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(at) else {
        return format!("{at} (Unix time)");
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_780_000_000), "2026-05-28 20:26:40 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    fn composer() -> Composer {
        let link = |p: &str| {
            LinkTemplate::new(format!("https://app.example.com/{p}?t={{token}}")).unwrap()
        };
        Composer::new(
            Templates::shipped(),
            Links::new(link("reset"), link("verify"), link("change")),
            "Acme",
        )
    }

    #[test]
    fn each_message_goes_to_the_right_address_with_the_right_link() {
        let c = composer();
        let reset = c.reset("a@example.com", "tok1", 1).unwrap();
        assert_eq!(reset.to, "a@example.com");
        assert!(
            reset
                .content
                .text
                .contains("https://app.example.com/reset?t=tok1")
        );
        let verify = c.verify("a@example.com", "tok2", 1).unwrap();
        assert!(
            verify
                .content
                .text
                .contains("https://app.example.com/verify?t=tok2")
        );
        let confirm = c
            .email_change_confirm("old@example.com", "new@example.com", "tok3", 24)
            .unwrap();
        assert_eq!(confirm.to, "new@example.com");
        assert!(
            confirm
                .content
                .text
                .contains("https://app.example.com/change?t=tok3")
        );
        assert!(confirm.content.text.contains("24 hours"));
        let notice = c
            .email_change_notice("old@example.com", "new@example.com")
            .unwrap();
        assert_eq!(notice.to, "old@example.com");
        assert!(notice.content.text.contains("new@example.com"));
        assert!(!notice.content.text.contains("tok3"));
        let changed = c.password_changed("a@example.com").unwrap();
        assert!(changed.content.subject.contains("Acme"));
        let added = c.second_factor_changed("a@example.com", true).unwrap();
        assert!(added.content.subject.contains("second factor was added"));
        let removed = c.second_factor_changed("a@example.com", false).unwrap();
        assert!(removed.content.subject.contains("was removed"));
        assert!(removed.content.html.contains("a@example.com"));
    }
}
