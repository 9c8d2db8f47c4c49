//! The messages' templates: shipped with the crate, each overridable by a file of the same name
//! in a folder. Every message has three: `<kind>.subject.txt`, `<kind>.txt` and `<kind>.html`
//! (HTML-escaped automatically).

use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Which message to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MailKind {
    /// The e-mail verification link.
    Verify,
    /// The password-reset link.
    Reset,
    /// The confirmation link of an e-mail change, to the new address.
    EmailChangeConfirm,
    /// The notice of an e-mail change, to the old address.
    EmailChangeNotice,
    /// The notice that the password was changed or reset.
    PasswordChanged,
    /// The notice that a second factor was added.
    SecondFactorAdded,
    /// The notice that the second factor was removed (by the user or a superuser).
    SecondFactorRemoved,
    /// The notice of a sign-in from a device the account has not been used from lately.
    NewSignIn,
}

impl MailKind {
    /// Every kind, for checking a template folder at start-up.
    pub const ALL: [MailKind; 8] = [
        MailKind::Verify,
        MailKind::Reset,
        MailKind::EmailChangeConfirm,
        MailKind::EmailChangeNotice,
        MailKind::PasswordChanged,
        MailKind::SecondFactorAdded,
        MailKind::SecondFactorRemoved,
        MailKind::NewSignIn,
    ];

    /// The templates' base name: `verify`, `reset`, `email_change_confirm`,
    /// `email_change_notice`, `password_changed`, `second_factor_added`,
    /// `second_factor_removed`, `new_sign_in`.
    pub fn name(self) -> &'static str {
        match self {
            MailKind::Verify => "verify",
            MailKind::Reset => "reset",
            MailKind::EmailChangeConfirm => "email_change_confirm",
            MailKind::EmailChangeNotice => "email_change_notice",
            MailKind::PasswordChanged => "password_changed",
            MailKind::SecondFactorAdded => "second_factor_added",
            MailKind::SecondFactorRemoved => "second_factor_removed",
            MailKind::NewSignIn => "new_sign_in",
        }
    }

    /// Whether the message carries a link with a live token.
    pub fn has_link(self) -> bool {
        matches!(
            self,
            MailKind::Verify | MailKind::Reset | MailKind::EmailChangeConfirm
        )
    }

    /// The three shipped sources: subject, text, HTML.
    fn shipped(self) -> [&'static str; 3] {
        macro_rules! shipped {
            ($name:literal) => {
                [
                    include_str!(concat!("../templates/", $name, ".subject.txt")),
                    include_str!(concat!("../templates/", $name, ".txt")),
                    include_str!(concat!("../templates/", $name, ".html")),
                ]
            };
        }
        match self {
            MailKind::Verify => shipped!("verify"),
            MailKind::Reset => shipped!("reset"),
            MailKind::EmailChangeConfirm => shipped!("email_change_confirm"),
            MailKind::EmailChangeNotice => shipped!("email_change_notice"),
            MailKind::PasswordChanged => shipped!("password_changed"),
            MailKind::SecondFactorAdded => shipped!("second_factor_added"),
            MailKind::SecondFactorRemoved => shipped!("second_factor_removed"),
            MailKind::NewSignIn => shipped!("new_sign_in"),
        }
    }

    fn file_names(self) -> [String; 3] {
        let name = self.name();
        [
            format!("{name}.subject.txt"),
            format!("{name}.txt"),
            format!("{name}.html"),
        ]
    }
}

/// The variables a template sees (documented in `docs/mail.md`).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct MailContext {
    /// The application's name, as configured.
    pub app_name: String,
    /// The recipient's address.
    pub email: String,
    /// The link with the token (verify, reset, e-mail change confirmation); empty otherwise.
    pub link: String,
    /// The address before an e-mail change.
    pub old_email: String,
    /// The address after an e-mail change.
    pub new_email: String,
    /// How long the link is valid, in hours (0 when there is no link).
    pub valid_hours: u64,
    /// The new device's address (`new_sign_in`; empty when unknown).
    pub device_ip: String,
    /// The new device's `User-Agent` (`new_sign_in`; client-supplied text).
    pub device_user_agent: String,
    /// How it signed in (`new_sign_in`: `password`, `oauth:<provider>`, ...).
    pub sign_in_method: String,
    /// When it signed in, in UTC (`new_sign_in`, `YYYY-MM-DD HH:MM:SS UTC`).
    pub sign_in_time: String,
}

impl MailContext {
    /// A context for the application `app_name` and the recipient `email`.
    pub fn new(app_name: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            app_name: app_name.into(),
            email: email.into(),
            ..Self::default()
        }
    }

    /// With the link and its validity.
    #[must_use]
    pub fn with_link(mut self, link: impl Into<String>, valid_hours: u64) -> Self {
        self.link = link.into();
        self.valid_hours = valid_hours;
        self
    }

    /// With the device of a new sign-in.
    #[must_use]
    pub fn with_device(
        mut self,
        ip: impl Into<String>,
        user_agent: impl Into<String>,
        method: impl Into<String>,
        time: impl Into<String>,
    ) -> Self {
        self.device_ip = ip.into();
        self.device_user_agent = user_agent.into();
        self.sign_in_method = method.into();
        self.sign_in_time = time.into();
        self
    }

    /// With the addresses of an e-mail change.
    #[must_use]
    pub fn with_change(
        mut self,
        old_email: impl Into<String>,
        new_email: impl Into<String>,
    ) -> Self {
        self.old_email = old_email.into();
        self.new_email = new_email.into();
        self
    }
}

/// A rendered message: subject (one line), plain text and HTML.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// The subject, on one line.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

impl std::fmt::Debug for RenderedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bodies carry live tokens.
        f.debug_struct("RenderedMail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why the templates could not be loaded or rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A file of the override folder could not be read.
    #[error("cannot read the mail template {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not compile or render (syntax, unknown variable).
    #[error("mail template {name}: {source}")]
    Template {
        /// The template's file name.
        name: String,
        /// What minijinja said.
        #[source]
        source: minijinja::Error,
    },
}

/// The compiled templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The templates shipped with the crate.
    pub fn shipped() -> Self {
        #[allow(clippy::expect_used)]
        Self::build(None).expect("the shipped templates compile and render")
    }

    /// The shipped templates, each replaced by the file of the same name in `dir` where there
    /// is one. Every template is compiled and rendered once with sample values, so that a
    /// broken override fails at start-up rather than at the first mail.
    ///
    /// # Errors
    /// [`TemplateError`] when a file cannot be read or a template does not render.
    pub fn with_overrides(dir: &Path) -> Result<Self, TemplateError> {
        Self::build(Some(dir))
    }

    fn build(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        for kind in MailKind::ALL {
            for (name, shipped) in kind.file_names().into_iter().zip(kind.shipped()) {
                let source = match dir.map(|d| d.join(&name)).filter(|p| p.is_file()) {
                    Some(path) => std::fs::read_to_string(&path)
                        .map_err(|source| TemplateError::Read { path, source })?,
                    None => shipped.to_owned(),
                };
                env.add_template_owned(name.clone(), source)
                    .map_err(|source| TemplateError::Template { name, source })?;
            }
        }
        let templates = Self { env };
        let sample = MailContext::new("App", "user@example.com")
            .with_link("https://app.example.com/x?token=t", 1)
            .with_change("old@example.com", "new@example.com")
            .with_device(
                "192.0.2.1",
                "Agent/1.0",
                "password",
                "2026-01-01 00:00:00 UTC",
            );
        for kind in MailKind::ALL {
            templates.render(kind, &sample)?;
        }
        Ok(templates)
    }

    /// Renders `kind` with `context`.
    ///
    /// # Errors
    /// [`TemplateError::Template`] when a template fails (an override using an unknown
    /// variable is caught at start-up already).
    pub fn render(
        &self,
        kind: MailKind,
        context: &MailContext,
    ) -> Result<RenderedMail, TemplateError> {
        let [subject, text, html] = kind.file_names().map(|name| {
            self.env
                .get_template(&name)
                .and_then(|t| t.render(context))
                .map_err(|source| TemplateError::Template { name, source })
        });
        Ok(RenderedMail {
            subject: one_line(&subject?),
            text: text?,
            html: html?,
        })
    }
}

/// The subject on one line: line breaks and runs of white space become one space, so that no
/// template or value can add a header.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> MailContext {
        MailContext::new("Acme <Shop>", "zoë@example.com")
            .with_link("https://app.example.com/verify?token=abc&x=1", 24)
    }

    #[test]
    fn every_shipped_message_renders_with_its_link() {
        let templates = Templates::shipped();
        for kind in MailKind::ALL {
            let mail = templates.render(kind, &context()).unwrap();
            assert!(!mail.subject.is_empty(), "{kind:?}");
            assert!(!mail.subject.contains('\n'), "{kind:?}");
            assert_eq!(
                mail.text
                    .contains("https://app.example.com/verify?token=abc&x=1"),
                kind.has_link(),
                "{kind:?}: the text part has the link as it is"
            );
            assert!(!mail.html.contains("<Shop>"), "{kind:?}: HTML is escaped");
        }
    }

    #[test]
    fn the_html_part_escapes_the_link() {
        let mail = Templates::shipped()
            .render(MailKind::Reset, &context())
            .unwrap();
        assert!(mail.html.contains("token=abc&amp;x=1"), "{}", mail.html);
    }

    #[test]
    fn a_file_in_the_folder_replaces_the_shipped_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("reset.subject.txt"),
            "Reset for {{ email }}\nBcc: evil@example.com",
        )
        .unwrap();
        let templates = Templates::with_overrides(dir.path()).unwrap();
        let mail = templates.render(MailKind::Reset, &context()).unwrap();
        assert_eq!(
            mail.subject, "Reset for zoë@example.com Bcc: evil@example.com",
            "the subject stays one line"
        );
        let verify = templates.render(MailKind::Verify, &context()).unwrap();
        assert_eq!(
            verify,
            Templates::shipped()
                .render(MailKind::Verify, &context())
                .unwrap()
        );
    }

    #[test]
    fn a_broken_override_fails_at_start_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify.txt"), "{{ linkk }}").unwrap();
        let err = Templates::with_overrides(dir.path()).unwrap_err();
        assert!(err.to_string().contains("verify.txt"), "{err}");
        std::fs::write(dir.path().join("verify.txt"), "{% if %}").unwrap();
        assert!(Templates::with_overrides(dir.path()).is_err());
    }
}
