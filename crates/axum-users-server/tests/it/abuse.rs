//! The abuse defences end to end: the password policy, the per-account login throttle, the
//! rate limits (through a trusted proxy's header), the mail cooldown, counters shared by two
//! nodes through Redis and failing open when it stops, and the breached-password check against
//! a loopback fake of the range API.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::services::PrivateRedis;
use crate::support::{
    SECRET, Server, client, detail, get_me, login, patch, post_json, read, register,
};

/// The defences as a deployment has them (the test environment turns them off).
const ON: [(&str, &str); 5] = [
    ("AXUM_USERS_RATE_LIMITS", "true"),
    ("AXUM_USERS_MAIL_COOLDOWN_SECONDS", "60"),
    ("AXUM_USERS_PASSWORD_BLOCKLIST", "true"),
    ("AXUM_USERS_PASSWORD_EMAIL_CHECK", "true"),
    ("AXUM_USERS_PASSWORD_MIN_LENGTH", "8"),
];

fn with_defences<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    ON.iter().copied().chain(extra.iter().copied()).collect()
}

/// A sign-in through the trusted proxy on loopback, for the client `ip`.
async fn login_from(
    s: &Server,
    ip: &str,
    email: &str,
    password: &str,
) -> (StatusCode, Value, Option<String>) {
    let r = client()
        .post(s.url("/auth/jwt/login"))
        .header("x-forwarded-for", ip)
        .form(&[("username", email), ("password", password)])
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = read(r).await;
    (status, body, retry)
}

fn refused(code: &str, reason: &str) -> Value {
    json!({"detail": {"code": code, "reason": reason}})
}

const TOO_COMMON: &str = "Password is too common: choose a longer or less predictable one";
const HAS_EMAIL: &str = "Password must not contain your e-mail address or a part of it";

#[tokio::test]
async fn the_password_policy_refuses_and_accepts_on_every_way_a_password_is_set() {
    let s = Server::start_with(&with_defences(&[
        ("AXUM_USERS_SERVICE_NAME", "Acme Portal"),
        ("AXUM_USERS_RATE_LIMITS", "false"),
    ]));
    let c = client();
    let reg = |email: &str, password: &str| {
        post_json(
            &c,
            s.url("/auth/register"),
            json!({"email": email, "password": password}),
        )
    };
    let code = "REGISTER_INVALID_PASSWORD";
    for (password, reason) in [
        ("Zq7#kd!", "Password should be at least 8 characters"),
        ("Password1", TOO_COMMON),
        ("QWERTYUIOP", TOO_COMMON),
        ("margaret.h", HAS_EMAIL),
        ("wonderland-forever", HAS_EMAIL),
        (
            "acme portal rocks!",
            "Password must not contain the name of this service",
        ),
    ] {
        let (status, body) = reg("margaret.h@wonderland.example", password).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password}");
        assert_eq!(body, refused(code, reason), "{password}");
    }
    let (status, body) = reg("m@example.com", &"x7Qz".repeat(257)).await;
    assert_eq!(
        body,
        refused(code, "Password should be at most 1024 characters")
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A 64-character passphrase of plain words, spaces included, is welcome.
    let phrase = "correct horse battery staple under a violet sky at four thirty am";
    assert!(phrase.chars().count() >= 64);
    register(&s, "margaret.h@wonderland.example", phrase).await;

    // Reset and PATCH meet the same policy, with their own codes.
    let token = login(&s, "margaret.h@wonderland.example", phrase).await;
    let (status, body) = patch(
        &s,
        "/users/me",
        &token,
        json!({"password": "iloveyou", "current_password": phrase}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, refused("UPDATE_USER_INVALID_PASSWORD", TOO_COMMON));
    let (status, _) = post_json(
        &c,
        s.url("/auth/forgot-password"),
        json!({"email": "margaret.h@wonderland.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reset = s.wait_token("margaret.h@wonderland.example", 1).await;
    let (status, body) = post_json(
        &c,
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "MARGARET.H-2024"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, refused("RESET_PASSWORD_INVALID_PASSWORD", HAS_EMAIL));
    let (status, _) = post_json(
        &c,
        s.url("/auth/reset-password"),
        json!({"token": reset, "password": "a brand new passphrase, quite long"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_account_is_throttled_after_its_failures_from_any_ip_known_or_not() {
    let s = Server::start_with(&with_defences(&[
        // The login rate limits off, the throttle on (`AXUM_USERS_RATE_LIMITS=false` is both).
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", "off"),
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_ACCOUNT", "off"),
        ("AXUM_USERS_TRUSTED_PROXIES", "127.0.0.1/32"),
        ("AXUM_USERS_LOGIN_MAX_FAILURES", "3"),
        ("AXUM_USERS_LOGIN_FAILURE_WINDOW_SECONDS", "2"),
    ]));
    let right = "the right passphrase 42";
    register(&s, "victim@example.com", right).await;
    let mut answers = Vec::new();
    for email in ["victim@example.com", "ghost@example.com"] {
        // Three failures, from two client IPs behind the trusted proxy.
        for ip in ["203.0.113.1", "198.51.100.2", "203.0.113.1"] {
            let (status, body, _) = login_from(&s, ip, email, "wrong guess 1").await;
            assert_eq!(
                (status, body),
                (
                    StatusCode::BAD_REQUEST,
                    json!({"detail": "LOGIN_BAD_CREDENTIALS"})
                )
            );
        }
        // Then even the right password, from a third address, is refused without a check.
        let started = Instant::now();
        let (status, body, retry) = login_from(&s, "192.0.2.99", email, right).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        assert_eq!(body, json!({"detail": "TOO_MANY_REQUESTS"}));
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        answers.push((status, body, started.elapsed()));
    }
    assert_eq!(
        (answers[0].0, &answers[0].1),
        (answers[1].0, &answers[1].1),
        "a known and an unknown e-mail are throttled alike"
    );
    // Never permanent: once the window has passed, the right password works.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, _, _) = login_from(&s, "192.0.2.99", "victim@example.com", right).await;
    assert_eq!(status, StatusCode::OK);
    // A success does not erase the failures made from elsewhere.
    for ip in ["203.0.113.1", "203.0.113.1"] {
        login_from(&s, ip, "victim@example.com", "wrong guess 2").await;
    }
    let (status, _, _) = login_from(&s, "192.0.2.99", "victim@example.com", right).await;
    assert_eq!(status, StatusCode::OK);
    login_from(&s, "203.0.113.1", "victim@example.com", "wrong guess 3").await;
    let (status, _, _) = login_from(&s, "192.0.2.99", "victim@example.com", right).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn rate_limits_count_per_client_ip_and_ipv6_per_64() {
    let s = Server::start_with(&with_defences(&[
        ("AXUM_USERS_TRUSTED_PROXIES", "127.0.0.0/8"),
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", "3/60"),
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_ACCOUNT", "off"),
        ("AXUM_USERS_RATE_LIMITS_REGISTER_PER_IP", "2/60"),
        ("AXUM_USERS_RATE_LIMITS_FORGOT_PASSWORD_PER_IP", "2/60"),
    ]));
    for i in 0..3 {
        let (status, _, _) = login_from(
            &s,
            "2001:db8:1:2::1",
            &format!("a{i}@example.com"),
            "wrong guess 1",
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    // The same /64, another address in it: the same bucket.
    let (status, body, retry) =
        login_from(&s, "2001:db8:1:2:ffff::9", "b@example.com", "wrong guess 1").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"detail": "TOO_MANY_REQUESTS"})
        )
    );
    let retry: u64 = retry.unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    // Another /64 and an IPv4 client are not affected.
    let (status, _, _) = login_from(&s, "2001:db8:1:3::1", "b@example.com", "wrong guess 1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = login_from(&s, "203.0.113.5", "b@example.com", "wrong guess 1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Registration and forgot-password, per IP (the peer itself, no header).
    let c = client();
    for (path, body) in [
        (
            "/auth/register",
            json!({"email": "r1@example.com", "password": "a fine passphrase"}),
        ),
        (
            "/auth/register",
            json!({"email": "r2@example.com", "password": "a fine passphrase"}),
        ),
    ] {
        assert_eq!(
            post_json(&c, s.url(path), body).await.0,
            StatusCode::CREATED
        );
    }
    let (status, body) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "r3@example.com", "password": "a fine passphrase"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::TOO_MANY_REQUESTS,
            json!({"detail": "TOO_MANY_REQUESTS"})
        )
    );
    for expected in [
        StatusCode::ACCEPTED,
        StatusCode::ACCEPTED,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        let (status, _) = post_json(
            &c,
            s.url("/auth/forgot-password"),
            json!({"email": "x@example.com"}),
        )
        .await;
        assert_eq!(status, expected);
    }
    // /users/me is not limited.
    let token = login(&s, "r1@example.com", "a fine passphrase").await;
    for _ in 0..40 {
        assert_eq!(get_me(&s, &token).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_spoofed_forwarded_header_from_an_untrusted_peer_is_ignored() {
    let s = Server::start_with(&with_defences(&[(
        "AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP",
        "2/60",
    )]));
    let mut statuses = Vec::new();
    for i in 0..3 {
        let ip = format!("203.0.113.{i}");
        statuses.push(
            login_from(&s, &ip, "z@example.com", "wrong guess 1")
                .await
                .0,
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_REQUEST,
            StatusCode::BAD_REQUEST,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "without trusted_proxies, every request counts for the peer"
    );
}

#[tokio::test]
async fn rate_limits_false_turns_them_off() {
    // The throttle too: two failures would otherwise refuse the third.
    let s = Server::start_with(&with_defences(&[
        ("AXUM_USERS_RATE_LIMITS", "false"),
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", "1/60"),
        ("AXUM_USERS_LOGIN_MAX_FAILURES", "2"),
    ]));
    for _ in 0..4 {
        let (status, _, _) =
            login_from(&s, "203.0.113.1", "off@example.com", "wrong guess 1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn forgot_password_sends_one_mail_per_cooldown_and_answers_alike() {
    let s = Server::start_with(&with_defences(&[(
        "AXUM_USERS_RATE_LIMITS_FORGOT_PASSWORD_PER_IP",
        "off",
    )]));
    register(&s, "cool@example.com", "a chilly passphrase").await;
    let c = client();
    for email in ["cool@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            let (status, body) =
                post_json(&c, s.url("/auth/forgot-password"), json!({"email": email})).await;
            assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
        }
    }
    s.wait_token("cool@example.com", 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.mails_to("cool@example.com").len(),
        1,
        "one mail per cooldown"
    );
}

/// Two nodes with their counters in one Redis (a private one), the same e-mail attacked
/// through both.
#[tokio::test]
async fn two_nodes_share_their_counters_through_redis_and_fail_open_when_it_stops() {
    let mut redis = PrivateRedis::unstarted();
    redis.start();
    let url = redis.url();
    let env = with_defences(&[
        ("AXUM_USERS_REDIS_URL", url.as_str()),
        ("AXUM_USERS_REDIS_TIMEOUT_SECONDS", "0.5"),
        ("AXUM_USERS_RATE_LIMITS_LOGIN_PER_ACCOUNT", "4/60"),
        // Nodes of one deployment share the secret, which keys the counters' names in Redis.
        ("AXUM_USERS_SECRET", SECRET),
    ]);
    let a = Server::start_with(&env);
    let b = Server::start_with(&env);
    for node in [&a, &b, &a, &b] {
        let (status, _, _) =
            login_from(node, "1.1.1.1", "shared@example.com", "wrong guess 1").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    for node in [&a, &b] {
        let (status, _, _) =
            login_from(node, "1.1.1.1", "shared@example.com", "wrong guess 1").await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "the fifth on either node"
        );
    }

    // Redis stops: the limiter fails open with a warning, requests are served.
    redis.stop();
    let (status, body, _) = login_from(&a, "1.1.1.1", "shared@example.com", "wrong guess 1").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"detail": "LOGIN_BAD_CREDENTIALS"})
        )
    );
    let (status, _) = post_json(
        &client(),
        a.url("/auth/forgot-password"),
        json!({"email": "x@example.com"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(
        a.log
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("fail open")),
        "a warning says the counters are down"
    );
    let (_, ready) = read(client().get(a.url("/ready")).send().await.unwrap()).await;
    assert!(
        ready["limiter_outages"].as_u64().unwrap() >= 1,
        "and /ready counts it: {ready}"
    );

    // Fail closed: 503 while Redis is down.
    let closed = Server::start_with(
        &env.iter()
            .copied()
            .chain([("AXUM_USERS_RATE_LIMITS_FAIL_CLOSED", "true")])
            .collect::<Vec<_>>(),
    );
    let (status, body, _) = login_from(&closed, "1.1.1.1", "c@example.com", "wrong guess 1").await;
    assert_eq!(
        (status, detail(&body).clone()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!("SERVICE_UNAVAILABLE")
        )
    );
}

/// What the fake range API was asked: the path's prefix and the `Add-Padding` header.
type Asked = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A loopback fake of the Pwned Passwords range API: it records what it was asked and answers
/// the prefix of "password" with its suffix (seen 10 times) among padding lines.
async fn fake_range_api(delay: Duration) -> (String, Asked) {
    use axum::extract::Path;
    use axum::routing::get;
    let asked: Asked = Arc::default();
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/range/{prefix}",
        get(
            move |Path(prefix): Path<String>, headers: http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let padding = headers
                        .get("add-padding")
                        .map(|v| v.to_str().unwrap().to_owned());
                    seen.lock().unwrap().push((prefix.clone(), padding));
                    tokio::time::sleep(delay).await;
                    let mut body = String::from("0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n");
                    if prefix == "5BAA6" {
                        body.push_str("1E4C9B93F3F0682250B6CF8331B7EE68FD8:10\r\n");
                    }
                    body.push_str("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n");
                    body
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/range", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, asked)
}

#[tokio::test]
async fn breached_passwords_are_refused_through_the_range_api_and_it_fails_open() {
    let (url, asked) = fake_range_api(Duration::ZERO).await;
    let breach = |threshold: &'static str| {
        vec![
            ("AXUM_USERS_PASSWORD_BLOCKLIST", "false"),
            ("AXUM_USERS_BREACHED_PASSWORDS_URL", url.as_str()),
            ("AXUM_USERS_BREACHED_PASSWORDS_THRESHOLD", threshold),
        ]
    };
    let s = Server::start_with(&breach("5"));
    let c = client();
    let (status, body) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "b@example.com", "password": "password"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        refused(
            "REGISTER_INVALID_PASSWORD",
            "This password has appeared in a data breach"
        )
    );
    register(&s, "b@example.com", "not in the fake breach list").await;
    {
        let asked = asked.lock().unwrap();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[0], ("5BAA6".to_owned(), Some("true".to_owned())));
        assert!(
            asked
                .iter()
                .all(|(p, _)| p.len() == 5 && p.chars().all(|c| c.is_ascii_hexdigit())),
            "only five hex characters leave: {asked:?}"
        );
    }
    // Seen 10 times: below a threshold of 20, accepted.
    let lenient = Server::start_with(&breach("20"));
    register(&lenient, "b@example.com", "password").await;

    // A range API slower than the time-out: the password is accepted, in about the time-out.
    let (slow, _) = fake_range_api(Duration::from_secs(5)).await;
    let s = Server::start_with(&[
        ("AXUM_USERS_PASSWORD_BLOCKLIST", "false"),
        ("AXUM_USERS_BREACHED_PASSWORDS_URL", slow.as_str()),
        ("AXUM_USERS_BREACHED_PASSWORDS_TIMEOUT_SECONDS", "0.3"),
    ]);
    let started = Instant::now();
    register(&s, "slow@example.com", "password").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_refresh_route_has_its_rate_limit() {
    let s = Server::start_with(&with_defences(&[
        ("AXUM_USERS_REFRESH_TOKENS", "true"),
        ("AXUM_USERS_RATE_LIMITS_REFRESH_PER_IP", "2/60"),
    ]));
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (status, _) = post_json(
            &client(),
            s.url("/auth/jwt/refresh"),
            json!({"refresh_token": "not-a-refresh-token"}),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);
    assert!(
        statuses[..2]
            .iter()
            .all(|s| s.is_client_error() && *s != StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn every_mail_and_token_route_has_its_per_ip_limit_and_register_its_per_address_one() {
    let s = Server::start_with(&with_defences(&[
        ("AXUM_USERS_RATE_LIMITS_REQUEST_VERIFY_PER_IP", "1/60"),
        ("AXUM_USERS_RATE_LIMITS_RESET_PASSWORD_PER_IP", "1/60"),
        ("AXUM_USERS_RATE_LIMITS_VERIFY_PER_IP", "1/60"),
        ("AXUM_USERS_RATE_LIMITS_REGISTER_PER_IP", "off"),
        ("AXUM_USERS_RATE_LIMITS_REGISTER_PER_ACCOUNT", "1/60"),
    ]));
    let c = client();
    for (path, body) in [
        (
            "/auth/request-verify-token",
            json!({"email": "q@example.com"}),
        ),
        (
            "/auth/reset-password",
            json!({"token": "not-a-token", "password": "a fine passphrase"}),
        ),
        ("/auth/verify", json!({"token": "not-a-token"})),
    ] {
        let (first, _) = post_json(&c, s.url(path), body.clone()).await;
        assert_ne!(first, StatusCode::TOO_MANY_REQUESTS, "{path}");
        let (second, answer) = post_json(&c, s.url(path), body).await;
        assert_eq!(
            (second, answer),
            (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"detail": "TOO_MANY_REQUESTS"})
            ),
            "{path}"
        );
    }
    // Per address, whatever its case.
    let (status, _) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "Dup@example.com", "password": "a fine passphrase"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = post_json(
        &c,
        s.url("/auth/register"),
        json!({"email": "dUP@example.com", "password": "a fine passphrase"}),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}
