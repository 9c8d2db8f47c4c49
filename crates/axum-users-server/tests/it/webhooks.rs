//! Webhooks end to end: the server binary delivers audit events to a receiver on loopback that
//! fails on purpose (500s, then down, then up); nothing is lost, every signature checks out
//! with HMAC computed here (not with the server's code), and two nodes on one PostgreSQL never
//! deliver one event twice at the same time.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::mail::cli;
use crate::support::*;

/// The receiver's key: 32 bytes, as `whsec_<base64>`.
const KEY: &[u8; 32] = b"receiver-key-0123456789abcdefghi";

fn whsec() -> String {
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(KEY)
    )
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    body: String,
    answered: StatusCode,
}

#[derive(Default)]
struct Inbox {
    /// Every request, in order.
    got: Mutex<Vec<Received>>,
    /// The `webhook-id`s being answered right now.
    in_flight: Mutex<HashSet<String>>,
    /// Ids that arrived while the same id was being answered.
    overlaps: Mutex<Vec<String>>,
    /// Answer 500 (true) or 204.
    failing: AtomicBool,
    /// How long each answer takes (to give overlaps a chance to show).
    hold: Mutex<Duration>,
}

/// Answers with `Connection: close`, so that a receiver taken down has no kept-alive
/// connection left for the server to use.
async fn hook(
    State(inbox): State<Arc<Inbox>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let id = header("webhook-id");
    if !inbox.in_flight.lock().unwrap().insert(id.clone()) {
        inbox.overlaps.lock().unwrap().push(id.clone());
    }
    let hold = *inbox.hold.lock().unwrap();
    tokio::time::sleep(hold).await;
    let answered = if inbox.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    };
    inbox.got.lock().unwrap().push(Received {
        id: id.clone(),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    inbox.in_flight.lock().unwrap().remove(&id);
    (answered, [("connection", "close")])
}

/// The receiver on `port`, until the returned task is aborted.
async fn listen(port: u16, inbox: Arc<Inbox>) -> tokio::task::JoinHandle<()> {
    let listener = loop {
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => break listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(inbox);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The signature check a receiver makes, written here from the scheme: base64 of
/// HMAC-SHA256(key, "{id}.{timestamp}.{body}") behind `v1,`.
fn verifies(r: &Received) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(format!("{}.{}.{}", r.id, r.timestamp, r.body).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    r.signature
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn webhook_env(port: u16, events: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "AXUM_USERS_WEBHOOK_URL",
            format!("http://127.0.0.1:{port}/hook"),
        ),
        ("AXUM_USERS_WEBHOOK_SECRET", whsec()),
        ("AXUM_USERS_WEBHOOK_EVENTS", events.to_owned()),
        ("AXUM_USERS_WEBHOOK_NAME", "siem".to_owned()),
        ("AXUM_USERS_WEBHOOK_RETRY_BASE_SECONDS", "0.2".to_owned()),
        ("AXUM_USERS_WEBHOOK_RETRY_MAX_SECONDS", "1".to_owned()),
        ("AXUM_USERS_WEBHOOK_MAX_ATTEMPTS", "1000".to_owned()),
        ("AXUM_USERS_WEBHOOK_TIMEOUT_SECONDS", "5".to_owned()),
    ]
}

/// Waits (up to a minute) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

/// The events delivered with a 2xx, by event id: (type, every request of its webhook-id).
fn delivered(inbox: &Inbox) -> HashMap<String, (String, Vec<Received>)> {
    let got = inbox.got.lock().unwrap().clone();
    let mut by_event: HashMap<String, (String, Vec<Received>)> = HashMap::new();
    for r in &got {
        let body: Value = serde_json::from_str(&r.body).unwrap();
        let entry = by_event
            .entry(body["data"]["id"].as_str().unwrap().to_owned())
            .or_insert_with(|| (body["type"].as_str().unwrap().to_owned(), Vec::new()));
        entry.1.push(r.clone());
    }
    by_event.retain(|_, (_, rs)| rs.iter().any(|r| r.answered.is_success()));
    by_event
}

fn log_has(s: &Server, needle: &str) -> bool {
    s.log.lock().unwrap().iter().any(|l| l.contains(needle))
}

#[tokio::test]
async fn a_failing_then_down_receiver_gets_every_event_signed() {
    for db in databases().await {
        let port = free_port();
        let inbox = Arc::new(Inbox::default());
        inbox.failing.store(true, Ordering::SeqCst);
        let receiver = listen(port, inbox.clone()).await;
        let mut env = db.env();
        env.extend(webhook_env(
            port,
            "user.registered,login.failed,login.succeeded",
        ));
        let s = start_env(&env);

        register(&s, "wes@example.com", "wespass").await;
        assert_eq!(
            try_login(&s, "wes@example.com", "wrong").await.0,
            StatusCode::BAD_REQUEST
        );
        login(&s, "wes@example.com", "wespass").await;
        // Answered 500 again and again: the same deliveries come back.
        eventually("three rounds of 500s", || {
            inbox.got.lock().unwrap().len() >= 9
        })
        .await;
        assert!(
            delivered(&inbox).is_empty(),
            "{}: a 500 is no delivery",
            db.name
        );

        // Down: connections are refused, and events keep being queued.
        receiver.abort();
        let _ = receiver.await;
        eventually("a refused connection", || log_has(&s, "cannot connect")).await;
        assert_eq!(
            try_login(&s, "wes@example.com", "wrong-again").await.0,
            StatusCode::BAD_REQUEST
        );
        let me = get_me(&s, &login(&s, "wes@example.com", "wespass").await)
            .await
            .1;

        // Up again, answering 204: every event arrives.
        inbox.failing.store(false, Ordering::SeqCst);
        let receiver = listen(port, inbox.clone()).await;
        eventually("five events delivered", || delivered(&inbox).len() == 5).await;
        let got = delivered(&inbox);
        let mut kinds: Vec<&str> = got.values().map(|(k, _)| k.as_str()).collect();
        kinds.sort_unstable();
        assert_eq!(
            kinds,
            [
                "login.failed",
                "login.failed",
                "login.succeeded",
                "login.succeeded",
                "user.registered"
            ],
            "{}: nothing lost, nothing else (logout is not subscribed)",
            db.name
        );
        for (event, (kind, requests)) in &got {
            let ids: HashSet<&str> = requests.iter().map(|r| r.id.as_str()).collect();
            assert_eq!(
                ids.len(),
                1,
                "{kind}: one webhook-id for every attempt: {ids:?}"
            );
            assert_eq!(requests[0].id, format!("msg_{event}_siem"));
            for r in requests {
                assert!(verifies(r), "{kind}: the signature checks out: {r:?}");
                assert!(!r.body.contains("wespass") && !r.body.contains("wrong"));
                let body: Value = serde_json::from_str(&r.body).unwrap();
                if kind != "login.failed" {
                    assert_eq!(body["data"]["user_id"], me["id"]);
                }
            }
        }
        let failed_one = got
            .values()
            .find(|(k, _)| k == "login.failed")
            .map(|(_, rs)| serde_json::from_str::<Value>(&rs[0].body).unwrap())
            .unwrap();
        assert_eq!(failed_one["data"]["reason"], "bad_password");
        // A tampered body does not verify.
        let mut forged = got.values().next().unwrap().1[0].clone();
        forged.body.push(' ');
        assert!(!verifies(&forged));

        // The outbox is empty once all is delivered.
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        eventually("an empty webhook outbox", || {
            let (ok, text) = cli(s.dir.path(), &env, &["webhooks", "list"]);
            ok && text.contains("0 queued")
        })
        .await;
        receiver.abort();
        drop(s);
        db.finish().await;
    }
}

#[tokio::test]
async fn two_nodes_never_deliver_one_event_twice_at_once() {
    let db = databases()
        .await
        .into_iter()
        .find(|db| db.name == "PostgreSQL");
    let Some(db) = db else {
        println!("SKIPPED: webhooks from two nodes on PostgreSQL (set TEST_POSTGRES_URL)");
        return;
    };
    let port = free_port();
    let inbox = Arc::new(Inbox::default());
    *inbox.hold.lock().unwrap() = Duration::from_millis(100);
    inbox.failing.store(true, Ordering::SeqCst);
    let receiver = listen(port, inbox.clone()).await;
    let mut env = db.env();
    env.extend(webhook_env(port, "login.failed"));
    let a = start_env(&env);
    let b = start_env(&env);
    register(&a, "two@example.com", "twopass").await;
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(
            try_login(node, "two@example.com", "wrong").await.0,
            StatusCode::BAD_REQUEST
        );
    }
    // Both nodes retry the failing deliveries for a while, then the receiver takes them.
    eventually("forty failed attempts", || {
        inbox.got.lock().unwrap().len() >= 40
    })
    .await;
    inbox.failing.store(false, Ordering::SeqCst);
    eventually("ten events delivered", || delivered(&inbox).len() == 10).await;
    assert!(
        inbox.overlaps.lock().unwrap().is_empty(),
        "one event was being delivered twice at once: {:?}",
        inbox.overlaps.lock().unwrap()
    );
    let got = inbox.got.lock().unwrap().clone();
    let oks: Vec<&str> = got
        .iter()
        .filter(|r| r.answered.is_success())
        .map(|r| r.id.as_str())
        .collect();
    let distinct: HashSet<&str> = oks.iter().copied().collect();
    assert_eq!(
        oks.len(),
        distinct.len(),
        "each event was accepted once: {oks:?}"
    );
    assert!(got.iter().all(verifies));
    println!(
        "attempts logged by node A: {}, by node B: {}",
        a.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("webhook delivery failed"))
            .count(),
        b.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("webhook delivery failed"))
            .count()
    );
    receiver.abort();
    drop((a, b));
    db.finish().await;
}
