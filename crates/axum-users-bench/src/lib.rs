//! The axum-users load benchmark as a library: the binary `axum-users-bench` parses its
//! command line into [`Options`] and calls [`bench()`]. Builds and starts the release
//! `axum-users-server` on a temporary database, loads every route over keep-alive connections
//! on loopback, and reports requests per second and p50/p99 latency beside a floor (a bare
//! axum + sqlx handler) and the raw Argon2id rate, with the server's memory and start time.
//! See `docs/benchmarks.md`.

pub mod argon;
pub mod callgrind;
pub mod fill;
pub mod floor;
pub mod load;
pub mod mail;
pub mod process;
pub mod report;
pub mod stats;
pub mod suite;
pub mod targets;
pub mod totp;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How the benchmark runs.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Measured seconds of each scenario (after the warm-up).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Measured seconds of the login scenario and of the storm (`GET /users/me` during logins);
    /// the memory and storm targets are for 30 seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub login_duration: f64,
    /// Seconds of unrecorded load before each scenario's measurement.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    pub warmup: f64,
    /// Keep-alive connections of the read scenarios (`GET /users/me`, the floor).
    #[arg(long, default_value_t = 32, value_name = "N")]
    pub connections: usize,
    /// Keep-alive connections of the hashing scenarios (login, register, reset, the storm).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub hash_connections: usize,
    /// Worker threads of the load generator's own tokio runtime.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub client_threads: usize,
    /// Argon2id memory in KiB, for the server (AXUM_USERS_ARGON2_MEMORY_KIB) and the raw rate.
    #[arg(long, default_value_t = 19_456, value_name = "KIB")]
    pub argon2_memory_kib: u32,
    /// Argon2id passes (AXUM_USERS_ARGON2_ITERATIONS).
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub argon2_iterations: u32,
    /// Argon2id lanes (AXUM_USERS_ARGON2_PARALLELISM).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub argon2_parallelism: u32,
    /// Threads of the raw Argon2id measurement (default: one per core, as the server's pool).
    #[arg(long, value_name = "N")]
    pub hash_threads: Option<usize>,
    /// How many times to restart the server on the existing database to time its start.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub starts: usize,
    /// Server binary to run instead of building target/release/axum-users-server.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// Do not run `cargo build --release -p axum-users-server` first.
    #[arg(long)]
    pub no_build: bool,
    /// Also run the suite on PostgreSQL: an admin URL of a server on loopback (e.g.
    /// postgres://postgres@127.0.0.1/postgres); a throw-away database is created there and dropped.
    #[arg(long, value_name = "URL")]
    pub postgres_url: Option<String>,
    /// Skip the SQLite suite (with --postgres-url, run PostgreSQL only).
    #[arg(long)]
    pub no_sqlite: bool,
    /// true: the server's rate limits run on every limited route, with limits too high to refuse
    /// (their cost is measured, not their refusals); false: AXUM_USERS_RATE_LIMITS=false.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub rate_limits: bool,
    /// Requests counted under valgrind's callgrind for the instructions-per-request figures of
    /// the floor and `GET /users/me` (0: skip; skipped with a note when valgrind is missing).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub callgrind_requests: usize,
    /// Keep the callgrind profiles in this folder (one `callgrind.<what>.<database>` per count,
    /// for `callgrind_annotate`) instead of dropping them with the run's temporary folder.
    #[arg(long, value_name = "DIR")]
    pub callgrind_keep: Option<PathBuf>,
    /// Set the server's password hashing threads to this nice value (renice, as root) right
    /// before the storm, to try other trade-offs between reads and logins than the server's
    /// own nice 10 [default: leave them as the server sets them].
    #[arg(long, value_name = "NICE", allow_negative_numbers = true)]
    pub hash_nice: Option<i32>,
    /// Users to add to the database before the scenarios, comma-separated for a suite each
    /// (e.g. 1000,1000000: the report sets them side by side) [default: none added]
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub users: Vec<u64>,
}

impl Options {
    /// Seconds from the command line as a duration (negative reads as zero).
    pub fn secs(value: f64) -> Duration {
        Duration::from_secs_f64(value.max(0.0))
    }

    /// The load of one ordinary scenario.
    pub fn load(&self, connections: usize) -> load::Load {
        load::Load {
            connections: connections.max(1),
            warmup: Self::secs(self.warmup),
            duration: Self::secs(self.duration),
            cpu_pid: None,
        }
    }

    /// The Argon2id cost of the run.
    pub fn cost(&self) -> argon::Cost {
        argon::Cost {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }
}

/// Runs the benchmark and prints the report on stdout.
///
/// # Errors
/// When the server cannot be built or started, or no suite completes.
pub fn bench(options: Options) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: this is a debug build of the load generator; its numbers understate the \
             server. Run `cargo run --release -p axum-users-bench`."
        );
    }
    let server_bin = server_binary(&options)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.client_threads.max(1))
        .enable_all()
        .build()
        .context("cannot start the load generator's runtime")?;
    let machine = report::Machine::read();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let load_before = report::load_average();
    eprintln!(
        "machine: {} CPUs, {}, {:.1} GiB; load average {load_before}",
        machine.cpus, machine.cpu_model, machine.memory_gib
    );

    let threads = options.hash_threads.unwrap_or(machine.cpus);
    let mut suites = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let fills = if options.users.is_empty() {
        vec![0]
    } else {
        options.users.clone()
    };
    for &fill in &fills {
        if !options.no_sqlite {
            let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            let url = format!("sqlite://{}", dir.path().join("users.db").display());
            suites.push(runtime.block_on(suite::run(
                &options,
                &server_bin,
                &suite::Database {
                    name: "SQLite",
                    url: &url,
                    fill,
                },
                dir.path(),
                threads,
            ))?);
        }
        if let Some(admin_url) = &options.postgres_url {
            let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
            let suite = runtime.block_on(async {
                let db = suite::PgDatabase::create(admin_url).await?;
                let result = suite::run(
                    &options,
                    &server_bin,
                    &suite::Database {
                        name: "PostgreSQL",
                        url: &db.url,
                        fill,
                    },
                    dir.path(),
                    threads,
                )
                .await;
                db.drop_database().await;
                result
            });
            match suite {
                Ok(suite) => suites.push(suite),
                // The SQLite results still stand: report the failure beside them.
                Err(e) => {
                    eprintln!("error: the PostgreSQL suite failed: {e:#}");
                    failures.push(format!("PostgreSQL: the suite failed: {e:#}"));
                }
            }
        }
    }
    if suites.is_empty() && failures.is_empty() {
        bail!("nothing to run: --no-sqlite needs --postgres-url");
    }
    let load_after = report::load_average();

    println!("## Results\n");
    println!("- command: `{command}`");
    println!(
        "- machine: {} CPUs ({}), {:.1} GiB of memory; load generator, floor and server share it",
        machine.cpus, machine.cpu_model, machine.memory_gib
    );
    println!("- load average (1, 5, 15 min): {load_before} before, {load_after} after");
    println!(
        "- Argon2id m={} KiB, t={}, p={}; the raw rate is measured on {threads} threads right \
         before and right after the login scenario, with the server idle, and the ratios are \
         against the mean of the two",
        options.argon2_memory_kib, options.argon2_iterations, options.argon2_parallelism
    );
    println!(
        "- each scenario: {} s warm-up, {} s measured (login storm {} s); {} read connections, \
         {} hashing connections; load generator on {} threads\n",
        options.warmup,
        options.duration,
        options.login_duration,
        options.connections,
        options.hash_connections,
        options.client_threads
    );
    for suite in &suites {
        println!("{}", report::render(suite));
    }
    if fills.len() > 1 {
        println!("{}", report::render_growth(&suites));
    }
    for failure in &failures {
        println!("{failure}\n");
    }
    if suites.is_empty() {
        bail!("no suite completed");
    }
    Ok(())
}

/// The server binary: `--server-bin`, else target/release/axum-users-server, built first.
pub fn server_binary(options: &Options) -> Result<PathBuf> {
    if let Some(path) = &options.server_bin {
        if !path.is_file() {
            bail!("--server-bin {}: no such file", path.display());
        }
        return Ok(path.clone());
    }
    // This binary lives in <target>/<profile>/; the server is built into <target>/release/.
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let target = exe
        .parent()
        .and_then(|profile| profile.parent())
        .context("cannot find the target folder beside this program")?;
    let path = target.join("release").join("axum-users-server");
    if !options.no_build {
        let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("building the server: cargo build --release -p axum-users-server");
        let status = std::process::Command::new(&cargo)
            .args(["build", "--release", "-p", "axum-users-server"])
            .current_dir(workspace)
            .env("CARGO_TARGET_DIR", target)
            .status()
            .with_context(|| format!("cannot run {cargo}"))?;
        if !status.success() {
            bail!("building the server failed ({status}); fix the build or pass --server-bin PATH");
        }
    }
    if !path.is_file() {
        bail!(
            "{} does not exist: run `cargo build --release -p axum-users-server` or pass --server-bin",
            path.display()
        );
    }
    Ok(path)
}
