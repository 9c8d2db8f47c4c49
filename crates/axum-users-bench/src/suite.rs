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
use crate::targets::{Figure, Measured, counted};

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

/// Raw Argon2id verifications on `threads` threads for `--duration` seconds, with the server
/// idle.
async fn raw_hashing(
    options: &Options,
    threads: usize,
    when: &str,
) -> Result<crate::argon::RawRate> {
    eprintln!(
        "[raw] Argon2id verifications on {threads} threads, m={} KiB t={} p={}, {:.0} s (server idle, {when})",
        options.argon2_memory_kib,
        options.argon2_iterations,
        options.argon2_parallelism,
        options.duration
    );
    let cost = options.cost();
    let duration = Options::secs(options.duration);
    let raw = tokio::task::spawn_blocking(move || {
        crate::argon::verifications_per_second(cost, threads, duration)
    })
    .await
    .context("the Argon2id measurement panicked")??;
    eprintln!("[raw] {:.1} verifications/s", raw.per_second);
    Ok(raw)
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

/// The server's command with Prometheus metrics on (behind a token on the main address).
fn metrics_on(mut command: Command) -> Command {
    command.env(
        "AXUM_USERS_METRICS_TOKEN",
        uuid::Uuid::new_v4().simple().to_string(),
    );
    command
}

/// The server's command with `jwt_revocable` off: JWTs checked without their session.
fn stateless(mut command: Command) -> Command {
    command.env("AXUM_USERS_JWT_REVOCABLE", "false");
    command
}

/// The server's command with no rate limit, login throttle or mail cooldown.
fn limits_off(mut command: Command) -> Command {
    command.env("AXUM_USERS_RATE_LIMITS", "false");
    command
}

/// How much more CPU per request `measured` costs than `reference`, in percent.
fn per_cpu_cost(reference: Option<Duration>, measured: Option<Duration>) -> Option<f64> {
    match (reference, measured) {
        (Some(r), Some(m)) if !r.is_zero() => {
            Some((m.as_secs_f64() / r.as_secs_f64() - 1.0) * 100.0)
        }
        _ => None,
    }
}

/// Sends `request` until it answers 200 (at most 10 s); the time since `since`.
async fn first_200(
    addr: std::net::SocketAddr,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    since: Instant,
) -> Result<Duration> {
    first_200_within(addr, request, since, Duration::from_secs(10)).await
}

/// [`first_200`] with another time limit.
async fn first_200_within(
    addr: std::net::SocketAddr,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    since: Instant,
    limit: Duration,
) -> Result<Duration> {
    let give_up = Instant::now() + limit;
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
    bail!(
        "no 200 from {addr} within {} s; last answer: {last}",
        limit.as_secs()
    )
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

/// Signs `email` in on the JWT backend; its access token.
async fn access_token(conn: &mut Conn, email: &str) -> Result<String> {
    let form = load::login_form(email, PASSWORD);
    let request = load::post("/auth/jwt/login", "application/x-www-form-urlencoded", form);
    let reply = expect(conn, request, StatusCode::OK, "login").await?;
    Ok(
        serde_json::from_slice::<serde_json::Value>(&reply.body)?["access_token"]
            .as_str()
            .context("login answered no access_token")?
            .to_owned(),
    )
}

fn bearer_header(token: &str) -> Result<(header::HeaderName, HeaderValue)> {
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

/// The database of one suite.
#[derive(Debug, Clone, Copy)]
pub struct Database<'a> {
    /// `SQLite` or `PostgreSQL`.
    pub name: &'a str,
    /// Its URL.
    pub url: &'a str,
    /// Users to add before the scenarios (`--users`).
    pub fill: u64,
}

/// Runs the whole suite on `database`, with the server's files in `dir`.
///
/// # Errors
/// When the server or the floor cannot start, or setup requests fail.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    options: &Options,
    bin: &Path,
    db: &Database<'_>,
    dir: &Path,
    hash_threads: usize,
) -> Result<SuiteReport> {
    let (database, url) = (db.name, db.url);
    let mut report = SuiteReport {
        database: database.to_owned(),
        users: db.fill,
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
    eprintln!(
        "[setup] creating {} users ({hash_conns} with TOTP)",
        2 + 3 * hash_conns
    );
    let mut conn = Conn::connect(addr).await?;
    let me_email = format!("bench-{run_id}-me@bench.example.com");
    register(&mut conn, &me_email).await?;
    let form = load::login_form(&me_email, PASSWORD);
    let token = access_token(&mut conn, &me_email).await?;
    let reply = expect(
        &mut conn,
        load::post(
            "/auth/cookie/login",
            "application/x-www-form-urlencoded",
            form.clone(),
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
    let bearer = bearer_header(&token)?;
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
    // A superuser for the admin listing, promoted in the database (the API makes none), and
    // users whose sign-in asks for a TOTP code.
    let admin_email = format!("bench-{run_id}-admin@bench.example.com");
    register(&mut conn, &admin_email).await?;
    crate::fill::promote(url, &admin_email).await?;
    let admin = bearer_header(&access_token(&mut conn, &admin_email).await?)?;
    let mut totp_users = Vec::with_capacity(hash_conns);
    for i in 0..hash_conns {
        let email = format!("bench-{run_id}-totp{i}@bench.example.com");
        totp_users.push(crate::totp::enrol(&mut conn, &email, PASSWORD).await?);
    }
    drop(conn);
    if db.fill > 0 {
        eprintln!("[fill] adding {} users", db.fill);
        let filled = crate::fill::fill(url, db.fill, &me_email).await?;
        eprintln!(
            "[fill] {} users in {:.1} s, {:.0} bytes each",
            filled.users, filled.seconds, filled.bytes_per_user
        );
        report.filled = Some(filled);
    }

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
        "GET /users/me, JWT bearer (revocable, the default: session checked in the same query)",
        reads.connections,
        me_summary,
        me_cpu,
        format!("{:.0}% of the floor", ratio(me_summary)),
    ));
    let mut measured = Measured {
        floor: Figure {
            summary: floor_summary,
            cpu: floor_cpu,
        },
        me: Figure::of(&out),
        ..Measured::default()
    };
    let me_probe = || load::get("/users/me", std::slice::from_ref(&bearer));

    // The same read on a second server with jwt_revocable off (the JWT alone vouches).
    let out = measure_another(
        "me-jwt-stateless",
        stateless(server_command(bin, dir, url, &secret, options)),
        me_probe,
        me_jwt.clone(),
        reads,
    )
    .await?;
    measured.stateless = Figure::of(&out);
    let s = out.steps[0].1;
    report.rows.push(row(
        "GET /users/me, stateless JWT (jwt_revocable off)",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of the floor", ratio(s)),
    ));

    // And on one with Prometheus metrics on (issue #16: at most 3% dearer).
    let out = measure_another(
        "me-jwt-metrics",
        metrics_on(server_command(bin, dir, url, &secret, options)),
        me_probe,
        me_jwt.clone(),
        reads,
    )
    .await?;
    measured.metered = Figure::of(&out);
    let s = out.steps[0].1;
    let metrics_cost = per_cpu_cost(me_cpu, out.cpu_per_iteration);
    report.rows.push(row(
        "GET /users/me, JWT bearer, metrics on",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!(
            "{:.0}% of the same without metrics{}",
            s.per_second / me_summary.per_second.max(1e-9) * 100.0,
            metrics_cost.map_or(String::new(), |c| format!("; CPU per request {c:+.1}%"))
        ),
    ));

    let cookie_header = (header::COOKIE, HeaderValue::from_str(&cookie)?);
    for (label, name, path, credential) in [
        (
            "me-cookie",
            "GET /users/me, auth cookie",
            "/users/me",
            cookie_header,
        ),
        (
            "sessions",
            "GET /users/me/sessions (the list of devices)",
            "/users/me/sessions",
            bearer.clone(),
        ),
        (
            "admin-list",
            "GET /users?limit=50 (the admin listing's first page, as a superuser)",
            "/users?limit=50",
            admin.clone(),
        ),
        (
            "admin-superusers",
            "GET /users?is_superuser=true&limit=50 (a rare filter: one match among all users)",
            "/users?is_superuser=true&limit=50",
            admin,
        ),
    ] {
        let scenario = Scenario::Get {
            path: path.into(),
            headers: vec![credential],
        };
        let out = measure(label, addr, scenario, reads).await?;
        let s = out.steps[0].1;
        report.rows.push(row(
            name,
            reads.connections,
            s,
            out.cpu_per_iteration,
            format!("{:.0}% of the floor", ratio(s)),
        ));
    }

    let tokens = refresh_sessions(addr, &me_email, reads.connections).await?;
    let refresh = Scenario::Refresh {
        tokens,
        form: form.clone(),
    };
    let out = measure("refresh", addr, refresh, reads).await?;
    measured.refresh = Figure::of(&out);
    let s = out.steps[0].1;
    report.rows.push(row(
        "POST /auth/jwt/refresh (rotation: a read, a compare-and-swap, a JWT)",
        reads.connections,
        s,
        out.cpu_per_iteration,
        format!("{:.0}% of the floor", ratio(s)),
    ));

    // The hashing limit, measured right before the login scenario and again right after it
    // (server idle both times): the ratio is against their mean, and both are reported.
    let raw_before = raw_hashing(options, hash_threads, "before the login scenario").await?;

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
    let raw_after = raw_hashing(options, hash_threads, "after the login scenario").await?;
    let raw = raw_before.mean(raw_after);
    let raw_rate = raw.per_second;
    measured.raw_rate = raw_rate;
    measured.raw_cpu = raw.cpu_per_verification;
    measured.raw_before_after = (raw_before.per_second, raw_after.per_second);
    let login_summary = out.steps[0].1;
    measured.login = Figure::of(&out);
    let hash_ratio = |s: Summary| s.per_second / raw_rate.max(1e-9) * 100.0;
    report.rows.push(row(
        "POST /auth/jwt/login",
        hashing.connections,
        login_summary,
        measured.login.cpu,
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

    // No warm-up: it would spend the users' codes of the current steps.
    let totp_load = Load {
        warmup: Duration::ZERO,
        ..hashing
    };
    let users = Arc::new(totp_users);
    let out = measure("totp", addr, Scenario::TotpSignIn { users }, totp_load).await?;
    measured.totp = Figure {
        summary: out.steps[1].1,
        cpu: out.cpu_per_iteration,
    };
    report.rows.push(row(
        "POST /auth/jwt/login, then POST /auth/jwt/mfa with a TOTP code (a sign-in with a second factor)",
        hashing.connections,
        out.steps[1].1,
        out.cpu_per_iteration,
        format!(
            "CPU per sign-in (both steps); the password step p50 {:.2} ms; each user signs in once per 30 s step",
            out.steps[0].1.p50_ms
        ),
    ));

    if let Some(nice) = options.hash_nice {
        let threads = crate::process::renice_threads(server.pid(), "axum-users-hash", nice)?;
        eprintln!("[storm] {threads} hashing threads set to nice {nice}");
    }
    eprintln!("[storm] GET /users/me and a login storm at the same time");
    let storm_reads = Load {
        duration: login_load.duration,
        ..reads
    };
    let (me_storm, login_storm) = tokio::join!(
        load::run("me during storm", addr, me_jwt, storm_reads),
        load::run("login storm", addr, Scenario::Login { forms }, login_load),
    );
    let (me_storm, login_storm) = (me_storm?, login_storm?);
    print_outcome("me during storm", &me_storm);
    print_outcome("login storm", &login_storm);
    let me_storm_summary = me_storm.steps[0].1;
    let login_storm_summary = login_storm.steps[0].1;
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
        format!(
            "the hashing limit: the mean of {:.1}/s before and {:.1}/s after the login scenario",
            raw_before.per_second, raw_after.per_second
        ),
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
            report.anon_restart_idle_kib = server.anon_kib();
        }
        server.stop();
    }

    if options.callgrind_requests > 0 {
        if crate::callgrind::available() {
            let server = || server_command(bin, dir, url, &secret, options);
            let me = || load::get("/users/me", std::slice::from_ref(&bearer));
            let mut floor_command = Command::new(std::env::current_exe()?);
            floor_command.args(["floor", "--database-url", url]);
            let floor = || load::get(&floor_path, &[]);
            let tag = format!("{}-{}", database.to_lowercase(), db.fill);
            let mut counts = Vec::new();
            let counted = async {
                let ir =
                    count_instructions(counted::FLOOR, &floor_command, dir, &floor, options, &tag)
                        .await?;
                counts.push((counted::FLOOR.to_owned(), ir));
                for (what, command) in [
                    (counted::ME, server()),
                    (counted::STATELESS, stateless(server())),
                    (counted::METRICS, metrics_on(server())),
                    (counted::NO_LIMITS, limits_off(server())),
                ] {
                    let ir = count_instructions(what, &command, dir, &me, options, &tag).await?;
                    counts.push((what.to_owned(), ir));
                }
                anyhow::Ok(())
            };
            match counted.await {
                Ok(()) => report.instructions = counts,
                Err(e) => {
                    eprintln!("warning: the callgrind count failed: {e:#}");
                    report.instructions_note = format!("callgrind failed: {e:#}");
                }
            }
        } else {
            report.instructions_note = "not counted: valgrind (callgrind) is not installed".into();
        }
    }

    measured.me_storm = me_storm_summary;
    measured.login_storm = login_storm_summary;
    report.targets = crate::targets::check(options, &report, &measured);
    Ok(report)
}

/// Starts another server from `command`, waits for its first 200 to `probe`, runs `scenario`
/// on it with `load` (its CPU counted), and stops it.
async fn measure_another(
    label: &str,
    command: Command,
    probe: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    scenario: Scenario,
    load: Load,
) -> Result<Outcome> {
    let server = Listening::start(command, label)?;
    first_200(server.addr, probe, Instant::now())
        .await
        .with_context(|| format!("{label}: the server does not answer"))?;
    let out = measure(
        label,
        server.addr,
        scenario,
        Load {
            cpu_pid: Some(server.pid()),
            ..load
        },
    )
    .await;
    server.stop();
    out
}

/// Instructions per request of `request` to `command` run under callgrind (see [`crate::callgrind`]).
async fn count_instructions(
    label: &str,
    command: &Command,
    dir: &Path,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    options: &Options,
    tag: &str,
) -> Result<f64> {
    let profiles = dir.join("callgrind");
    std::fs::create_dir_all(&profiles)?;
    eprintln!(
        "[callgrind] {label}: {} requests after {CALLGRIND_WARMUP} of warm-up",
        options.callgrind_requests
    );
    let process = Listening::start(crate::callgrind::wrap(command, &profiles), label)?;
    first_200_within(
        process.addr,
        &request,
        Instant::now(),
        Duration::from_secs(120),
    )
    .await
    .with_context(|| {
        format!(
            "{label} under callgrind; its log:\n{}",
            process.log_tail(20)
        )
    })?;
    let (ir, profile) = crate::callgrind::per_request(
        &process,
        &profiles,
        &request,
        CALLGRIND_WARMUP,
        options.callgrind_requests,
    )
    .await?;
    eprintln!("[callgrind] {label}: {ir:.0} instructions per request");
    process.stop();
    if let Some(keep) = &options.callgrind_keep {
        std::fs::create_dir_all(keep)?;
        let name: String = label
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let kept = keep.join(format!("callgrind.{tag}.{name}"));
        std::fs::copy(&profile, &kept)
            .with_context(|| format!("cannot keep the profile as {}", kept.display()))?;
        eprintln!("[callgrind] kept {}", kept.display());
    }
    Ok(ir)
}

/// Requests a process under callgrind serves before its count starts (lazily built state such
/// as the connection's buffers and the pool's statements).
const CALLGRIND_WARMUP: usize = 200;

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
