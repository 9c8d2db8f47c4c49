//! One message to one address, and its RFC 5322 form.

use axum_users::Secret;
use lettre::Message;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, Mailbox, MultiPart};

use crate::template::RenderedMail;

/// One message to one address. No `Debug` of the bodies: they carry a live token.
#[derive(Clone)]
pub struct Mail {
    /// The recipient's address.
    pub to: String,
    /// Subject, text and HTML.
    pub content: RenderedMail,
    /// The token inside the bodies (empty when there is none), which logs replace with
    /// `[redacted]`.
    pub token: Secret,
}

impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("subject", &self.content.subject)
            .finish_non_exhaustive()
    }
}

/// Why a message could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The sender or recipient is not a valid address (`name <user@host>` or `user@host`).
    #[error("invalid {role} address {address:?}: {reason}")]
    Address {
        /// `sender` or `recipient`.
        role: &'static str,
        /// The address as given.
        address: String,
        /// What the parser said.
        reason: String,
    },
    /// The message could not be assembled.
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// Parses `name <user@host>` or `user@host`.
///
/// # Errors
/// [`MessageError::Address`] when it is not an address.
pub(crate) fn mailbox(address: &str, role: &'static str) -> Result<Mailbox, MessageError> {
    address
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| MessageError::Address {
            role,
            address: address.to_owned(),
            reason: e.to_string(),
        })
}

impl Mail {
    /// A message to `to`.
    pub fn new(to: impl Into<String>, content: RenderedMail, token: Secret) -> Self {
        Self {
            to: to.into(),
            content,
            token,
        }
    }

    /// The plain-text body with the token replaced by `[redacted]`: what a log may show.
    pub fn redacted_text(&self) -> String {
        match self.token.expose() {
            "" => self.content.text.clone(),
            token => self.content.text.replace(token, "[redacted]"),
        }
    }

    /// The message from `from` as lettre builds it: `multipart/alternative` (text, then HTML),
    /// headers with non-ASCII text encoded (RFC 2047), a `Date` and a `Message-ID` in the
    /// sender's domain.
    ///
    /// # Errors
    /// [`MessageError`] when an address is invalid.
    pub fn to_message(&self, from: &str) -> Result<Message, MessageError> {
        let from = mailbox(from, "sender")?;
        let to = mailbox(&self.to, "recipient")?;
        let id = format!("<{}@{}>", axum_users::random_token(18), from.email.domain());
        Message::builder()
            .from(from)
            .to(to)
            .subject(self.content.subject.clone())
            .message_id(Some(id))
            .multipart(MultiPart::alternative_plain_html(
                readable_body(&self.content.text),
                readable_body(&self.content.html),
            ))
            .map_err(|e| MessageError::Build(e.to_string()))
    }

    /// The message's bytes (RFC 5322, CRLF line ends), as written to an `.eml` file.
    ///
    /// # Errors
    /// [`MessageError`] when an address is invalid.
    pub fn to_rfc5322(&self, from: &str) -> Result<Vec<u8>, MessageError> {
        Ok(self.to_message(from)?.formatted())
    }
}

/// `7bit` when the text is ASCII in lines of at most 998 octets (RFC 5322's limit), so that a
/// long link stays whole and readable in the raw message; otherwise lettre's choice
/// (quoted-printable or base64).
fn readable_body(text: &str) -> Body {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    if crlf.is_ascii() && !crlf.contains('\0') && crlf.split("\r\n").all(|l| l.len() <= 998) {
        return Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit);
    }
    Body::new(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MailContext, MailKind, Templates};

    fn mail(to: &str) -> Mail {
        let content = Templates::shipped()
            .render(
                MailKind::Reset,
                &MailContext::new("Zoë's Café", to)
                    .with_link("https://app.example.com/reset?token=tok.en-1", 1),
            )
            .unwrap();
        Mail::new(to, content, Secret::new("tok.en-1"))
    }

    #[test]
    fn the_log_form_hides_the_token() {
        let m = mail("a@example.com");
        assert!(m.content.text.contains("tok.en-1"));
        assert!(!m.redacted_text().contains("tok.en-1"));
        assert!(m.redacted_text().contains("token=[redacted]"));
        assert!(!format!("{m:?}").contains("tok.en-1"));
    }

    #[test]
    fn a_long_ascii_link_stays_on_one_line_and_utf8_is_encoded() {
        let link = format!("https://app.example.com/reset?token={}", "a".repeat(300));
        assert!(
            readable_body(&format!("Open\n{link}\n"))
                .into_vec()
                .windows(link.len())
                .any(|w| w == link.as_bytes())
        );
        let utf8 = readable_body("Zoë\n");
        assert_ne!(utf8.encoding(), ContentTransferEncoding::SevenBit);
        assert!(utf8.into_vec().is_ascii());
        let long = readable_body(&"x".repeat(1200));
        assert_ne!(long.encoding(), ContentTransferEncoding::SevenBit);
    }

    #[test]
    fn addresses_are_checked() {
        let m = mail("not an address");
        assert!(matches!(
            m.to_rfc5322("App <app@example.com>"),
            Err(MessageError::Address {
                role: "recipient",
                ..
            })
        ));
        assert!(matches!(
            mail("a@example.com").to_rfc5322("nobody"),
            Err(MessageError::Address { role: "sender", .. })
        ));
    }
}
