//! The mailer against a real SMTP server on loopback (aiosmtpd, `tests/smtp/server.py`): plain
//! with AUTH, STARTTLS and implicit TLS with a CA the test makes, and the failures a relay can
//! cause. Every message is parsed back with a real MIME parser.

#![allow(unreachable_pub, clippy::unwrap_used)]

mod smtp;
