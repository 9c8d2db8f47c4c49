//! Mail for axum-users: the messages the user lifecycle sends (verify, reset, e-mail change,
//! security notices), rendered from templates shipped with the crate and overridable from a
//! folder, and sent over SMTP with rustls.
//!
//! # Overview
//! - [`Templates`] renders a [`MailKind`] with a [`MailContext`] into a subject, an HTML part
//!   and a plain-text part ([`RenderedMail`]).
//! - [`Mail`] is one message to one address; [`Mail::to_rfc5322`] gives its bytes, a valid
//!   RFC 5322 `multipart/alternative` message with non-ASCII headers encoded.
//! - [`SmtpMailer`] sends it to the relay named by an [`SmtpUrl`] (`smtp://`, `smtp+starttls://`,
//!   `smtps://`), pooling connections, with time-outs and an optional extra CA.
//! - [`LinkTemplate`] makes the links (`https://app/reset?token={token}`); [`Composer`] puts
//!   templates, links and the application's name together, one method a message.
//! - [`Outbox`] queues messages sealed in an [`axum_users::OutboxStore`]; an [`OutboxWorker`]
//!   sends them, retrying with back-off ([`RetryPolicy`]).

mod compose;
mod link;
mod message;
mod outbox;
mod smtp;
mod template;
#[cfg(feature = "testing")]
pub mod testing;

pub use compose::{Composer, Links};
pub use link::{LinkTemplate, LinkTemplateError};
pub use message::{Mail, MessageError};
pub use outbox::{Deliver, Outbox, OutboxWorker, RetryPolicy};
pub use smtp::{SendError, SmtpError, SmtpMailer, SmtpSecurity, SmtpSettings, SmtpUrl};
pub use template::{MailContext, MailKind, RenderedMail, TemplateError, Templates};
