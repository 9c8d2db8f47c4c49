//! One database's run: start the server, create its users, start the floor, run every scenario,
//! read the memory, restart on the existing database to time the start, check the targets.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http::{HeaderValue, StatusCode, header};

use crate::Options;
use crate::load::{self, Conn, Load, Outcome, Scenario};
use crate::mail::MailBox;
use crate::process::Listening;
use crate::report::{Row, SuiteReport};
use crate::stats::Summary;

/// Passes the server's password policy (not common, no part of the `bench` addresses).
const PASSWORD: &str = "load-test-passphrase-1";

/// A throw-away PostgreSQL database, created on the server of an admin URL.
pub struct PgDatabase {
    admin: sqlx::PgPool,
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl PgDatabase {
    /// Creates `axum_users_bench_<random>` on the server of `admin_url` (which must be on loopback).
    ///
    /// # Errors
    /// When the URL is not a loopback PostgreSQL URL, or the database cannot be created.
    pub async fn create(admin_url: &str) -> Result<Self> {
        let mut url = url::Url::parse(admin_url)
            .with_context(|| format!("--postgres-url {admin_url}: not a URL"))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!("--postgres-url must start with postgres://");
        }
        match url.host_str() {
            Some("127.0.0.1" | "localhost" | "[::1]") => {}
            other => bail!(
                "--postgres-url host {other:?}: the benchmark only talks to a server on 127.0.0.1"
            ),
        }
        let admin = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin_url)
            .await
            .with_context(|| {
                format!("cannot connect to {admin_url}: is PostgreSQL running and the URL right?")
            })?;
        let name = format!(
            "axum_users_bench_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        // `name` is ours: a fixed prefix and hex digits.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .with_context(|| {
                format!("cannot create database {name} (the URL's user needs CREATEDB)")
            })?;
        url.set_path(&format!("/{name}"));
        Ok(Self {
            admin,
            name,
            url: url.to_string(),
        })
    }

    /// Drops the database (forcing its connections closed).
    pub async fn drop_database(self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&self.admin)
            .await
        {
            eprintln!("warning: could not drop database {}: {e}", self.name);
        }
        self.admin.close().await;
    }
}

/// The server's environment: nothing inherited but `PATH`.
fn server_command(bin: &Path, dir: &Path, url: &str, secret: &str, options: &Options) -> Command {
    let mut command = Command::new(bin);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AXUM_USERS_BIND", "127.0.0.1:0")
        .env("AXUM_USERS_DATABASE_URL", url)
        .env("AXUM_USERS_SECRET", secret)
        .env(
            "AXUM_USERS_MAILER",
            format!("file:{}", dir.join("mail").display()),
        )
        .env("AXUM_USERS_COOKIE_SECURE", "false")
        .env(
            "AXUM_USERS_ARGON2_MEMORY_KIB",
            options.argon2_memory_kib.to_string(),
        )
        .env(
            "AXUM_USERS_ARGON2_ITERATIONS",
            options.argon2_iterations.to_string(),
        )
        .env(
            "AXUM_USERS_ARGON2_PARALLELISM",
            options.argon2_parallelism.to_string(),
        )
        // The reset scenario mails the same addresses again and again.
        .env("AXUM_USERS_MAIL_COOLDOWN_SECONDS", "0")
        .env("AXUM_USERS_RATE_LIMITS", options.rate_limits.to_string());
    if options.rate_limits {
        for rule in [
            "LOGIN_PER_IP",
            "LOGIN_PER_ACCOUNT",
            "REGISTER_PER_IP",
            "REGISTER_PER_ACCOUNT",
            "FORGOT_PASSWORD_PER_IP",
            "REQUEST_VERIFY_PER_IP",
            "RESET_PASSWORD_PER_IP",
            "VERIFY_PER_IP",
            "REFRESH_PER_IP",
            "OAUTH_PER_IP",
        ] {
            command.env(format!("AXUM_USERS_RATE_LIMITS_{rule}"), "1000000000/1");
        }
    }
    command
}

/// Sends `request` until it answers 200 (at most 10 s); the time since `since`.
async fn first_200(
    addr: std::net::SocketAddr,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    since: Instant,
) -> Result<Duration> {
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < give_up {
        match Conn::connect(addr).await {
            Ok(mut conn) => match conn.send(request()).await {
                Ok(reply) if reply.status == StatusCode::OK => return Ok(since.elapsed()),
                Ok(reply) => {
                    last = format!("{}: {}", reply.status, String::from_utf8_lossy(&reply.body))
                }
                Err(e) => last = format!("{e:#}"),
            },
            Err(e) => last = format!("{e:#}"),
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    bail!("no 200 from {addr} within 10 s; last answer: {last}")
}

/// Sends a request that must answer `expected`; the reply.
async fn expect(
    conn: &mut Conn,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
    expected: StatusCode,
    what: &str,
) -> Result<load::Reply> {
    let reply = conn
        .send(request)
        .await
        .with_context(|| format!("{what} failed"))?;
    if reply.status != expected {
        bail!(
            "{what}: {} (wanted {expected}): {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    Ok(reply)
}

async fn register(conn: &mut Conn, email: &str) -> Result<()> {
    let body = serde_json::json!({"email": email, "password": PASSWORD});
    expect(
        conn,
        load::post_json("/auth/register", &body),
        StatusCode::CREATED,
        "register",
    )
    .await?;
    Ok(())
}

fn bearer(token: &str) -> Result<(header::HeaderName, HeaderValue)> {
    Ok((
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}"))?,
    ))
}

/// Runs one scenario with progress; prints its result line.
async fn measure(
    label: &str,
    addr: std::net::SocketAddr,
    scenario: Scenario,
    load: Load,
) -> Result<Outcome> {
    eprintln!(
        "[{label}] {} connections, {:.0} s warm-up + {:.0} s",
        load.connections,
        load.warmup.as_secs_f64(),
        load.duration.as_secs_f64()
    );
    let outcome = load::run(label, addr, scenario, load).await?;
    print_outcome(label, &outcome);
    Ok(outcome)
}

fn print_outcome(label: &str, outcome: &Outcome) {
    for (step, s) in &outcome.steps {
        eprintln!(
            "[{label}] {step}: {:.1} req/s, p50 {:.2} ms, p99 {:.2} ms, {} ok, {} errors",
            s.per_second, s.p50_ms, s.p99_ms, s.requests, s.errors
        );
    }
    if outcome.steps.iter().any(|(_, s)| s.errors > 0)
        && let Some(first) = load::FIRST_ERROR.get()
    {
        eprintln!("[{label}] first error: {first}");
    }
}

fn row(
    name: &str,
    connections: usize,
    summary: Summary,
    cpu: Option<Duration>,
    note: String,
) -> Row {
    Row {
        name: name.to_owned(),
        connections,
        summary,
        cpu_us: cpu.map(|d| d.as_secs_f64() * 1e6),
        note,
    }
}

fn kib_of(server: &Listening) -> u64 {
    server.memory_kib().map(|(rss, _)| rss).unwrap_or(0)
}

/// Runs the whole suite on the database at `url`, with the server's files in `dir`.
///
/// # Errors
/// When the server or the floor cannot start, or setup requests fail.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    options: &Options,
    bin: &Path,
    database: &str,
    url: &str,
    dir: &Path,
    hash_threads: usize,
) -> Result<SuiteReport> {
    let mut report = SuiteReport {
        database: database.to_owned(),
        ..SuiteReport::default()
    };
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    eprintln!(
        "== {database}: starting {} on a new database",
        bin.display()
    );
    let server = Listening::start(
        server_command(bin, dir, url, &secret, options),
        "axum-users-server",
    )?;
    let addr = server.addr;
    report.fresh_start = first_200(addr, || load::get("/health", &[]), server.spawned)
        .await
        .with_context(|| {
            format!(
                "the server never answered 200; its log:\n{}",
                server.log_tail(20)
            )
        })?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    report.rss_fresh_idle_kib = kib_of(&server);

    // Users: one for the reads, one per hashing connection for login and for reset.
    let hash_conns = options.hash_connections.max(1);
    eprintln!("[setup] creating {} users", 1 + 2 * hash_conns);
    let mut conn = Conn::connect(addr).await?;
    let me_email = format!("bench-{run_id}-me@bench.example.com");
    register(&mut conn, &me_email).await?;
    let form = load::login_form(&me_email, PASSWORD);
    let reply = expect(
        &mut conn,
        load::post(
            "/auth/jwt/login",
            "application/x-www-form-urlencoded",
            form.clone(),
        ),
        StatusCode::OK,
        "login",
    )
    .await?;
    let token = serde_json::from_slice::<serde_json::Value>(&reply.body)?["access_token"]
        .as_str()
        .context("login answered no access_token")?
        .to_owned();
    let reply = expect(
        &mut conn,
        load::post(
            "/auth/cookie/login",
            "application/x-www-form-urlencoded",
            form,
        ),
        StatusCode::NO_CONTENT,
        "cookie login",
    )
    .await?;
    let cookie = reply
        .headers
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("cookie login set no cookie")?
        .to_owned();
    let bearer = bearer(&token)?;
    let reply = expect(
        &mut conn,
        load::get("/users/me", std::slice::from_ref(&bearer)),
        StatusCode::OK,
        "GET /users/me",
    )
    .await?;
    let user_id = serde_json::from_slice::<serde_json::Value>(&reply.body)?["id"]
        .as_str()
        .context("/users/me answered no id")?
        .to_owned();
    let mut forms = Vec::new();
    let mut reset_emails = Vec::new();
    for i in 0..hash_conns {
        let email = format!("bench-{run_id}-login{i}@bench.example.com");
        register(&mut conn, &email).await?;
        forms.push(load::login_form(&email, PASSWORD));
        let email = format!("bench-{run_id}-reset{i}@bench.example.com");
        register(&mut conn, &email).await?;
        reset_emails.push(email);
    }
    let forms = Arc::new(forms);
    drop(conn);

    // The floor, in a process of its own, on the same database.
    let exe = std::env::current_exe()?;
    let mut floor_command = Command::new(exe);
    floor_command.args(["floor", "--database-url", url]);
    let floor = Listening::start(floor_command, "the floor")?;
    let floor_path = format!("/users/{user_id}");
    first_200(floor.addr, || load::get(&floor_path, &[]), Instant::now())
        .await
        .context("the floor does not read the benchmark user")?;

    let server_reads = Load {
        cpu_pid: Some(server.pid()),
        ..options.load(options.connections)
    };
    let floor_reads = Load {
        cpu_pid: Some(floor.pid()),
        ..server_reads
    };
    let reads = server_reads;
    let hashing = Load {
        cpu_pid: Some(server.pid()),
        ..options.load(hash_conns)
    };
    let me_jwt = Scenario::Get {
        path: "/users/me".into(),
        headers: vec![bearer.clone()],
    };

    let out = measure(
        "floor",
        floor.addr,
        Scenario::Get {
            path: floor_path.clone(),
            headers: vec![],
        },
        floor_reads,
    )
    .await?;
    let floor_summary = out.steps[0].1;
    let floor_cpu = out.cpu_per_iteration;
    report.rows.push(row(
        "floor: bare axum + sqlx, same primary-key read + JSON",
        reads.connections,
        floor_summary,
        floor_cpu,
        "100% (the reference)".into(),
    ));
    let ratio = |s: Summary| s.per_second / floor_summary.per_second.max(1e-9) * 100.0;

    let out = measure("me-jwt", addr, me_jwt.clone(), reads).await?;
    let me_summary = out.steps[0].1;
    let me_cpu = out.cpu_per_iteration;
    report.rows.push(row(
        "GET /users/me, JWT bearer (revocable: session checked in the same query)",
        reads.connections,
        me_summary,
        me_cpu,
        format!("{:.0}% of the floor", ratio(me_summary)),
    ));

    let cookie_header = (header::COOKIE, HeaderValue::from_str(&cookie)?);
    let out = measure(
        "me-cookie",
        addr,
        Scenario::Get {
            path: "/users/me".into(),
            headers: vec![cookie_header],
        },
        reads,
    )
    .await?;
    let s = out.steps[0].1;
    report.rows.push(row(
        "GET /users/me, auth cookie",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of the floor", ratio(s)),
    ));

    let out = measure(
        "sessions",
        addr,
        Scenario::Get {
            path: "/users/me/sessions".into(),
            headers: vec![bearer.clone()],
        },
        reads,
    )
    .await?;
    let s = out.steps[0].1;
    report.rows.push(row(
        "GET /users/me/sessions (the list of devices)",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of the floor", ratio(s)),
    ));

    let tokens = refresh_sessions(addr, &me_email, reads.connections).await?;
    let out = measure("refresh", addr, Scenario::Refresh { tokens }, reads).await?;
    let s = out.steps[0].1;
    report.rows.push(row(
        "POST /auth/jwt/refresh (rotation: a read, a compare-and-swap, a JWT)",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of the floor", ratio(s)),
    ));

    eprintln!(
        "[raw] Argon2id verifications on {hash_threads} threads, m={} KiB t={} p={}, {:.0} s (server idle)",
        options.argon2_memory_kib,
        options.argon2_iterations,
        options.argon2_parallelism,
        options.duration
    );
    let cost = options.cost();
    let duration = Options::secs(options.duration);
    let raw = tokio::task::spawn_blocking(move || {
        crate::argon::verifications_per_second(cost, hash_threads, duration)
    })
    .await
    .context("the Argon2id measurement panicked")??;
    eprintln!("[raw] {:.1} verifications/s", raw.per_second);
    let raw_rate = raw.per_second;

    let login_load = Load {
        duration: Duration::from_secs_f64(options.login_duration.max(0.0)),
        ..hashing
    };
    let out = measure(
        "login",
        addr,
        Scenario::Login {
            forms: forms.clone(),
        },
        login_load,
    )
    .await?;
    report.rss_after_login_kib = kib_of(&server);
    let login_summary = out.steps[0].1;
    let login_cpu = out.cpu_per_iteration;
    let hash_ratio = |s: Summary| s.per_second / raw_rate.max(1e-9) * 100.0;
    report.rows.push(row(
        "POST /auth/jwt/login",
        hashing.connections,
        login_summary,
        login_cpu,
        format!("{:.0}% of raw Argon2id", hash_ratio(login_summary)),
    ));

    let out = measure(
        "register",
        addr,
        Scenario::Register {
            prefix: format!("bench-{run_id}-new"),
            password: PASSWORD.into(),
        },
        hashing,
    )
    .await?;
    let s = out.steps[0].1;
    report.rows.push(row(
        "POST /auth/register",
        hashing.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of raw Argon2id (one hash each)", hash_ratio(s)),
    ));

    let mail = MailBox::default();
    let watcher = mail.watch(dir.join("mail"));
    let out = measure(
        "reset",
        addr,
        Scenario::Reset {
            emails: Arc::new(reset_emails),
            password: PASSWORD.into(),
            mail,
        },
        hashing,
    )
    .await;
    watcher.abort();
    let out = out?;
    report.rows.push(row(
        "POST /auth/forgot-password",
        hashing.connections,
        out.steps[0].1,
        None,
        "then wait for the .eml".into(),
    ));
    report.rows.push(row(
        "POST /auth/reset-password",
        hashing.connections,
        out.steps[1].1,
        out.cpu_per_iteration,
        format!(
            "CPU per forgot+reset cycle; {:.1} cycles/s; {:.0}% of raw Argon2id",
            out.iterations_per_second,
            out.iterations_per_second / raw_rate.max(1e-9) * 100.0
        ),
    ));

    eprintln!("[storm] GET /users/me and a login storm at the same time");
    let (me_storm, login_storm) = tokio::join!(
        load::run("me during storm", addr, me_jwt, reads),
        load::run("login storm", addr, Scenario::Login { forms }, hashing),
    );
    let (me_storm, login_storm) = (me_storm?, login_storm?);
    print_outcome("me during storm", &me_storm);
    print_outcome("login storm", &login_storm);
    let me_storm_summary = me_storm.steps[0].1;
    let p99_ratio = me_storm_summary.p99_ms / me_summary.p99_ms.max(1e-9);
    report.rows.push(row(
        "GET /users/me, JWT, during a login storm",
        reads.connections,
        me_storm_summary,
        None,
        format!("p99 {p99_ratio:.1}x the p99 without the storm"),
    ));
    report.rows.push(row(
        "POST /auth/jwt/login, the storm itself",
        hashing.connections,
        login_storm.steps[0].1,
        None,
        format!("{:.0}% of raw Argon2id", hash_ratio(login_storm.steps[0].1)),
    ));
    report.rss_after_load_kib = server.memory_kib().unwrap_or((0, 0));
    report.rows.push(row(
        &format!("raw Argon2id verifications ({hash_threads} threads, in-process)"),
        0,
        Summary {
            requests: 0,
            errors: 0,
            per_second: raw_rate,
            p50_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        },
        raw.cpu_per_verification,
        "the hashing limit".into(),
    ));
    floor.stop();
    server.stop();

    // Restarts on the existing database: spawn to the first 200 of an authenticated read.
    for i in 0..options.starts.max(1) {
        let server = Listening::start(
            server_command(bin, dir, url, &secret, options),
            "axum-users-server",
        )?;
        let took = first_200(
            server.addr,
            || load::get("/users/me", std::slice::from_ref(&bearer)),
            server.spawned,
        )
        .await
        .with_context(|| {
            format!(
                "the restarted server never answered 200; its log:\n{}",
                server.log_tail(20)
            )
        })?;
        eprintln!(
            "[start] {}: first 200 after {:.1} ms",
            i + 1,
            took.as_secs_f64() * 1000.0
        );
        report.starts.push(took);
        if i + 1 == options.starts.max(1) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            report.rss_restart_idle_kib = kib_of(&server);
        }
        server.stop();
    }

    report.targets = targets(
        options,
        &report,
        raw_rate,
        floor_summary,
        me_summary,
        login_summary,
        me_storm_summary,
        [floor_cpu, me_cpu, raw.cpu_per_verification, login_cpu],
    );
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn targets(
    options: &Options,
    report: &SuiteReport,
    raw_rate: f64,
    floor: Summary,
    me: Summary,
    login: Summary,
    me_storm: Summary,
    [floor_cpu, me_cpu, raw_cpu, login_cpu]: [Option<Duration>; 4],
) -> Vec<(String, String, String, bool)> {
    // The same ratio in CPU time of the process under test: what neighbours cannot skew.
    let per_cpu =
        |reference: Option<Duration>, measured: Option<Duration>| match (reference, measured) {
            (Some(r), Some(m)) if !m.is_zero() => {
                format!(
                    "; per CPU second {:.0}%",
                    r.as_secs_f64() / m.as_secs_f64() * 100.0
                )
            }
            _ => String::new(),
        };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let me_ratio = me.per_second / floor.per_second.max(1e-9);
    let login_ratio = login.per_second / raw_rate.max(1e-9);
    let p99_ratio = me_storm.p99_ms / me.p99_ms.max(1e-9);
    let slowest = report.starts.iter().max().copied().unwrap_or_default();
    let storm_note = if options.argon2_memory_kib == 19_456 && options.login_duration >= 30.0 {
        String::new()
    } else {
        " (the target is for a 30 s storm at m=19456)".into()
    };
    vec![
        (
            "GET /users/me (JWT) throughput vs the floor".into(),
            format!(
                "{:.0}% ({:.0} vs {:.0} req/s{})",
                me_ratio * 100.0,
                me.per_second,
                floor.per_second,
                per_cpu(floor_cpu, me_cpu)
            ),
            ">= 60%".into(),
            me_ratio >= 0.6,
        ),
        (
            "login throughput vs raw Argon2id".into(),
            format!(
                "{:.0}% ({:.1} vs {:.1}/s{})",
                login_ratio * 100.0,
                login.per_second,
                raw_rate,
                per_cpu(raw_cpu, login_cpu)
            ),
            ">= 90%".into(),
            login_ratio >= 0.9,
        ),
        (
            "p99 of GET /users/me during a login storm vs without".into(),
            format!(
                "{p99_ratio:.1}x ({:.2} vs {:.2} ms)",
                me_storm.p99_ms, me.p99_ms
            ),
            "<= 5x".into(),
            p99_ratio <= 5.0,
        ),
        (
            "resident memory, idle (after a restart)".into(),
            format!("{:.1} MiB", mib(report.rss_restart_idle_kib)),
            "<= 20 MiB".into(),
            mib(report.rss_restart_idle_kib) <= 20.0,
        ),
        (
            "resident memory after the login storm".into(),
            format!("{:.1} MiB{storm_note}", mib(report.rss_after_login_kib)),
            "<= 100 MiB".into(),
            mib(report.rss_after_login_kib) <= 100.0,
        ),
        (
            "start to first 200 on an existing database (slowest start)".into(),
            format!("{:.1} ms", slowest.as_secs_f64() * 1000.0),
            "<= 200 ms".into(),
            slowest <= Duration::from_millis(200),
        ),
    ]
}

/// One session per connection for the refresh scenario (each rotates its own chain): a login
/// each, before the measurement.
async fn refresh_sessions(
    addr: std::net::SocketAddr,
    email: &str,
    connections: usize,
) -> Result<Arc<Vec<std::sync::Mutex<String>>>> {
    let mut conn = Conn::connect(addr).await?;
    let mut tokens = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let form = load::login_form(email, PASSWORD);
        let request = load::post("/auth/jwt/login", "application/x-www-form-urlencoded", form);
        let reply = expect(&mut conn, request, StatusCode::OK, "login").await?;
        let token = serde_json::from_slice::<serde_json::Value>(&reply.body)?["refresh_token"]
            .as_str()
            .context("login answered no refresh_token (refresh_tokens off?)")?
            .to_owned();
        tokens.push(std::sync::Mutex::new(token));
    }
    Ok(Arc::new(tokens))
}
