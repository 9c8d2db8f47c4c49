//! Settings end to end: the log mailer keeps tokens out of the log, OAuth needs a public URL,
//! earlier secrets keep tokens valid across a rotation, and `--help` matches the documentation.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

/// Asks for a reset link and returns the log lines of the mail (waiting for them).
async fn forgot_password_log(s: &Server, email: &str) -> Vec<String> {
    register(s, email, "secret1").await;
    let (status, _) = post_json(
        &client(),
        s.url("/auth/forgot-password"),
        json!({"email": email}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    for _ in 0..100 {
        let log = s.log.lock().unwrap().clone();
        if log.iter().any(|l| l.contains("reset-password?token=")) {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no reset link in the log: {:?}", s.log.lock().unwrap());
}

#[tokio::test]
async fn the_log_mailer_redacts_tokens_unless_asked() {
    let s = Server::start_with(&[("AXUM_USERS_MAILER", "log")]);
    let log = forgot_password_log(&s, "alice@example.com").await;
    let text = log.join("\n");
    assert!(
        text.contains("https://app.example.com/reset-password?token=[redacted]"),
        "{text}"
    );
    assert!(text.contains("alice@example.com") && text.contains("Reset your password"));
    assert!(
        text.split("token=")
            .skip(1)
            .all(|t| t.starts_with("[redacted]")),
        "a token reached the log: {text}"
    );
    assert!(text.contains("no mail is sent"), "{text}");

    // Asked for explicitly (with a loud warning), the log carries the live token.
    let s = Server::start_with(&[("AXUM_USERS_MAILER", "log+tokens")]);
    let log = forgot_password_log(&s, "bob@example.com").await;
    let text = log.join("\n");
    assert!(text.contains("TOKENS ARE WRITTEN TO"), "{text}");
    let token = text
        .split("reset-password?token=")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .unwrap();
    assert_ne!(token, "[redacted]");
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": token, "password": "secret2"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the logged token is the live one: {body}"
    );
    login(&s, "bob@example.com", "secret2").await;
}

/// Runs `args` with the test environment plus `extra`; returns (success, stdout + stderr).
fn run(dir: &std::path::Path, extra: &[(&str, &str)], args: &[&str]) -> (bool, String) {
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

#[test]
fn an_oauth_provider_requires_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("axum-users.toml");
    std::fs::write(
        &config,
        "[oauth.gh]\nkind = \"github\"\nclient_id = \"id\"\nclient_secret = \"s\"\n",
    )
    .unwrap();
    for args in [&["config", "check"][..], &["serve"]] {
        let (ok, text) = run(dir.path(), &[], args);
        assert!(!ok, "{args:?} without public_url: {text}");
        assert!(
            text.contains("missing public_url (AXUM_USERS_PUBLIC_URL)"),
            "{args:?}: {text}"
        );
    }
    let (ok, text) = run(
        dir.path(),
        &[("AXUM_USERS_PUBLIC_URL", "https://api.example.com")],
        &["config", "check"],
    );
    assert!(ok && text.contains("oauth: gh"), "{text}");
}

#[tokio::test]
async fn previous_secrets_keep_tokens_valid_across_a_rotation() {
    const A: &str = "secret-a-0123456789abcdef0123456789abcdef";
    const B: &str = "secret-b-0123456789abcdef0123456789abcdef";
    let s = Server::start_with(&[("AXUM_USERS_SECRET", A)]);
    register(&s, "carol@example.com", "carolpass").await;
    let token = login(&s, "carol@example.com", "carolpass").await;
    assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);

    let s = Server::start_in(
        s.stop(),
        &[("AXUM_USERS_SECRET", B), ("AXUM_USERS_PREVIOUS_SECRETS", A)],
    );
    assert_eq!(
        get_me(&s, &token).await.0,
        StatusCode::OK,
        "B with A as a previous secret accepts A's token"
    );
    let fresh = login(&s, "carol@example.com", "carolpass").await;
    assert!(
        s.log.lock().unwrap().iter().all(|l| !l.contains(A)),
        "a previous secret reached the log"
    );

    let s = Server::start_in(s.stop(), &[("AXUM_USERS_SECRET", B)]);
    assert_eq!(
        get_me(&s, &token).await.0,
        StatusCode::UNAUTHORIZED,
        "B alone refuses A's token"
    );
    assert_eq!(
        get_me(&s, &fresh).await.0,
        StatusCode::OK,
        "B signs new tokens"
    );
}

/// The `AXUM_USERS_*` names in `text`; an example of a provider's secret variable
/// (`AXUM_USERS_OAUTH_GOOGLE_CLIENT_SECRET`) counts as `AXUM_USERS_OAUTH_<NAME>_CLIENT_SECRET`.
fn variables(text: &str) -> BTreeSet<String> {
    text.match_indices("AXUM_USERS_")
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_<>".contains(*c))
                .collect::<String>()
        })
        .filter(|name| name.len() > "AXUM_USERS_".len() && !name.ends_with('_'))
        .map(|name| {
            if name.starts_with("AXUM_USERS_OAUTH_") && name.ends_with("_CLIENT_SECRET") {
                "AXUM_USERS_OAUTH_<NAME>_CLIENT_SECRET".to_owned()
            } else {
                name
            }
        })
        .collect()
}

#[test]
fn help_lists_exactly_the_documented_variables() {
    let mut help = String::new();
    for args in [&["--help"][..], &["create-superuser", "--help"]] {
        let out = Command::new(BIN).env_clear().args(args).output().unwrap();
        assert!(out.status.success());
        help.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/configuration.md"
    ))
    .unwrap();
    let (help, docs) = (variables(&help), variables(&docs));
    assert!(help.len() > 30, "{help:?}");
    let undocumented: Vec<_> = help.difference(&docs).collect();
    let not_in_help: Vec<_> = docs.difference(&help).collect();
    assert!(
        undocumented.is_empty() && not_in_help.is_empty(),
        "in --help only: {undocumented:?}; in docs/configuration.md only: {not_in_help:?}"
    );
}
