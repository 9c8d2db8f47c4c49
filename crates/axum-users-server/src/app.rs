//! Builds the server from its configuration: the store, the secret, the routes, and the HTTP
//! server that runs them within time and connection limits.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_users::{
    AuthBackend, AxumUsers, CookieSettings, DatabaseStrategy, Secret, StoreError, Transport,
};
use axum_users_redis::{RedisOptions, RedisStrategy};
use axum_users_sqlx::{SqlStore, StoreOptions};
use http::StatusCode;
use serde_json::json;

use crate::config::{Config, ServerLimits};
use crate::hooks::ServerHooks;
use crate::openapi;
use axum_users_mail::Outbox;

/// The store the server runs on (SQLite, PostgreSQL or MySQL, by the URL).
pub(crate) type Store = SqlStore;
/// The Redis token strategy, when configured.
pub(crate) type Redis = RedisStrategy<uuid::Uuid>;
/// The configured user management.
pub(crate) type Users = AxumUsers<Store, ServerHooks>;

/// Opens the database and applies pending migrations.
///
/// # Errors
/// When the database cannot be opened or migrated.
pub(crate) async fn open_store(config: &Config) -> Result<Store> {
    let options = StoreOptions::default()
        .with_max_connections(config.database_max_connections)
        .with_timeout(config.database_timeout);
    let store = Store::connect_with(config.database_url.expose(), options)
        .await
        .with_context(|| {
            format!(
                "cannot open the database {} (check AXUM_USERS_DATABASE_URL)",
                config.database_url
            )
        })?
        .with_webhooks(config.webhooks.routes()?);
    let applied = store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    if applied > 0 {
        tracing::info!(applied, "database schema migrated");
    }
    Ok(store)
}

/// The configured secret, or the one kept beside the SQLite database (generated once).
///
/// # Errors
/// When no secret is configured and none can be kept.
pub(crate) fn resolve_secret(config: &Config) -> Result<Secret> {
    if let Some(secret) = &config.secret {
        return Ok(secret.clone());
    }
    let path = config.secret_file().context(
        "set AXUM_USERS_SECRET: it is required with an in-memory SQLite, PostgreSQL or MySQL \
         database (every node of a deployment must share it)",
    )?;
    if path.exists() {
        let secret = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Secret::new(secret.trim()));
    }
    let secret = axum_users::random_token(48);
    write_private(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "no AXUM_USERS_SECRET set: generated one and kept it in this file; production must set its own"
    );
    Ok(Secret::new(secret))
}

fn write_private(path: &Path, secret: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(secret.as_bytes())?;
    Ok(())
}

/// The Redis strategy, when configured. It connects lazily: the server starts while Redis is
/// down, and `/ready` says so.
///
/// # Errors
/// When the URL is malformed.
pub(crate) fn redis(config: &Config) -> Result<Option<Redis>> {
    let Some(redis) = &config.redis else {
        return Ok(None);
    };
    let options = RedisOptions::default()
        .with_key_prefix(redis.key_prefix.clone())
        .with_lifetime(redis.token_lifetime)
        .with_timeout(redis.timeout);
    let strategy = Redis::connect(redis.url.expose(), options).with_context(|| {
        format!(
            "invalid Redis URL {} (check AXUM_USERS_REDIS_URL)",
            redis.url
        )
    })?;
    Ok(Some(strategy))
}

/// The rate-limit counters in Redis when Redis is configured, so that every node shares them
/// (under `<redis_key_prefix>limit:`, named by a keyed hash under a sub-key of `secret`, which
/// every node shares too); `None`: in this node's memory.
///
/// # Errors
/// When the URL is malformed.
pub(crate) fn redis_limiter(
    config: &Config,
    secret: &Secret,
) -> Result<Option<Arc<dyn axum_users::Limiter>>> {
    let Some(redis) = &config.redis else {
        return Ok(None);
    };
    let prefix = format!("{}limit:", redis.key_prefix);
    let names = axum_users::CounterKeys::new(secret.clone());
    let limiter =
        axum_users_redis::RedisLimiter::connect(redis.url.expose(), prefix, names, redis.timeout)
            .with_context(|| {
            format!(
                "invalid Redis URL {} (check AXUM_USERS_REDIS_URL)",
                redis.url
            )
        })?;
    Ok(Some(Arc::new(limiter)))
}

/// User management over `store` as configured: the `jwt` and `cookie` backends, then `db`
/// (database tokens) and `redis` when enabled, all Bearer.
///
/// # Errors
/// When the configuration is refused by the library.
pub(crate) fn users(
    config: &Config,
    store: Store,
    redis: Option<Redis>,
    secret: Secret,
    oauth: Vec<axum_users::OAuthClient>,
    limiter: Option<std::sync::Arc<dyn axum_users::Limiter>>,
) -> Result<Users> {
    Ok(users_with_outbox(config, store, redis, secret, oauth, limiter)?.0)
}

/// [`users`], and the mail outbox its hooks queue messages in (for the worker that sends them).
///
/// # Errors
/// When the configuration is refused by the library.
pub(crate) fn users_with_outbox(
    config: &Config,
    store: Store,
    redis: Option<Redis>,
    secret: Secret,
    oauth: Vec<axum_users::OAuthClient>,
    limiter: Option<std::sync::Arc<dyn axum_users::Limiter>>,
) -> Result<(Users, Outbox<Store>)> {
    let outbox = crate::mail_config::outbox(config, store.clone(), &secret);
    let hooks = ServerHooks {
        outbox: outbox.clone(),
        composer: crate::mail_config::composer(&config.mail)?,
        notices: config.mail.notices,
    };
    let mut builder = AxumUsers::builder(store.clone(), secret);
    if let Some(lifetime) = config.db_tokens {
        let strategy = DatabaseStrategy::new(store, lifetime);
        builder = builder.backend(AuthBackend::new("db", bearer("db"), strategy));
    }
    if let Some(redis) = redis {
        builder = builder.backend(AuthBackend::new("redis", bearer("redis"), redis));
    }
    if let Some(url) = &config.public_url {
        builder = builder.public_url(url.clone());
    }
    if let Some(passkeys) = &config.passkeys {
        builder = builder.passkeys(passkeys.clone());
    }
    if !config.previous_secrets.is_empty() {
        builder = builder.previous_secrets(config.previous_secrets.iter().cloned());
    }
    for client in oauth {
        builder = builder.oauth(client);
    }
    let users = builder
        .hooks(hooks)
        .argon2(config.argon2)
        .jwt_lifetime(std::time::Duration::from_secs(config.jwt_lifetime_seconds))
        .cookie(CookieSettings::auth().with_secure(config.cookie_secure))
        .strict_compat(config.strict_compat)
        .send_verification_on_register(config.send_verification_on_register)
        .email_change(axum_users::EmailChangeSettings::new(config.email_change))
        .sessions(config.sessions)
        .trusted_origins(config.trusted_origins.iter().cloned())
        .defences(config.abuse.defences(limiter)?)
        .build()
        .context("invalid user-management configuration")?;
    Ok((users, outbox))
}

fn bearer(backend: &str) -> Transport {
    Transport::Bearer {
        token_url: format!("auth/{backend}/login"),
    }
}

/// What `/ready` checks.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) store: Store,
    pub(crate) redis: Option<Redis>,
    /// Whose fail-open counters `/ready` reports.
    pub(crate) defences: axum_users::Defences,
}

/// The hosted pages of `users`, when the configuration turns them on (the default): OAuth
/// providers get a button when they sign in through the cookie backend.
///
/// # Errors
/// When the pages refuse the configuration.
pub(crate) fn pages(
    config: &Config,
    users: &Users,
    secret: &Secret,
) -> Result<Option<axum_users_pages::Pages<Store, ServerHooks>>> {
    let Some(prefix) = &config.ui_prefix else {
        return Ok(None);
    };
    let providers = config
        .oauth
        .iter()
        .filter(|(_, p)| p.backend_name() == "cookie")
        .map(|(name, _)| name.clone());
    let settings = axum_users_pages::PagesConfig::default()
        .with_prefix(prefix.clone())
        .with_return_to(config.ui_return_to.iter().cloned())
        .with_secure_cookies(config.cookie_secure)
        .with_app_name(config.mail.app_name.clone())
        .with_providers(providers);
    let pages = axum_users_pages::Pages::new(users.clone(), secret.clone(), settings)
        .context("invalid configuration of the hosted pages (AXUM_USERS_UI_*)")?;
    Ok(Some(pages))
}

/// The whole HTTP application.
pub(crate) fn router(
    users: &Users,
    services: Services,
    pages: Option<&axum_users_pages::Pages<Store, ServerHooks>>,
) -> Router {
    let api = match pages {
        Some(pages) => pages.wrap_oauth_callbacks(users.router().merge(pages.router())),
        None => users.router(),
    };
    Router::new()
        .merge(api)
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/ready", get(ready).with_state(services))
        .merge(openapi::routes(users))
        .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"detail": "Method Not Allowed"})),
            )
        })
}

/// 200 when the database (and Redis, when configured) answer; else 503, naming which does not.
async fn ready(State(services): State<Services>) -> Response {
    let redis = async {
        match &services.redis {
            Some(redis) => Some(redis.ping().await),
            None => None,
        }
    };
    let (database, redis) = tokio::join!(services.store.ping(), redis);
    let mut body = json!({"status": "ok", "database": state("database", &database)});
    // The fail-open metrics: how often the counters (Redis) and the breach check were away.
    body["limiter_outages"] = services.defences.limiter_outages().into();
    if let Some(breached) = &services.defences.breached_passwords {
        body["breached_passwords_outages"] = breached.outages().into();
    }
    let mut ok = database.is_ok();
    if let Some(redis) = redis {
        body["redis"] = state("redis", &redis).into();
        ok &= redis.is_ok();
    }
    if ok {
        return Json(body).into_response();
    }
    body["status"] = "unavailable".into();
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

fn state(service: &str, result: &Result<(), StoreError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) => {
            tracing::warn!(service, error = %e, "readiness check failed");
            "unavailable"
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets the connections finish
/// the requests in flight (for at most one request time-out plus one header time-out).
///
/// Within `limits`: hyper closes a connection whose headers do not arrive in time (also an idle
/// kept-alive one); [`time_limits`] answers 408 to a request whose body stalls or whose answer
/// takes too long. At most `max_connections` connections are accepted at once: the next ones
/// wait in the kernel's listen backlog until one closes (and are refused by the kernel when the
/// backlog is full), so a flood of idle connections cannot exhaust the process's file handles.
///
/// # Errors
/// When the HTTP server cannot be set up.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let router = router.layer(axum::middleware::from_fn_with_state(limits, time_limits));
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.context("connection limit")?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file handles and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // The peer address, as `axum::serve` gives it: the rate limits read the client IP there.
        let service = tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request
            },
        );
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let grace = limits.request_timeout + limits.header_timeout;
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("stopping with connections still open after {grace:?}");
    }
    Ok(())
}

/// Runs a request in a `request` span with its id, so that every log line written while serving
/// it carries `request_id` (JSON logs); answers with the id in `x-request-id`. A client's own
/// `x-request-id` is kept when it is short and plain (letters, digits, `-`, `_`, `.`), else a
/// new one is made. The span holds the method and the path, never the query (OAuth callbacks
/// carry their code there); it ends with one `request` line with the status and the time taken.
pub(crate) async fn request_span(request: Request, next: Next) -> Response {
    use tracing::Instrument;
    const HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");
    let id = request
        .headers()
        .get(&HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = std::time::Instant::now();
    let mut response = async move {
        let response = next.run(request).await;
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        );
        response
    }
    .instrument(span)
    .await;
    if let Ok(value) = http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Answers 408 to a request whose body stops arriving for `body_timeout`, or whose answer is
/// not ready within `request_timeout`; the connection is closed after it.
async fn time_limits(State(limits): State<ServerLimits>, request: Request, next: Next) -> Response {
    let stalled = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(IdleTimeoutBody {
            inner: body,
            timeout: limits.body_timeout,
            sleep: None,
            stalled: stalled.clone(),
        })
    });
    match tokio::time::timeout(limits.request_timeout, next.run(request)).await {
        Ok(response) if !stalled.load(Ordering::Relaxed) => response,
        _ => (
            StatusCode::REQUEST_TIMEOUT,
            [(http::header::CONNECTION, "close")],
            Json(json!({"detail": "REQUEST_TIMEOUT"})),
        )
            .into_response(),
    }
}

/// A request body that fails when its next frame takes longer than `timeout`, and says so in
/// `stalled` (the handler may turn the failure into any rejection; [`time_limits`] answers 408).
struct IdleTimeoutBody {
    inner: Body,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    stalled: Arc<AtomicBool>,
}

impl http_body::Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.sleep = None;
            return Poll::Ready(frame);
        }
        let timeout = this.timeout;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.stalled.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(axum::Error::new(
            "the request body stopped arriving",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    /// A body that never sends anything: a client that went quiet.
    struct Silent;

    impl http_body::Body for Silent {
        type Data = Bytes;
        type Error = axum::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut TaskContext<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
            Poll::Pending
        }
    }

    fn limited(request_timeout: Duration) -> Router {
        let limits = ServerLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_millis(50),
            request_timeout,
            max_connections: 1,
        };
        Router::new()
            .route(
                "/echo",
                axum::routing::post(|body: Bytes| async move { body }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn_with_state(limits, time_limits))
    }

    async fn call(router: Router, request: http::Request<Body>) -> (StatusCode, String) {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let close = response.headers().get(http::header::CONNECTION).cloned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        if status == StatusCode::REQUEST_TIMEOUT {
            assert_eq!(
                close.unwrap(),
                "close",
                "the connection is closed after a 408"
            );
        }
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_body_that_stops_arriving_gets_408() {
        let request = http::Request::post("/echo")
            .body(Body::new(Silent))
            .unwrap();
        let (status, body) = call(limited(Duration::from_secs(5)), request).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(body, r#"{"detail":"REQUEST_TIMEOUT"}"#);
    }

    #[tokio::test]
    async fn a_slow_answer_gets_408_and_a_quick_one_passes() {
        let request = http::Request::get("/slow").body(Body::empty()).unwrap();
        let (status, _) = call(limited(Duration::from_millis(100)), request).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        let request = http::Request::post("/echo")
            .body(Body::from("hello"))
            .unwrap();
        let (status, body) = call(limited(Duration::from_millis(100)), request).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    }

    #[tokio::test]
    async fn the_security_settings_reach_the_library() {
        let matches = crate::config::settings_command()
            .mut_args(|a| a.env(None::<&str>))
            .try_get_matches_from([
                "axum-users-server",
                "--database-url=sqlite::memory:",
                "--secret=a-secret-of-at-least-32-bytes-0123456789",
                "--previous-secrets=an-old-secret-of-at-least-32-bytes-0123",
                "--strict-compat=true",
                "--trusted-origins=https://app.example.com",
                "--argon2-memory-kib=256",
                "--argon2-iterations=1",
            ])
            .unwrap();
        let config = Config::load(None, &matches, &|_| None).unwrap();
        let store = open_store(&config).await.unwrap();
        let secret = resolve_secret(&config).unwrap();
        let users = users(&config, store, None, secret, Vec::new(), None).unwrap();
        assert!(users.policy().strict_compat);
        assert_eq!(users.policy().trusted_origins, ["https://app.example.com"]);
    }
}
