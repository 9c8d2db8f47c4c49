//! The secure e-mail change end to end: the confirmation link travels through a real SMTP
//! relay, a second pending change cannot land too (Devise CVE-2026-32700), and strict_compat
//! keeps FastAPI Users' immediate change.

use std::time::Duration;

use axum_users_mail::testing::smtp_harness_available;
use mail_parser::MessageParser;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::mail::starttls_relay;
use crate::support::*;

fn change(email: &str, current: &str) -> Value {
    json!({"email": email, "current_password": current})
}

async fn confirm(s: &Server, token: &str) -> (StatusCode, Value) {
    post_json(
        &client(),
        s.url("/auth/confirm-email-change"),
        json!({"token": token}),
    )
    .await
}

/// The `token=` of the link in a received message, and its text.
fn link_token(raw: &[u8]) -> (String, String) {
    let message = MessageParser::default().parse(raw).unwrap();
    let text = message.body_text(0).unwrap().into_owned();
    let token = text.split("token=").nth(1).expect("a link with token=");
    (token.split_whitespace().next().unwrap().to_owned(), text)
}

#[tokio::test]
async fn an_email_change_is_confirmed_through_the_link_mailed_over_smtp() {
    if !smtp_harness_available("an_email_change_is_confirmed_through_the_link_mailed_over_smtp") {
        return;
    }
    let ca = axum_users_mail::testing::TestCa::generate();
    let spool = tempfile::tempdir().unwrap();
    let (relay, env) = starttls_relay(&ca, spool.path());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let s = Server::start_with(&env);
    register(&s, "old@example.com", "secret1").await;
    let first = login(&s, "old@example.com", "secret1").await;
    let second = login(&s, "old@example.com", "secret1").await;

    let (status, body) = patch(
        &s,
        "/users/me",
        &first,
        change("new@example.com", "secret1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["email"], "old@example.com",
        "the address waits: {body}"
    );
    assert_eq!(body["pending_email"], "new@example.com");
    let (_, me) = get_me(&s, &first).await;
    assert_eq!(me["email"], "old@example.com");

    let got = relay.wait_for(2, Duration::from_secs(20)).await;
    let to = |i: usize| got[i].meta["rcpt_tos"][0].as_str().unwrap().to_owned();
    let confirm_at = (0..2)
        .find(|&i| to(i) == "new@example.com")
        .expect("a mail to the new address");
    let notice_at = 1 - confirm_at;
    assert_eq!(
        to(notice_at),
        "old@example.com",
        "the old address gets the notice"
    );
    let notice = MessageParser::default().parse(&got[notice_at].raw).unwrap();
    assert!(notice.body_text(0).unwrap().contains("new@example.com"));
    assert!(
        !String::from_utf8_lossy(&got[notice_at].raw).contains("token="),
        "no link in the notice"
    );
    let (token, text) = link_token(&got[confirm_at].raw);
    assert!(
        text.contains("https://app.example.com/confirm-email-change?token="),
        "{text}"
    );

    // Confirmed from the first session: it stays, the other one ends.
    let (status, user) = read(
        client()
            .post(s.url("/auth/confirm-email-change"))
            .bearer_auth(&first)
            .json(&json!({"token": token}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(
        (user["email"].as_str(), user["is_verified"].as_bool()),
        (Some("new@example.com"), Some(true))
    );
    assert_eq!(get_me(&s, &first).await.1["email"], "new@example.com");
    let (status, _) = get_me(&s, &second).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the other session ends");
    let (status, body) = confirm(&s, &token).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("EMAIL_CHANGE_BAD_TOKEN")),
        "single use"
    );
    login(&s, "new@example.com", "secret1").await;
    let (status, _) = try_login(&s, "old@example.com", "secret1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The "e-mail changed" notice to the old address.
    let got = relay.wait_for(3, Duration::from_secs(20)).await;
    assert_eq!(got[2].meta["rcpt_tos"][0], "old@example.com");
}

#[tokio::test]
async fn of_two_pending_changes_confirmed_at_once_only_one_lands() {
    for db in databases().await {
        let s = start_env(&db.env());
        register(&s, "race@example.com", "secret1").await;
        let token = login(&s, "race@example.com", "secret1").await;
        for to in ["race-a@example.com", "race-b@example.com"] {
            let (status, body) = patch(&s, "/users/me", &token, change(to, "secret1")).await;
            assert_eq!(
                (status, &body["pending_email"]),
                (StatusCode::OK, &json!(to)),
                "{}",
                db.name
            );
        }
        let a = s.wait_token("race-a@example.com", 1).await;
        let b = s.wait_token("race-b@example.com", 1).await;
        let ((sa, ba), (sb, bb)) = tokio::join!(confirm(&s, &a), confirm(&s, &b));
        let mut statuses = [sa, sb];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::BAD_REQUEST],
            "{}: {ba} {bb}",
            db.name
        );
        let (winner, loser) = if sa == StatusCode::OK {
            (ba, bb)
        } else {
            (bb, ba)
        };
        assert_eq!(detail(&loser), "EMAIL_CHANGE_BAD_TOKEN", "{}", db.name);
        let (status, _) = try_login(&s, winner["email"].as_str().unwrap(), "secret1").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: the winner's address signs in",
            db.name
        );
        for stale in [&a, &b] {
            let (status, body) = confirm(&s, stale).await;
            assert_eq!(
                (status, detail(&body)),
                (StatusCode::BAD_REQUEST, &json!("EMAIL_CHANGE_BAD_TOKEN")),
                "{}",
                db.name
            );
        }
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn a_taken_address_a_superseded_and_a_malformed_token_are_refused() {
    let s = Server::start();
    register(&s, "mover@example.com", "secret1").await;
    let token = login(&s, "mover@example.com", "secret1").await;
    let (status, _) = patch(
        &s,
        "/users/me",
        &token,
        change("wanted@example.com", "secret1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let wanted = s.wait_token("wanted@example.com", 1).await;
    register(&s, "wanted@example.com", "secret1").await;
    let (status, body) = confirm(&s, &wanted).await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_EMAIL_ALREADY_EXISTS")
        )
    );

    // Without the current password nothing is requested.
    let (status, body) = patch(&s, "/users/me", &token, json!({"email": "x@example.com"})).await;
    assert_eq!(
        (status, detail(&body)),
        (
            StatusCode::BAD_REQUEST,
            &json!("UPDATE_USER_CURRENT_PASSWORD_REQUIRED")
        )
    );

    // A superuser's change makes the pending link stale, and is immediate.
    let (status, _) = patch(
        &s,
        "/users/me",
        &token,
        change("later@example.com", "secret1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let later = s.wait_token("later@example.com", 1).await;
    let root = superuser(&s, "root@example.com").await;
    let (_, me) = get_me(&s, &token).await;
    let path = format!("/users/{}", me["id"].as_str().unwrap());
    let (status, body) = patch(&s, &path, &root, json!({"email": "admin-set@example.com"})).await;
    assert_eq!(
        (status, &body["email"]),
        (StatusCode::OK, &json!("admin-set@example.com")),
        "{body}"
    );
    assert!(body.get("pending_email").is_none());
    let (status, body) = confirm(&s, &later).await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::BAD_REQUEST, &json!("EMAIL_CHANGE_BAD_TOKEN"))
    );

    // An auth JWT is not an e-mail change token; nor is garbage.
    let auth = login(&s, "wanted@example.com", "secret1").await;
    for bad in ["", "not-a-token", auth.as_str()] {
        let (status, body) = confirm(&s, bad).await;
        assert_eq!(
            (status, detail(&body)),
            (StatusCode::BAD_REQUEST, &json!("EMAIL_CHANGE_BAD_TOKEN")),
            "{bad}"
        );
    }
    let (status, _) = post_json(&client(), s.url("/auth/confirm-email-change"), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn strict_compat_and_immediate_change_the_address_at_once() {
    for env in [
        [("AXUM_USERS_STRICT_COMPAT", "true")],
        [("AXUM_USERS_EMAIL_CHANGE", "immediate")],
    ] {
        let s = Server::start_with(&env);
        register(&s, "now@example.com", "secret1").await;
        let token = login(&s, "now@example.com", "secret1").await;
        let (status, body) = patch(
            &s,
            "/users/me",
            &token,
            change("moved@example.com", "secret1"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{env:?}: {body}");
        assert_eq!(
            (&body["email"], &body["is_verified"]),
            (&json!("moved@example.com"), &json!(false)),
            "{env:?}"
        );
        assert!(
            body.get("pending_email").is_none(),
            "{env:?}: the reference's answer"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            s.mails_to("moved@example.com").is_empty(),
            "{env:?}: no link"
        );
    }
}

#[tokio::test]
async fn confirmations_are_rate_limited_with_the_verify_rule() {
    let s = Server::start_with(&[
        ("AXUM_USERS_RATE_LIMITS", "true"),
        ("AXUM_USERS_RATE_LIMITS_VERIFY_PER_IP", "3/600"),
    ]);
    for _ in 0..3 {
        let (status, body) = confirm(&s, "guess").await;
        assert_eq!(detail(&body), "EMAIL_CHANGE_BAD_TOKEN", "{status}");
    }
    let (status, body) = confirm(&s, "guess").await;
    assert_eq!(
        (status, detail(&body)),
        (StatusCode::TOO_MANY_REQUESTS, &json!("TOO_MANY_REQUESTS"))
    );
}

#[tokio::test]
async fn the_old_address_notice_is_mailed_unless_turned_off() {
    for (setting, notices) in [("true", 2), ("false", 0)] {
        let s = Server::start_with(&[("AXUM_USERS_MAIL_NOTIFY_EMAIL_CHANGED", setting)]);
        register(&s, "was@example.com", "secret1").await;
        let token = login(&s, "was@example.com", "secret1").await;
        let (status, body) = patch(
            &s,
            "/users/me",
            &token,
            change("now@example.com", "secret1"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let link = s.wait_token("now@example.com", 1).await;
        assert_eq!(confirm(&s, &link).await.0, StatusCode::OK);
        // The outbox sends in order of queueing: a later message to the old address shows that
        // every notice queued before it went out (or was never queued).
        let (status, _) = post_json(
            &client(),
            s.url("/auth/forgot-password"),
            json!({"email": "now@example.com"}),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        s.wait_token("now@example.com", 2).await;
        let sent = s
            .mails_to("was@example.com")
            .iter()
            .filter(|m| m.contains("now@example.com"))
            .count();
        assert_eq!(
            sent, notices,
            "AXUM_USERS_MAIL_NOTIFY_EMAIL_CHANGED={setting}"
        );
    }
}
