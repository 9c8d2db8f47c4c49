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
        let mut env = vec![(
            "AXUM_USERS_MAILER",
            "smtps://mailer:hunter2-secret@mail.example.com",
        )];
        env.extend_from_slice(extra);
        cli(dir.path(), &env, &["config", "check"])
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

/// Runs the binary with the test environment of `dir` plus `extra`: success and output.
pub fn cli(dir: &std::path::Path, extra: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let mut command = Command::new(BIN);
    command.current_dir(dir).env_clear();
    for (k, v) in test_env(dir) {
        command.env(k, v);
    }
    for (k, v) in extra {
        command.env(k, v);
    }
    let out = command.args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A port where no relay listens yet: the harness takes a free one and is stopped.
fn reserved_port(spool: &std::path::Path) -> u16 {
    let relay = SmtpHarness::start(spool, &HarnessOptions::default(), None);
    let port = relay.port();
    relay.stop();
    port
}

fn relay_on(spool: &std::path::Path, port: u16) -> SmtpHarness {
    let mut options = HarnessOptions::default();
    options.port = port;
    SmtpHarness::start(spool, &options, None)
}

/// The token of the reset link in a received message.
fn reset_token(raw: &[u8]) -> String {
    let message = MessageParser::default().parse(raw).unwrap();
    let text = message.body_text(0).unwrap().into_owned();
    let token = text.split("token=").nth(1).expect("a link with token=");
    token.split_whitespace().next().unwrap().to_owned()
}

/// A folder for a relay, the port it will listen on (nobody yet), and the mailer URL for it.
fn down_relay() -> (tempfile::TempDir, u16, String) {
    let spool = tempfile::tempdir().unwrap();
    let port = reserved_port(spool.path());
    (spool, port, format!("smtp://127.0.0.1:{port}"))
}

/// The mailed reset token works, the outbox is empty, and the relay got the message once.
async fn reset_works_and_was_sent_once(
    s: &Server,
    env: &[(&str, &str)],
    relay: &SmtpHarness,
    raw: &[u8],
) {
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": reset_token(raw), "password": "newsecret"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_queued(s.dir.path(), env, 0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.received().len(), 1, "sent exactly once");
}

async fn forgot(s: &Server, email: &str) {
    let (status, _) = post_json(
        &client(),
        s.url("/auth/forgot-password"),
        json!({"email": email}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

/// Waits until `mail list` shows `n` queued messages; returns its output.
async fn wait_queued(dir: &std::path::Path, env: &[(&str, &str)], n: usize) -> String {
    for _ in 0..100 {
        let (ok, text) = cli(dir, env, &["mail", "list"]);
        assert!(ok, "{text}");
        if text.contains(&format!("{n} queued")) {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never {n} queued");
}

#[tokio::test]
async fn a_mail_asked_for_while_the_relay_is_down_arrives_when_it_is_back() {
    if !smtp_harness_available("a_mail_asked_for_while_the_relay_is_down_arrives_when_it_is_back") {
        return;
    }
    let (spool, port, mailer) = down_relay();
    let env = [
        ("AXUM_USERS_MAILER", mailer.as_str()),
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        ("AXUM_USERS_MAIL_RETRY_BASE_SECONDS", "0.5"),
    ];
    let s = Server::start_with(&env);
    register(&s, "down@example.com", "secret1").await;
    let asked = std::time::Instant::now();
    forgot(&s, "down@example.com").await;
    let listed = wait_queued(s.dir.path(), &env, 1).await;
    assert!(
        listed.contains("pending\treset\tdown@example.com"),
        "{listed}"
    );
    assert!(
        !listed.contains("v1.") && !listed.contains("eyJ"),
        "no body or token is listed: {listed}"
    );

    tokio::time::sleep(Duration::from_secs(10).saturating_sub(asked.elapsed())).await;
    let relay = relay_on(spool.path(), port);
    let got = relay.wait_for(1, Duration::from_secs(40)).await;
    reset_works_and_was_sent_once(&s, &env, &relay, &got[0].raw).await;
}

/// Takes SQLite's write lock on the database at `url` from a connection of its own and gives it
/// back after `hold`; a writer of the server waits for it meanwhile (its busy time-out).
async fn hold_write_lock(url: &str, hold: Duration) -> tokio::task::JoinHandle<()> {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut conn)
        .await
        .unwrap();
    tokio::spawn(async move {
        tokio::time::sleep(hold).await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
    })
}

/// The 202 of forgot-password leaves only once the outbox row is committed: killed at once after
/// it, the server loses nothing.
#[tokio::test]
async fn a_server_killed_at_once_after_the_202_sends_the_mail_after_a_restart() {
    if !smtp_harness_available(
        "a_server_killed_at_once_after_the_202_sends_the_mail_after_a_restart",
    ) {
        return;
    }
    // The relay is down during the first run, so the mail cannot have left before the kill.
    let (spool, port, mailer) = down_relay();
    let env = [
        ("AXUM_USERS_MAILER", mailer.as_str()),
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        ("AXUM_USERS_MAIL_RETRY_BASE_SECONDS", "0.5"),
        // Above the lock's second, with room for a loaded test machine: within the floor the
        // answer waits for the write.
        ("AXUM_USERS_MAIL_ANSWER_FLOOR_MS", "4000"),
    ];
    let s = Server::start_with(&env);
    register(&s, "killed@example.com", "secret1").await;
    // The outbox insert has to wait a second for SQLite's write lock: an answer that left before
    // the write would leave it undone when the kill comes.
    let lock = hold_write_lock(&s.db_url(), Duration::from_secs(1)).await;
    forgot(&s, "killed@example.com").await;
    let dir = s.stop(); // SIGKILL, nothing awaited since the 202
    lock.await.unwrap();
    let (ok, listed) = cli(dir.path(), &env, &["mail", "list"]);
    assert!(ok, "{listed}");
    assert!(
        listed.contains("1 queued") && listed.contains("pending\treset\tkilled@example.com"),
        "the row was in the database when the 202 left: {listed}"
    );
    let relay = relay_on(spool.path(), port);
    let s = Server::start_in(dir, &env);
    let got = relay.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].meta["rcpt_tos"][0], "killed@example.com");
    reset_works_and_was_sent_once(&s, &env, &relay, &got[0].raw).await;
    login(&s, "killed@example.com", "newsecret").await;
}

#[tokio::test]
async fn a_failed_mail_is_listed_and_sent_by_mail_retry() {
    if !smtp_harness_available("a_failed_mail_is_listed_and_sent_by_mail_retry") {
        return;
    }
    let (spool, port, mailer) = down_relay();
    let env = [
        ("AXUM_USERS_MAILER", mailer.as_str()),
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
        ("AXUM_USERS_MAIL_MAX_ATTEMPTS", "1"),
    ];
    let s = Server::start_with(&env);
    register(&s, "failed@example.com", "secret1").await;
    forgot(&s, "failed@example.com").await;
    let mut listed = String::new();
    for _ in 0..100 {
        listed = cli(s.dir.path(), &env, &["mail", "list"]).1;
        if listed.contains("\tfailed\t") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        listed.contains("failed\treset\tfailed@example.com\tattempts=1"),
        "{listed}"
    );
    let relay = relay_on(spool.path(), port);
    let (ok, text) = cli(s.dir.path(), &env, &["mail", "retry"]);
    assert!(ok && text.contains("1 queued again"), "{text}");
    let got = relay.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].meta["rcpt_tos"][0], "failed@example.com");
}

#[tokio::test]
async fn a_changed_or_reset_password_is_notified_unless_turned_off() {
    let s = Server::start_with(&[("AXUM_USERS_MAIL_NOTIFY_PASSWORD_CHANGED", "true")]);
    register(&s, "notice@example.com", "secret1").await;
    let token = login(&s, "notice@example.com", "secret1").await;
    let (status, body) = patch(
        &s,
        "/users/me",
        &token,
        json!({"password": "secret2", "current_password": "secret1"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let notice = |s: &Server, n: usize| {
        s.mails_to("notice@example.com")
            .iter()
            .filter(|m| m.contains("password was changed"))
            .count()
            >= n
    };
    for _ in 0..100 {
        if notice(&s, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(notice(&s, 1), "a notice after PATCH with a password");
    forgot(&s, "notice@example.com").await;
    let reset = s.wait_token("notice@example.com", 2).await;
    let (status, _) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "secret3"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for _ in 0..100 {
        if notice(&s, 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(notice(&s, 2), "a notice after a reset");
    let (status, _) = patch(
        &s,
        "/users/me",
        &login(&s, "notice@example.com", "secret3").await,
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Turned off (the tests' default): no notice.
    let quiet = Server::start();
    register(&quiet, "quiet@example.com", "secret1").await;
    forgot(&quiet, "quiet@example.com").await;
    let reset = quiet.wait_token("quiet@example.com", 1).await;
    let (status, _) = post_json(
        &client(),
        quiet.url("/auth/reset-password"),
        json!({"token": reset, "password": "secret3"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        quiet.mails_to("quiet@example.com").len(),
        1,
        "only the reset link"
    );
}

#[tokio::test]
async fn templates_from_the_folder_replace_the_shipped_ones_and_a_broken_one_stops_the_start() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("reset.subject.txt"),
        "{{ app_name }}: new password for {{ email }}",
    )
    .unwrap();
    std::fs::write(templates.path().join("reset.txt"), "Here: {{ link }}\n").unwrap();
    let folder = templates.path().display().to_string();
    let s = Server::start_with(&[
        ("AXUM_USERS_MAIL_TEMPLATES", folder.as_str()),
        ("AXUM_USERS_APP_NAME", "Acme"),
    ]);
    register(&s, "tpl@example.com", "secret1").await;
    forgot(&s, "tpl@example.com").await;
    let token = s.wait_token("tpl@example.com", 1).await;
    let mail = &s.mails_to("tpl@example.com")[0];
    let message = MessageParser::default().parse(mail.as_bytes()).unwrap();
    assert_eq!(
        message.subject(),
        Some("Acme: new password for tpl@example.com")
    );
    assert_eq!(
        message.body_text(0).unwrap().trim_end(),
        format!("Here: https://app.example.com/reset-password?token={token}")
    );
    assert!(
        message.body_html(0).unwrap().contains("Reset my password"),
        "the HTML part not in the folder stays as shipped"
    );

    std::fs::write(
        templates.path().join("verify.html"),
        "{{ no_such_variable }}",
    )
    .unwrap();
    let (ok, text) = cli(
        s.dir.path(),
        &[("AXUM_USERS_MAIL_TEMPLATES", folder.as_str())],
        &["config", "check"],
    );
    assert!(
        !ok && text.contains("verify.html") && text.contains("AXUM_USERS_MAIL_TEMPLATES"),
        "{text}"
    );
}

/// A password sign-in on the JWT backend with this `User-Agent` (none: no header).
async fn login_as(s: &Server, email: &str, password: &str, agent: Option<&str>) -> String {
    let mut r = client()
        .post(s.url("/auth/jwt/login"))
        .form(&[("username", email), ("password", password)]);
    if let Some(agent) = agent {
        r = r.header("user-agent", agent);
    }
    let (status, body) = read(r.send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_notified_over_smtp_unless_turned_off() {
    if !smtp_harness_available(
        "a_sign_in_from_a_new_device_is_notified_over_smtp_unless_turned_off",
    ) {
        return;
    }
    let spool = tempfile::tempdir().unwrap();
    let relay = SmtpHarness::start(spool.path(), &HarnessOptions::default(), None);
    let mailer = format!("smtp://127.0.0.1:{}", relay.port());
    let base = [
        ("AXUM_USERS_MAILER", mailer.as_str()),
        ("AXUM_USERS_MAIL_FROM", "no-reply@example.com"),
    ];
    let mut env = base.to_vec();
    env.push(("AXUM_USERS_MAIL_NOTIFY_NEW_DEVICE", "true"));
    let s = Server::start_with(&env);
    register(&s, "nd@example.com", "new-device-phrase1").await;
    let notices = |relay: &SmtpHarness| -> Vec<String> {
        relay
            .received()
            .iter()
            .filter_map(|m| MessageParser::default().parse(&m.raw))
            .filter(|m| m.subject().is_some_and(|s| s.starts_with("New sign-in")))
            .map(|m| m.body_text(0).unwrap().into_owned())
            .collect()
    };
    let phone = Some("Phone/1.0");
    login_as(&s, "nd@example.com", "new-device-phrase1", phone).await;
    login_as(&s, "nd@example.com", "new-device-phrase1", phone).await;
    // A sign-in answers after its notice is queued; give the worker time to send anything.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        notices(&relay).is_empty(),
        "the first sign-in, then the same device again: nothing new"
    );

    let token = login_as(&s, "nd@example.com", "new-device-phrase1", Some("Evil/6.6")).await;
    let got = relay.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got[0].meta["rcpt_tos"][0], "nd@example.com");
    let text = &notices(&relay)[0];
    assert!(text.contains("Evil/6.6"), "the device: {text}");
    assert!(text.contains("password"), "the method: {text}");
    assert!(text.contains("127.0.0.1"), "the address: {text}");

    // Signed out everywhere, the same person comes back on another device: still news.
    let r = client()
        .delete(s.url("/users/me/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = client()
        .post(s.url("/auth/jwt/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    login_as(
        &s,
        "nd@example.com",
        "new-device-phrase1",
        Some("Tablet/2.0"),
    )
    .await;
    relay.wait_for(2, Duration::from_secs(20)).await;
    assert!(notices(&relay)[1].contains("Tablet/2.0"));
    drop(s);

    // Turned off: a new device says nothing.
    let mut quiet = base.to_vec();
    quiet.push(("AXUM_USERS_MAIL_NOTIFY_NEW_DEVICE", "false"));
    let s = Server::start_with(&quiet);
    register(&s, "nd2@example.com", "new-device-phrase1").await;
    login_as(&s, "nd2@example.com", "new-device-phrase1", phone).await;
    login_as(
        &s,
        "nd2@example.com",
        "new-device-phrase1",
        Some("Evil/6.6"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(notices(&relay).len(), 2, "no notice when turned off");
}

#[tokio::test]
async fn every_message_arrives_over_smtp_as_valid_mime() {
    use crate::mfa::{call, code};
    use reqwest::Method;
    if !smtp_harness_available("every_message_arrives_over_smtp_as_valid_mime") {
        return;
    }
    let spool = tempfile::tempdir().unwrap();
    let relay = SmtpHarness::start(spool.path(), &HarnessOptions::default(), None);
    let mailer = format!("smtp://127.0.0.1:{}", relay.port());
    let s = Server::start_with(&[
        ("AXUM_USERS_MAILER", mailer.as_str()),
        ("AXUM_USERS_MAIL_FROM", "Acme Café <no-reply@example.com>"),
        ("AXUM_USERS_APP_NAME", "Acme Café"),
        ("AXUM_USERS_SEND_VERIFICATION_ON_REGISTER", "true"),
        ("AXUM_USERS_MAIL_NOTIFY_PASSWORD_CHANGED", "true"),
        ("AXUM_USERS_MAIL_NOTIFY_NEW_DEVICE", "true"),
    ]);
    let (email, new_email) = ("every@example.com", "every2@example.com");
    let mut expected = vec![("verify", email)];
    register(&s, email, "every-phrase-1").await;
    relay
        .wait_for(expected.len(), Duration::from_secs(20))
        .await;

    forgot(&s, email).await;
    expected.push(("reset", email));
    let got = relay
        .wait_for(expected.len(), Duration::from_secs(20))
        .await;
    let reset = reset_token(&got[1].raw);
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "every-phrase-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expected.push(("password_changed", email));

    let token = login(&s, email, "every-phrase-2").await;
    let (status, enrolment) = call(
        &s,
        Method::POST,
        "/users/me/mfa/totp",
        &token,
        json!({"current_password": "every-phrase-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolment}");
    let secret = enrolment["secret"].as_str().unwrap();
    let (status, body) = call(
        &s,
        Method::POST,
        "/users/me/mfa/totp/confirm",
        &token,
        json!({"code": code(secret, 0)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    expected.push(("second_factor_added", email));
    let (status, body) = call(
        &s,
        Method::DELETE,
        "/users/me/mfa/totp",
        &token,
        json!({"current_password": "every-phrase-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    expected.push(("second_factor_removed", email));

    let token = login_as(&s, email, "every-phrase-2", Some("Other/1.0")).await;
    expected.push(("new_sign_in", email));
    let (status, body) = call(
        &s,
        Method::PATCH,
        "/users/me",
        &token,
        json!({"email": new_email, "current_password": "every-phrase-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pending_email"], new_email);
    expected.push(("email_change_confirm", new_email));
    expected.push(("email_change_notice", email));

    let got = relay
        .wait_for(expected.len(), Duration::from_secs(30))
        .await;
    let subjects = [
        ("verify", "Verify"),
        ("reset", "Reset your password"),
        ("password_changed", "password was changed"),
        ("second_factor_added", "second factor was added"),
        ("second_factor_removed", "was removed"),
        ("new_sign_in", "New sign-in"),
        ("email_change_confirm", "Confirm your new e-mail"),
        ("email_change_notice", "is changing"),
    ];
    let mut seen: Vec<(String, String)> = Vec::new();
    for received in &got {
        let message = MessageParser::default()
            .parse(&received.raw)
            .expect("a valid RFC 5322 message");
        let subject = message.subject().unwrap_or_default().to_owned();
        assert!(message.message_id().is_some(), "a Message-ID: {subject}");
        assert!(message.date().is_some(), "a Date: {subject}");
        assert_eq!(
            message
                .from()
                .and_then(|a| a.first())
                .and_then(|a| a.name()),
            Some("Acme Café"),
            "the encoded display name: {subject}"
        );
        assert!(message.body_text(0).is_some(), "a text part: {subject}");
        assert!(message.body_html(0).is_some(), "an HTML part: {subject}");
        let to = received.meta["rcpt_tos"][0].as_str().unwrap().to_owned();
        seen.push((subject, to));
    }
    for (kind, to) in &expected {
        let hint = subjects.iter().find(|(k, _)| k == kind).unwrap().1;
        assert!(
            seen.iter().any(|(subject, rcpt)| subject
                .to_lowercase()
                .contains(&hint.to_lowercase())
                && rcpt == to),
            "{kind} to {to} among {seen:?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "nothing else was sent: {seen:?}");
}
