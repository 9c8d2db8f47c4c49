//! The load generator: a fixed number of keep-alive HTTP/1.1 connections (hyper), each sending
//! its scenario's requests back to back until the deadline, recording every latency.
//!
//! Only loopback addresses are accepted: this harness never sends traffic anywhere else.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::mail::MailBox;
use crate::stats::{Samples, Summary};

/// One keep-alive connection to a server on loopback; reconnects after the server closes it.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// The parts of a response the scenarios read.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers (for `Set-Cookie`).
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Conn {
    /// Opens a connection to `addr`, which must be a loopback address.
    ///
    /// # Errors
    /// When the address is not on loopback or nothing listens there.
    pub async fn connect(addr: SocketAddr) -> Result<Self> {
        if !addr.ip().is_loopback() {
            bail!("refusing to load {addr}: the benchmark only sends traffic to loopback");
        }
        let mut conn = Self { addr, sender: None };
        conn.open().await?;
        Ok(conn)
    }

    async fn open(&mut self) -> Result<()> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = driver.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole response.
    ///
    /// # Errors
    /// When the connection fails; it is reopened on the next call.
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.open().await?;
        }
        let Some(sender) = self.sender.as_mut() else {
            bail!("no connection to {}", self.addr);
        };
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            anyhow::Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        }
        .await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }
}

/// `GET path` with extra headers.
pub fn get(path: &str, headers: &[(header::HeaderName, HeaderValue)]) -> Request<Full<Bytes>> {
    let mut request = Request::builder().method(Method::GET).uri(path);
    request = request.header(header::HOST, "127.0.0.1");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    request
        .body(Full::new(Bytes::new()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// `POST path` with a body of the given content type.
pub fn post(
    path: &str,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
}

/// `POST path` with a JSON body.
pub fn post_json(path: &str, body: &serde_json::Value) -> Request<Full<Bytes>> {
    post(path, "application/json", body.to_string())
}

/// The login form of FastAPI Users (`username`, `password`), URL-encoded.
pub fn login_form(email: &str, password: &str) -> Bytes {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    Bytes::from(format!(
        "username={}&password={}",
        encode(email),
        encode(password)
    ))
}

/// What each connection of a scenario does in one iteration.
#[derive(Clone)]
pub enum Scenario {
    /// `GET path` with these headers (a Bearer token or the auth cookie), expecting 200.
    Get {
        /// Request path.
        path: String,
        /// Headers sent with every request.
        headers: Vec<(header::HeaderName, HeaderValue)>,
    },
    /// `POST /auth/jwt/login` with the form of user `connection % forms.len()`, expecting 200.
    Login {
        /// URL-encoded login forms, one per user.
        forms: Arc<Vec<Bytes>>,
    },
    /// `POST /auth/register` with a new address each time, expecting 201.
    Register {
        /// Unique prefix of the addresses (one per run).
        prefix: String,
        /// Password of the new users.
        password: String,
    },
    /// `POST /auth/forgot-password` (202), wait for the mail, `POST /auth/reset-password` (200).
    Reset {
        /// One user per connection (`connection % emails.len()`).
        emails: Arc<Vec<String>>,
        /// The password set at each reset.
        password: String,
        /// Where the reset tokens arrive.
        mail: MailBox,
    },
    /// `POST /auth/jwt/refresh` with connection `connection % tokens.len()`'s own session: each
    /// answer's new refresh token is the next request's (rotation), expecting 200. A refused
    /// refresh counts as an error and the connection signs in again with `form` for a new
    /// chain, so that one lost answer (its token rotated, the new one never read) does not
    /// turn every later request into a reuse.
    Refresh {
        /// The current refresh token of each connection's session.
        tokens: Arc<Vec<std::sync::Mutex<String>>>,
        /// The login form of the sessions' user.
        form: Bytes,
    },
    /// A sign-in with a second factor: `POST /auth/jwt/login` (401 `LOGIN_MFA_REQUIRED` with an
    /// mfa token), then `POST /auth/jwt/mfa` with the TOTP code of a step the user has not
    /// used yet (200). A user may use each 30-second step once, so when the window (one step
    /// either side of now) is spent the connection waits for the next step.
    TotpSignIn {
        /// One user per connection (`connection % users.len()`).
        users: Arc<Vec<crate::totp::TotpUser>>,
    },
}

impl Scenario {
    /// Names of the steps whose latencies are recorded, in order.
    pub fn steps(&self) -> &'static [&'static str] {
        match self {
            Scenario::Reset { .. } => &["forgot-password", "reset-password"],
            Scenario::TotpSignIn { .. } => &["password step", "code step"],
            _ => &["request"],
        }
    }

    /// Runs one iteration on `conn`, recording each step into `samples`.
    async fn iterate(
        &self,
        conn: &mut Conn,
        connection: usize,
        iteration: u64,
        samples: &mut [Samples],
    ) -> bool {
        match self {
            Scenario::Get { path, headers } => {
                timed(conn, get(path, headers), StatusCode::OK, &mut samples[0]).await
            }
            Scenario::Login { forms } => {
                let form = forms[connection % forms.len()].clone();
                let request = post("/auth/jwt/login", "application/x-www-form-urlencoded", form);
                timed(conn, request, StatusCode::OK, &mut samples[0]).await
            }
            Scenario::Register { prefix, password } => {
                let body = serde_json::json!({
                    "email": format!("{prefix}-c{connection}-{iteration}@bench.example.com"),
                    "password": password,
                });
                let request = post_json("/auth/register", &body);
                timed(conn, request, StatusCode::CREATED, &mut samples[0]).await
            }
            Scenario::Refresh { tokens, form } => {
                let slot = &tokens[connection % tokens.len()];
                let token = slot.lock().map(|t| t.clone()).unwrap_or_default();
                let body = serde_json::json!({"refresh_token": token});
                let request = post_json("/auth/jwt/refresh", &body);
                let Some(reply) = timed_reply(conn, request, StatusCode::OK, &mut samples[0]).await
                else {
                    if let Some(fresh) = refresh_token_of_login(conn, form.clone()).await
                        && let Ok(mut current) = slot.lock()
                    {
                        *current = fresh;
                    }
                    return false;
                };
                let next = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["refresh_token"].as_str().map(str::to_owned));
                match (next, slot.lock()) {
                    (Some(next), Ok(mut current)) => {
                        *current = next;
                        true
                    }
                    _ => false,
                }
            }
            Scenario::TotpSignIn { users } => {
                let user = &users[connection % users.len()];
                if user.next_step().is_none() {
                    // Short sleeps, so that the run's deadline is seen.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    return false;
                }
                let request = post(
                    "/auth/jwt/login",
                    "application/x-www-form-urlencoded",
                    user.form.clone(),
                );
                let Some(reply) =
                    timed_reply(conn, request, StatusCode::UNAUTHORIZED, &mut samples[0]).await
                else {
                    return false;
                };
                let mfa_token = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v["detail"]["mfa_token"].as_str().map(str::to_owned));
                // The step is chosen after the first step: time only widens the window upwards.
                let (Some(mfa_token), Some(step)) = (mfa_token, user.next_step()) else {
                    samples[1].errors += 1;
                    return false;
                };
                let body = serde_json::json!({"mfa_token": mfa_token, "code": user.code(step)});
                let request = post_json("/auth/jwt/mfa", &body);
                let ok = timed(conn, request, StatusCode::OK, &mut samples[1]).await;
                // Spent either way: a refused code of this step would be refused again.
                user.spend(step);
                ok
            }
            Scenario::Reset {
                emails,
                password,
                mail,
            } => {
                let email = &emails[connection % emails.len()];
                let token = mail.expect(email);
                let request = post_json(
                    "/auth/forgot-password",
                    &serde_json::json!({"email": email}),
                );
                if !timed(conn, request, StatusCode::ACCEPTED, &mut samples[0]).await {
                    return false;
                }
                let Ok(Ok(token)) = tokio::time::timeout(Duration::from_secs(10), token).await
                else {
                    samples[1].errors += 1;
                    return false;
                };
                let body = serde_json::json!({"token": token, "password": password});
                let request = post_json("/auth/reset-password", &body);
                timed(conn, request, StatusCode::OK, &mut samples[1]).await
            }
        }
    }
}

/// Signs in with `form` and reads the answer's refresh token; `None` when that fails too.
async fn refresh_token_of_login(conn: &mut Conn, form: Bytes) -> Option<String> {
    let request = post("/auth/jwt/login", "application/x-www-form-urlencoded", form);
    let reply = conn.send(request).await.ok()?;
    if reply.status != StatusCode::OK {
        return None;
    }
    let body = serde_json::from_slice::<serde_json::Value>(&reply.body).ok()?;
    body["refresh_token"].as_str().map(str::to_owned)
}

/// Sends `request` and records its latency when the status is `expected`, else an error.
async fn timed(
    conn: &mut Conn,
    request: Request<Full<Bytes>>,
    expected: StatusCode,
    samples: &mut Samples,
) -> bool {
    timed_reply(conn, request, expected, samples)
        .await
        .is_some()
}

/// [`timed`], handing back the reply of a success.
async fn timed_reply(
    conn: &mut Conn,
    request: Request<Full<Bytes>>,
    expected: StatusCode,
    samples: &mut Samples,
) -> Option<Reply> {
    let started = Instant::now();
    match conn.send(request).await {
        Ok(reply) if reply.status == expected => {
            samples.record(started.elapsed());
            Some(reply)
        }
        Ok(reply) => {
            samples.errors += 1;
            FIRST_ERROR.get_or_init(|| {
                format!(
                    "unexpected {} (wanted {expected}): {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                )
            });
            None
        }
        Err(e) => {
            samples.errors += 1;
            FIRST_ERROR.get_or_init(|| format!("request failed: {e:#}"));
            None
        }
    }
}

/// The first failure seen, shown once so that a broken run says why.
pub static FIRST_ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// How long and how wide a scenario runs.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent connections.
    pub connections: usize,
    /// Time before recording starts (requests are sent but not counted).
    pub warmup: Duration,
    /// The measured time.
    pub duration: Duration,
    /// The process under test, whose CPU time in the measured window is reported.
    pub cpu_pid: Option<u32>,
}

/// What one scenario measured: a summary per step, and completed iterations per second.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// `(step name, summary)` in the scenario's order.
    pub steps: Vec<(&'static str, Summary)>,
    /// Whole iterations completed per second (for multi-step scenarios).
    pub iterations_per_second: f64,
    /// CPU time the process under test used in the measured window, divided by the iterations.
    pub cpu_per_iteration: Option<Duration>,
}

/// Runs `scenario` against `addr` with `load`, printing progress under `label` on stderr.
///
/// # Errors
/// When the connections cannot be opened.
pub async fn run(label: &str, addr: SocketAddr, scenario: Scenario, load: Load) -> Result<Outcome> {
    let mut conns = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        conns.push(Conn::connect(addr).await?);
    }
    let started = Instant::now();
    let record_from = started + load.warmup;
    let deadline = record_from + load.duration;
    let done = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(progress(
        label.to_owned(),
        done.clone(),
        record_from,
        load.duration,
    ));
    let cpu_start = load.cpu_pid.map(|pid| {
        tokio::spawn(async move {
            tokio::time::sleep_until(record_from.into()).await;
            crate::process::cpu_time(pid)
        })
    });
    let scenario = Arc::new(scenario);
    let mut tasks = Vec::with_capacity(load.connections);
    for (connection, mut conn) in conns.into_iter().enumerate() {
        let scenario = scenario.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = vec![Samples::default(); scenario.steps().len()];
            let mut scratch = vec![Samples::default(); scenario.steps().len()];
            let mut iteration = 0u64;
            let mut completed = 0u64;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let recording = now >= record_from;
                let target = if recording {
                    &mut samples
                } else {
                    &mut scratch
                };
                let ok = scenario
                    .iterate(&mut conn, connection, iteration, target)
                    .await;
                iteration += 1;
                if recording && ok {
                    completed += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if !ok {
                    // Do not spin on a server that refuses everything.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            (samples, completed)
        }));
    }
    let mut merged = vec![Samples::default(); scenario.steps().len()];
    let mut completed = 0;
    for task in tasks {
        let (samples, n) = task.await.context("a load connection panicked")?;
        completed += n;
        for (m, s) in merged.iter_mut().zip(samples) {
            m.merge(s);
        }
    }
    let elapsed = Instant::now().saturating_duration_since(record_from);
    let cpu_end = load.cpu_pid.and_then(crate::process::cpu_time);
    let cpu_start = match cpu_start {
        Some(task) => task.await.ok().flatten(),
        None => None,
    };
    let cpu_per_iteration = cpu_start
        .zip(cpu_end)
        .filter(|_| completed > 0)
        .map(|(start, end)| end.saturating_sub(start) / completed as u32);
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let steps = scenario
        .steps()
        .iter()
        .copied()
        .zip(merged)
        .map(|(name, s)| (name, s.summary(elapsed)))
        .collect::<Vec<_>>();
    let iterations_per_second = completed as f64 / elapsed.as_secs_f64().max(1e-9);
    Ok(Outcome {
        steps,
        iterations_per_second,
        cpu_per_iteration,
    })
}

/// Prints `label: 7/30 s, 1234 done, 246/s` every second (on one line on a terminal).
async fn progress(label: String, done: Arc<AtomicU64>, from: Instant, duration: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last = 0;
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now < from {
            continue;
        }
        let secs = now.duration_since(from).as_secs();
        let total = done.load(Ordering::Relaxed);
        let line = format!(
            "  {label}: {secs}/{} s, {total} done, {}/s",
            duration.as_secs(),
            total - last
        );
        last = total;
        if terminal {
            eprint!("\r\x1b[K{line}");
        } else if secs.is_multiple_of(5) && secs > 0 {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get as get_route, post as post_route};

    async fn serve(router: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        addr
    }

    #[tokio::test]
    async fn a_short_run_counts_requests_and_errors() {
        let addr = serve(
            axum::Router::new()
                .route("/ok", get_route(|| async { "ok" }))
                .route(
                    "/auth/register",
                    post_route(|| async { StatusCode::BAD_REQUEST }),
                ),
        )
        .await;
        let load = Load {
            connections: 2,
            warmup: Duration::from_millis(50),
            duration: Duration::from_millis(300),
            cpu_pid: Some(std::process::id()),
        };
        let ok = run(
            "ok",
            addr,
            Scenario::Get {
                path: "/ok".into(),
                headers: vec![],
            },
            load,
        )
        .await
        .unwrap();
        let (_, s) = ok.steps[0];
        assert!(s.requests > 10, "{s:?}");
        assert_eq!(s.errors, 0);
        assert!(s.p50_ms <= s.p99_ms);
        assert!(ok.cpu_per_iteration.is_some());

        let failing = Scenario::Register {
            prefix: "x".into(),
            password: "p".into(),
        };
        let out = run("register", addr, failing, load).await.unwrap();
        assert_eq!(out.steps[0].1.requests, 0);
        assert!(out.steps[0].1.errors > 0);
        assert!(FIRST_ERROR.get().unwrap().contains("400"));
    }

    #[tokio::test]
    async fn only_loopback_is_loaded() {
        let err = Conn::connect("192.0.2.1:80".parse().unwrap())
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("loopback"));
    }

    #[test]
    fn login_forms_are_url_encoded() {
        assert_eq!(
            login_form("a+b@x.com", "p&q w"),
            Bytes::from("username=a%2Bb%40x.com&password=p%26q%20w")
        );
    }
}
