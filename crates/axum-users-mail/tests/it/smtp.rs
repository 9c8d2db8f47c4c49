use std::time::Duration;

use axum_users::Secret;
use axum_users_mail::testing::{
    HarnessOptions, HarnessTls, SmtpHarness, TestCa, smtp_harness_available,
};
use axum_users_mail::{
    Mail, MailContext, MailKind, SendError, SmtpMailer, SmtpSettings, Templates,
};
use mail_parser::MessageParser;

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl-_x";

fn reset_mail(to: &str) -> Mail {
    let link = format!("https://app.example.com/reset-password?token={TOKEN}");
    let content = Templates::shipped()
        .render(
            MailKind::Reset,
            &MailContext::new("Café Zoë", to).with_link(link, 1),
        )
        .unwrap();
    Mail::new(to, content, Secret::new(TOKEN))
}

fn settings(url: &str) -> SmtpSettings {
    SmtpSettings::new(url.parse().unwrap()).with_timeout(Duration::from_secs(5))
}

fn options(tls: HarnessTls, auth: Option<&str>) -> HarnessOptions {
    let mut o = HarnessOptions::default();
    o.tls = tls;
    o.auth = auth.map(str::to_owned);
    o
}

/// A relay recording to a folder of its own (kept alive with it).
fn relay(o: &HarnessOptions, ca: Option<&TestCa>) -> (tempfile::TempDir, SmtpHarness) {
    let dir = tempfile::tempdir().unwrap();
    let harness = SmtpHarness::start(dir.path(), o, ca);
    (dir, harness)
}

/// A mailer for `url`, trusting `ca` besides the system's CAs.
fn mailer(url: &str, ca: Option<&TestCa>, from: &str) -> SmtpMailer {
    let mut s = settings(url);
    if let Some(ca) = ca {
        s = s.with_ca_file(ca.ca_pem());
    }
    SmtpMailer::new(&s, from).unwrap()
}

/// Parses the message as a mail client would and checks every part of it.
fn check_parsed(raw: &[u8]) {
    let message = MessageParser::default()
        .parse(raw)
        .expect("a parseable message");
    let subject = message.subject().expect("a subject");
    assert_eq!(subject, "Reset your password");
    let from = message.from().and_then(|a| a.first()).expect("a From");
    assert_eq!(
        from.name(),
        Some("Café Zoë"),
        "non-ASCII names are encoded and decode back"
    );
    assert_eq!(from.address(), Some("no-reply@example.com"));
    let to = message.to().and_then(|a| a.first()).expect("a To");
    assert_eq!(to.address(), Some("zoe@example.com"));
    assert!(message.date().is_some(), "a Date header");
    assert!(
        message
            .message_id()
            .is_some_and(|id| id.ends_with("@example.com"))
    );
    let text = message.body_text(0).expect("a text part");
    assert!(text.contains(&format!("token={TOKEN}")), "{text}");
    assert!(
        text.contains("Café Zoë"),
        "the body keeps its UTF-8: {text}"
    );
    let html = message.body_html(0).expect("an HTML part");
    // minijinja escapes `/` too (`&#x2f;`), which browsers decode in attributes.
    assert!(html.contains("<a href=\"https:"), "{html}");
    assert!(
        html.contains(&format!("reset-password?token={TOKEN}\"")),
        "{html}"
    );
    let raw_text = String::from_utf8_lossy(raw);
    assert!(raw_text.contains("multipart/alternative"), "{raw_text}");
    assert!(
        raw_text.split("\r\n\r\n").next().unwrap().is_ascii(),
        "the headers are ASCII (RFC 2047 encoded)"
    );
}

#[tokio::test]
async fn plain_smtp_with_auth_delivers_a_valid_message() {
    if !smtp_harness_available("plain_smtp_with_auth_delivers_a_valid_message") {
        return;
    }
    let (_dir, harness) = relay(&options(HarnessTls::Plain, Some("mailer:s3cr3t pw")), None);
    let url = format!("smtp://mailer:s3cr3t%20pw@127.0.0.1:{}", harness.port());
    let mailer = mailer(&url, None, "Café Zoë <no-reply@example.com>");
    assert!(!format!("{mailer:?}").contains("s3cr3t"));
    mailer.send(&reset_mail("zoe@example.com")).await.unwrap();
    let got = harness.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].meta["authenticated"], true);
    assert_eq!(got[0].meta["rcpt_tos"][0], "zoe@example.com");
    check_parsed(&got[0].raw);
}

#[tokio::test]
async fn starttls_with_the_extra_ca_delivers_over_tls() {
    if !smtp_harness_available("starttls_with_the_extra_ca_delivers_over_tls") {
        return;
    }
    let ca = TestCa::generate();
    let (_dir, harness) = relay(&options(HarnessTls::StartTls, Some("u:p")), Some(&ca));
    let url = format!("smtp+starttls://u:p@localhost:{}", harness.port());
    let mailer = mailer(&url, Some(&ca), "Café Zoë <no-reply@example.com>");
    // Pooled: several messages over the same relay.
    for _ in 0..3 {
        mailer.send(&reset_mail("zoe@example.com")).await.unwrap();
    }
    let got = harness.wait_for(3, Duration::from_secs(10)).await;
    for message in &got {
        assert_eq!(message.meta["tls"], true);
        assert_eq!(message.meta["authenticated"], true);
        check_parsed(&message.raw);
    }
}

#[tokio::test]
async fn a_relay_whose_certificate_is_not_trusted_gets_nothing() {
    if !smtp_harness_available("a_relay_whose_certificate_is_not_trusted_gets_nothing") {
        return;
    }
    let ca = TestCa::generate();
    let (_dir, harness) = relay(&options(HarnessTls::StartTls, Some("u:p")), Some(&ca));
    let url = format!("smtp+starttls://u:p@localhost:{}", harness.port());
    let mailer = mailer(&url, None, "no-reply@example.com");
    mailer
        .send(&reset_mail("zoe@example.com"))
        .await
        .expect_err("an untrusted certificate fails the send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        harness.received().is_empty(),
        "nothing reached a relay we do not trust"
    );
}

#[tokio::test]
async fn implicit_tls_delivers() {
    if !smtp_harness_available("implicit_tls_delivers") {
        return;
    }
    let ca = TestCa::generate();
    let (_dir, harness) = relay(&options(HarnessTls::Implicit, None), Some(&ca));
    let url = format!("smtps://localhost:{}", harness.port());
    let mailer = mailer(&url, Some(&ca), "Café Zoë <no-reply@example.com>");
    mailer.send(&reset_mail("zoe@example.com")).await.unwrap();
    let got = harness.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].meta["tls"], true);
    check_parsed(&got[0].raw);
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_failure_and_never_logged() {
    if !smtp_harness_available("a_wrong_password_is_a_permanent_failure_and_never_logged") {
        return;
    }
    let (_dir, harness) = relay(&options(HarnessTls::Plain, Some("u:right")), None);
    let url = format!("smtp://u:wr0ng@127.0.0.1:{}", harness.port());
    let mailer = mailer(&url, None, "no-reply@example.com");
    let err = mailer
        .send(&reset_mail("zoe@example.com"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Permanent(_)), "{err}");
    assert!(!err.to_string().contains("wr0ng"), "{err}");
    assert!(harness.received().is_empty());
}

#[tokio::test]
async fn a_relay_that_is_down_or_busy_is_a_transient_failure() {
    if !smtp_harness_available("a_relay_that_is_down_or_busy_is_a_transient_failure") {
        return;
    }
    let mut o = options(HarnessTls::Plain, None);
    o.reject_first = 1;
    let (_dir, harness) = relay(&o, None);
    let port = harness.port();
    let mailer = mailer(
        &format!("smtp://127.0.0.1:{port}"),
        None,
        "no-reply@example.com",
    );
    let busy = mailer
        .send(&reset_mail("zoe@example.com"))
        .await
        .unwrap_err();
    assert!(busy.is_transient(), "451 is worth a retry: {busy}");
    mailer.send(&reset_mail("zoe@example.com")).await.unwrap();
    assert_eq!(harness.wait_for(1, Duration::from_secs(10)).await.len(), 1);
    harness.stop();
    let down = mailer
        .send(&reset_mail("zoe@example.com"))
        .await
        .unwrap_err();
    assert!(
        down.is_transient(),
        "a relay that is down is worth a retry: {down}"
    );
}
