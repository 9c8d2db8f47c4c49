//! `axum-users-server`: the whole axum-users API from a config file and the environment.

mod abuse;
mod admin;
mod app;
mod config;
mod hooks;
mod import;
mod mail_admin;
mod mail_config;
mod mailer;
mod metrics;
mod oauth;
mod openapi;
mod sessions;
mod webhooks;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use axum_users::{ManagerError, Privilege, Secret, UserCreate, normalize_email};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::config::{Config, MailerConfig};

/// What `--help` adds after the settings.
const AFTER_HELP: &str = "\
Each setting is also a key of the TOML file (argon2.*, server.* and mail.* in the [argon2],
[server] and [mail] tables); the environment overrides the file, and flags override both.
OAuth providers are [oauth.<name>] tables of the file; their client secrets may come from
AXUM_USERS_OAUTH_<NAME>_CLIENT_SECRET. See docs/configuration.md.";

/// Runs the axum-users API (FastAPI Users-compatible) on SQLite, PostgreSQL or MySQL, from an
/// optional TOML file, AXUM_USERS_* environment variables and flags.
#[derive(Debug, Parser)]
#[command(version, after_help = AFTER_HELP)]
struct Cli {
    /// Path of the TOML config file [default: axum-users.toml if present]
    #[arg(long, global = true, env = "AXUM_USERS_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// Log filter, e.g. debug or axum_users=debug,info [default: info]
    #[arg(long, global = true, env = "AXUM_USERS_LOG", value_name = "FILTER")]
    log: Option<String>,
    /// Log format: text, or json (one object a line, with the request id of every line written
    /// while serving a request) [default: text]
    #[arg(
        long,
        global = true,
        env = "AXUM_USERS_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    log_format: Option<LogFormat>,
    /// Declared here for the flags, the variables and `--help`; [`Config::load`] reads them
    /// from the matches, over the TOML file.
    #[command(flatten)]
    #[allow(dead_code)]
    settings: config::Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Create a verified superuser; prompts for what is not given.
    CreateSuperuser {
        /// E-mail address of the superuser.
        #[arg(long)]
        email: Option<String>,
        /// Password (prefer the prompt or AXUM_USERS_SUPERUSER_PASSWORD: arguments show in `ps`).
        #[arg(long, env = "AXUM_USERS_SUPERUSER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Check the configuration (file, environment, OAuth providers by discovery) and exit.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Remove expired sessions and access tokens, print how many, and exit.
    Prune,
    /// List, show, activate, promote, verify or delete users.
    Users {
        #[command(subcommand)]
        command: admin::UsersCommand,
    },
    /// Copy the users of another system (FastAPI Users) into the configured database.
    Import {
        #[command(subcommand)]
        command: import::ImportCommand,
    },
    /// List the mail outbox or queue failed messages again.
    Mail {
        #[command(subcommand)]
        command: mail_admin::MailCommand,
    },
    /// List the webhook deliveries or queue failed ones again.
    Webhooks {
        #[command(subcommand)]
        command: mail_admin::MailCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Load and validate the configuration, discover the OAuth providers, print a summary.
    Check,
}

fn main() -> std::process::ExitCode {
    let matches = match Cli::command().try_get_matches() {
        Ok(matches) => matches,
        Err(e) => {
            if let Some(message) = config::explain_clap_error(&e) {
                eprintln!("error: {message}");
                return std::process::ExitCode::FAILURE;
            }
            e.exit()
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(
        cli.log.as_deref().unwrap_or("info"),
        cli.log_format.unwrap_or_default(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, &matches)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line; lines written while serving a request carry its `request_id`.
    Json,
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(false)
            .with_span_list(true)
            .flatten_event(true)
            .init(),
    }
    JSON_LOGS.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Whether the log is JSON: each request then runs in a span with its request id.
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn run(cli: Cli, matches: &ArgMatches) -> Result<()> {
    let config = Config::load(cli.config.as_deref(), matches, &|key| {
        std::env::var(key).ok()
    })?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            app::open_store(&config).await?;
            println!("database {} is up to date", config.database_url);
            Ok(())
        }
        Command::Users { command } => admin::run(config, command).await,
        Command::Mail { command } => mail_admin::run(config, command).await,
        Command::Webhooks { command } => mail_admin::run_webhooks(config, command).await,
        Command::Import { command } => import::run(config, command).await,
        Command::Prune => sessions::prune(&config).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => check_config(config).await,
        Command::CreateSuperuser { email, password } => {
            create_superuser(config, email, password).await
        }
    }
}

/// Everything `serve` checks before it opens the database, without serving.
async fn check_config(config: Config) -> Result<()> {
    oauth::clients(&config.oauth, &|key| std::env::var(key).ok()).await?;
    println!("configuration is valid");
    println!("  bind: {}", config.bind);
    println!("  database: {}", config.database_url);
    println!(
        "  secret: {}",
        if config.secret.is_some() {
            "set"
        } else {
            "generated beside the SQLite database"
        }
    );
    println!(
        "  backends: jwt, cookie{}{}",
        if config.db_tokens.is_some() {
            ", db"
        } else {
            ""
        },
        if config.redis.is_some() {
            ", redis"
        } else {
            ""
        }
    );
    if !config.previous_secrets.is_empty() {
        println!(
            "  previous secrets: {} (tokens they signed are still accepted)",
            config.previous_secrets.len()
        );
    }
    println!("  strict_compat: {}", config.strict_compat);
    if !config.trusted_origins.is_empty() {
        println!("  trusted origins: {}", config.trusted_origins.join(", "));
    }
    println!("  mailer: {}", describe_mailer(&config.mailer));
    println!(
        "  mail links (front end {}): {}, {}, {}",
        config.frontend_url,
        config.mail.reset_url,
        config.mail.verify_url,
        config.mail.email_change_url
    );
    let limits = &config.limits;
    println!(
        "  limits: headers {:?}, body {:?}, request {:?}, {} connections",
        limits.header_timeout, limits.body_timeout, limits.request_timeout, limits.max_connections
    );
    for name in config.oauth.keys() {
        println!("  oauth: {name} (discovered)");
    }
    for endpoint in &config.webhooks.endpoints {
        println!("  webhook: {}", endpoint.name);
    }
    Ok(())
}

fn describe_mailer(mailer: &MailerConfig) -> String {
    match mailer {
        MailerConfig::Log { tokens: false } => "log (no mail is sent; tokens redacted)".into(),
        MailerConfig::Log { tokens: true } => {
            "log+tokens (no mail is sent; TOKENS ARE LOGGED)".into()
        }
        MailerConfig::File(dir) => format!("file:{}", dir.display()),
        MailerConfig::Smtp(url) => url.to_string(),
    }
}

/// Says at start-up that a `log` mailer sends nothing, and loudly when it logs tokens.
fn warn_about_mailer(mailer: &MailerConfig) {
    match mailer {
        MailerConfig::Log { tokens: false } => tracing::warn!(
            "mailer `log`: no mail is sent; reset and verify links are logged with their token \
             redacted (set AXUM_USERS_MAILER to file:<dir> to deliver them)"
        ),
        MailerConfig::Log { tokens: true } => tracing::warn!(
            "mailer `log+tokens`: no mail is sent and LIVE RESET AND VERIFY TOKENS ARE WRITTEN TO \
             THE LOG; whoever reads the log can take over accounts; for local development only"
        ),
        MailerConfig::File(_) | MailerConfig::Smtp(_) => {}
    }
}

async fn serve(config: Config) -> Result<()> {
    let started = std::time::Instant::now();
    warn_about_mailer(&config.mailer);
    let store = app::open_store(&config).await?;
    let secret = app::resolve_secret(&config)?;
    let redis = app::redis(&config)?;
    if let Some(redis) = &redis
        && let Err(e) = redis.ping().await
    {
        tracing::warn!(error = %e, "Redis is not reachable yet: /auth/redis answers 503 until it is");
    }
    let oauth = oauth::clients(&config.oauth, &|key| std::env::var(key).ok()).await?;
    for name in config.oauth.keys() {
        tracing::info!(provider = %name, "OAuth sign-in at /auth/{name}/authorize");
    }
    let limiter = app::redis_limiter(&config, &secret)?;
    let (users, outbox) = app::users_with_outbox(
        &config,
        store.clone(),
        redis.clone(),
        secret.clone(),
        oauth,
        limiter,
    )?;
    let pages = app::pages(&config, &users, &secret)?;
    if let Some(prefix) = &config.ui_prefix {
        tracing::info!("hosted pages at {prefix}/sign-in");
    }
    sessions::spawn_pruning(&config, &users);
    let mail_worker = mailer::start_worker(&config, &outbox)?;
    let webhook_worker = webhooks::start_worker(&config.webhooks, &store)?;
    let metrics = if config.metrics.enabled() {
        Some(metrics::Metrics::install(
            config.metrics.token.clone(),
            store.clone(),
            users.clone(),
        )?)
    } else {
        None
    };
    let mut router = app::router(
        &users,
        app::Services {
            store,
            redis,
            defences: users.manager().defences().clone(),
        },
        pages.as_ref(),
    );
    if let Some(metrics) = &metrics {
        router = router.route_layer(metrics::TrackLayer);
        if config.metrics.token.is_some() {
            router = router.merge(metrics.guarded_route());
        }
    }
    if JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        router = router.layer(axum::middleware::from_fn(app::request_span));
    }
    if let (Some(metrics), Some(bind)) = (&metrics, config.metrics.bind) {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind} (AXUM_USERS_METRICS_BIND)"))?;
        tracing::info!(
            "metrics served at http://{}/metrics",
            listener.local_addr()?
        );
        let router = metrics.own_router();
        let limits = config.limits;
        tokio::spawn(async move {
            if let Err(e) = app::serve(listener, router, limits, std::future::pending()).await {
                tracing::error!(error = %e, "the metrics listener stopped");
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set AXUM_USERS_BIND to another address)",
                config.bind
            )
        })?;
    let address = listener.local_addr()?;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "axum-users listening on http://{address}"
    );
    app::serve(listener, router, config.limits, shutdown_signal()).await?;
    mail_worker.stop().await;
    if let Some(worker) = webhook_worker {
        worker.stop().await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing requests in flight");
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn create_superuser(
    config: Config,
    email: Option<String>,
    password: Option<String>,
) -> Result<()> {
    let email = match email {
        Some(email) => email,
        None => prompt("E-mail")?,
    };
    let email =
        normalize_email(&email).map_err(|e| anyhow::anyhow!("invalid e-mail address: {e}"))?;
    let password = match password {
        Some(password) => password,
        None => prompt("Password")?,
    };
    let store = app::open_store(&config).await?;
    let secret = app::resolve_secret(&config)?;
    let users = app::users(&config, store, None, secret, Vec::new(), None)?;
    let mut create = UserCreate::new(email, Secret::new(password));
    create.is_superuser = Some(true);
    create.is_verified = Some(true);
    match users
        .manager()
        .create(create, Privilege::Superuser, None)
        .await
    {
        Ok(user) => {
            println!("created superuser {} ({})", user.email, user.id);
            Ok(())
        }
        Err(ManagerError::UserAlreadyExists) => {
            bail!("a user with this e-mail address already exists")
        }
        Err(ManagerError::InvalidPassword(p)) => bail!("password refused: {}", p.reason),
        Err(e) => Err(e.into()),
    }
}
