//! `GET /metrics` (off by default; a token on the main address or a listener of its own) and the
//! JSON log (a request id on every line of a request, no secret in any field).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "metrics-token-of-at-least-32-bytes-0123";

async fn scrape(url: String, token: Option<&str>) -> (StatusCode, String) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The value of the series whose line starts with `name{` and holds every one of `labels`.
fn series(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_are_off_by_default() {
    let s = Server::start();
    let (status, _) = scrape(s.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn metrics_behind_the_token_count_requests_sign_ins_and_hashing() {
    let s = Server::start_with(&[("AXUM_USERS_METRICS_TOKEN", TOKEN)]);
    for token in [None, Some("wrong"), Some(&TOKEN[..TOKEN.len() - 1])] {
        let (status, body) = scrape(s.url("/metrics"), token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert!(!body.contains("axum_users_"), "nothing leaks: {body}");
    }
    let (status, before) = scrape(s.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        series(&before, "axum_users_sign_ins_total", &["outcome=\"ok\""]),
        None
    );

    register(&s, "m@example.com", "pw-metrics-1").await;
    let token = login(&s, "m@example.com", "pw-metrics-1").await;
    for _ in 0..3 {
        assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);
    }
    assert_eq!(get_me(&s, "not-a-token").await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = try_login(&s, "m@example.com", "wrong-password").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (_, text) = scrape(s.url("/metrics"), Some(TOKEN)).await;
    let me = |status: &str| {
        series(
            &text,
            "axum_users_http_request_duration_seconds_count",
            &["route=\"/users/me\"", "method=\"GET\"", status],
        )
    };
    assert_eq!(me("status=\"200\""), Some(3.0), "{text}");
    assert_eq!(me("status=\"401\""), Some(1.0), "{text}");
    assert!(
        series(
            &text,
            "axum_users_http_request_duration_seconds_bucket",
            &["route=\"/users/me\"", "status=\"200\"", "le=\"+Inf\""],
        ) == Some(3.0),
        "a histogram with buckets: {text}"
    );
    let sign_ins = |outcome: &str| {
        series(
            &text,
            "axum_users_sign_ins_total",
            &["method=\"password\"", outcome],
        )
    };
    assert_eq!(sign_ins("outcome=\"ok\""), Some(1.0), "{text}");
    assert_eq!(
        sign_ins("outcome=\"LOGIN_BAD_CREDENTIALS\""),
        Some(1.0),
        "{text}"
    );
    // Register, the login and the bad login: three hashes waited for a thread.
    assert!(
        text.lines()
            .any(|l| l.starts_with("axum_users_hash_wait_seconds_count") && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(
        text.contains("\naxum_users_hash_queue_length 0\n"),
        "{text}"
    );
    assert!(
        series(&text, "axum_users_db_connections", &["state=\"idle\""]).is_some(),
        "{text}"
    );
    assert!(
        series(&text, "axum_users_outbox_depth", &["status=\"failed\""]) == Some(0.0),
        "{text}"
    );
    // The ids of paths never become labels: the template does.
    assert!(!text.contains("not-a-token"), "{text}");
}

#[tokio::test]
async fn rate_limit_refusals_are_counted() {
    let s = Server::start_with(&[
        ("AXUM_USERS_METRICS_TOKEN", TOKEN),
        ("AXUM_USERS_RATE_LIMITS", "true"),
        ("AXUM_USERS_RATE_LIMITS_FORGOT_PASSWORD_PER_IP", "1/60"),
    ]);
    let c = client();
    let forgot = || {
        post_json(
            &c,
            s.url("/auth/forgot-password"),
            json!({"email": "nobody@example.com"}),
        )
    };
    assert_eq!(forgot().await.0, StatusCode::ACCEPTED);
    assert_eq!(forgot().await.0, StatusCode::TOO_MANY_REQUESTS);
    let (_, text) = scrape(s.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(
        series(
            &text,
            "axum_users_rate_limit_rejections_total",
            &["route=\"forgot_password\"", "by=\"ip\""],
        ),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn metrics_on_their_own_listener_need_no_token_and_stay_off_the_api() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let s = Server::start_with(&[("AXUM_USERS_METRICS_BIND", &bind)]);
    get_me(&s, "x").await;
    let (status, text) = scrape(format!("http://{bind}/metrics"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("axum_users_http_request_duration_seconds_count{route=\"/users/me\""),
        "{text}"
    );
    let (status, _) = scrape(format!("http://{bind}/users/me"), None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the listener serves only /metrics"
    );
    let (status, _) = scrape(s.url("/metrics"), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not on the API's address");
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_no_secret() {
    let s = Server::start_with(&[
        ("AXUM_USERS_LOG_FORMAT", "json"),
        ("AXUM_USERS_LOG", "debug,hyper=info,h2=info"),
    ]);
    let password = "pw-json-log-secret-1";
    register(&s, "j@example.com", password).await;
    let token = login(&s, "j@example.com", password).await;
    let response = client()
        .get(s.url("/users/me"))
        .bearer_auth(&token)
        .header("x-request-id", "test-request-7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "test-request-7");
    let response = client()
        .get(s.url("/users/me"))
        .header("x-request-id", "a bad id\twith spaces")
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made.len(), 32, "a new id replaces an unsafe one: {made}");
    let (status, _) = post_json(
        &client(),
        s.url("/auth/forgot-password"),
        json!({"email": "j@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reset = s.wait_token("j@example.com", 1).await;
    let (status, body) = post_json(
        &client(),
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "pw-json-log-new-2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let log = s.log.lock().unwrap().clone();
    let mut requests = Vec::new();
    for line in &log {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        for secret in [password, "pw-json-log-new-2", &token, &reset] {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
        if let Some(spans) = value["spans"].as_array() {
            let id = spans[0]["request_id"].as_str();
            assert!(
                id.is_some_and(|id| !id.is_empty()),
                "a line of a request without its id: {line}"
            );
            if value["message"] == "request" {
                requests.push((id.unwrap().to_owned(), spans[0]["path"].clone()));
            }
        }
    }
    assert!(
        requests.contains(&("test-request-7".into(), json!("/users/me"))),
        "{requests:?}"
    );
    assert!(requests.iter().any(|(id, _)| *id == made), "{requests:?}");
    // register, login, two reads, forgot, reset: one line each, at least.
    assert!(requests.len() >= 6, "{requests:?}");
    let ids: std::collections::HashSet<_> = requests.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), requests.len(), "one id per request");
}
