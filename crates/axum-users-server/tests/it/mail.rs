//! Mail end to end: the server binary sends through a real SMTP relay on loopback (aiosmtpd,
//! STARTTLS with a CA the test makes, AUTH), the link in the mail works, and the relay's
//! password shows nowhere.

use std::process::Command;
use std::time::Duration;

use axum_users_mail::testing::{
    HarnessOptions, HarnessTls, SmtpHarness, TestCa, smtp_harness_available,
};
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// A STARTTLS relay with AUTH, and the server settings that use it.
pub fn starttls_relay(ca: &TestCa, dir: &std::path::Path) -> (SmtpHarness, Vec<(String, String)>) {
    let mut options = HarnessOptions::default();
    options.tls = HarnessTls::StartTls;
    options.auth = Some("mailer:relay-pa55".into());
    let relay = SmtpHarness::start(dir, &options, Some(ca));
    let env = vec![
        (
            "AXUM_USERS_MAILER".to_owned(),
            format!(
                "smtp+starttls://mailer:relay-pa55@localhost:{}",
                relay.port()
            ),
        ),
        (
            "AXUM_USERS_MAIL_FROM".to_owned(),
            "Acme Café <no-reply@example.com>".to_owned(),
        ),
        (
            "AXUM_USERS_SMTP_CA_FILE".to_owned(),
            ca.ca_pem().display().to_string(),
        ),
        ("AXUM_USERS_APP_NAME".to_owned(), "Acme Café".to_owned()),
    ];
    (relay, env)
}

#[tokio::test]
async fn a_reset_link_arrives_over_smtp_and_works() {
    if !smtp_harness_available("a_reset_link_arrives_over_smtp_and_works") {
        return;
    }
    let ca = TestCa::generate();
    let spool = tempfile::tempdir().unwrap();
    let (relay, env) = starttls_relay(&ca, spool.path());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push((
        "AXUM_USERS_RESET_URL",
        "https://app.example.com/#/reset/{token}",
    ));
    let s = Server::start_with(&env);
    register(&s, "zoe@example.com", "secret1").await;
    let (status, _) = post_json(
        &client(),
        s.url("/auth/forgot-password"),
        json!({"email": "zoe@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let got = relay.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].meta["tls"], true);
    assert_eq!(got[0].meta["authenticated"], true);
    assert_eq!(got[0].meta["rcpt_tos"][0], "zoe@example.com");
    let message = MessageParser::default().parse(&got[0].raw).unwrap();
    assert_eq!(message.subject(), Some("Reset your password"));
    assert_eq!(
        message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.name()),
        Some("Acme Café")
    );
    let text = message.body_text(0).unwrap();
    assert!(
        text.contains("https://app.example.com/#/reset/"),
        "the configured link: {text}"
    );
    assert!(text.contains("Acme Café"), "{text}");
    assert!(message.body_html(0).is_some());
    let token = text
        .split("#/reset/")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": token, "password": "newsecret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    login(&s, "zoe@example.com", "newsecret").await;
    let log = s.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("relay-pa55"),
        "the relay's password reached the log: {log}"
    );
    assert!(!log.contains(&token), "the token reached the log");
}

#[test]
fn smtp_needs_a_sender_and_config_check_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[(&str, &str)]| {
        let mut command = Command::new(BIN);
        command.current_dir(dir.path()).env_clear();
        for (k, v) in test_env(dir.path()) {
            command.env(k, v);
        }
        command.env(
            "AXUM_USERS_MAILER",
            "smtps://mailer:hunter2-secret@mail.example.com",
        );
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = command.args(["config", "check"]).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run(&[]);
    assert!(
        !ok && text.contains("missing mail_from (AXUM_USERS_MAIL_FROM)"),
        "{text}"
    );
    let (ok, text) = run(&[("AXUM_USERS_MAIL_FROM", "no-reply@example.com")]);
    assert!(ok, "{text}");
    assert!(
        text.contains("smtps://mailer:[redacted]@mail.example.com:465"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let (ok, text) = run(&[
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        (
            "AXUM_USERS_MAILER",
            "smtp://mailer:hunter2-secret@mail.example.com",
        ),
    ]);
    assert!(
        !ok && text.contains("in clear") && !text.contains("hunter2"),
        "{text}"
    );
    let (ok, text) = run(&[
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        ("AXUM_USERS_RESET_URL", "https://app.example.com/reset"),
    ]);
    assert!(
        !ok && text.contains("AXUM_USERS_RESET_URL") && text.contains("{token}"),
        "{text}"
    );
    let (ok, text) = run(&[
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        ("AXUM_USERS_SMTP_CA_FILE", "/nonexistent/ca.pem"),
    ]);
    assert!(!ok && text.contains("ca.pem"), "{text}");
}
