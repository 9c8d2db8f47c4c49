//! Webhooks: the endpoints of the configuration (`[[webhooks]]` tables, or one endpoint from
//! `AXUM_USERS_WEBHOOK_*`), checked at start, and the worker that delivers what the store
//! queued (see `axum_users::WebhookRoutes`: the deliveries of an audit event are written in the
//! transaction of its audit row).
//!
//! The worker claims due deliveries with a lease, POSTs each signed per Standard Webhooks,
//! deletes it on a 2xx, else schedules the next attempt with exponential back-off and jitter
//! (about a day of attempts by default), then marks it failed (`webhooks retry` queues it
//! again). Redirects are not followed, the answer's body is read only up to a small bound, and
//! neither the secret nor the URL (which may carry credentials) reaches a log line or a stored
//! error: endpoints are named by their name.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum_users::{
    AuditRecord, EventFilter, OutboxMessage, OutboxStore, WebhookRoutes, WebhookSecret,
};
use axum_users_mail::RetryPolicy;
use clap::Args;
use serde::{Deserialize, Deserializer};
use tokio::sync::Notify;

use crate::config::List;

/// The name of the endpoint of the `AXUM_USERS_WEBHOOK_*` form, unless `webhook.name` is set.
const ENV_ENDPOINT: &str = "default";

/// Most bytes of an answer's body read (into the stored error of a failed attempt).
const MAX_ANSWER_BYTES: usize = 512;

/// The `[webhook]` table: one endpoint (the form the environment can give) and the delivery
/// settings of every endpoint.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebhookKeys {
    /// URL one endpoint receives audit events at (POST, JSON, Standard Webhooks signatures); more endpoints: `[[webhooks]]` tables of the file
    #[arg(
        id = "webhook.url",
        long = "webhook-url",
        global = true,
        env = "AXUM_USERS_WEBHOOK_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    url: Option<String>,
    /// The endpoint's signing secret: whsec_ and the base64 of 24 to 64 random bytes
    #[arg(
        id = "webhook.secret",
        long = "webhook-secret",
        global = true,
        env = "AXUM_USERS_WEBHOOK_SECRET",
        value_name = "WHSEC",
        hide_env_values = true
    )]
    secret: Option<SecretKey>,
    /// Comma-separated audit event types the endpoint receives (login.failed, session.revoked, ...), or * for all
    #[arg(
        id = "webhook.events",
        long = "webhook-events",
        global = true,
        env = "AXUM_USERS_WEBHOOK_EVENTS",
        value_name = "TYPES"
    )]
    events: Option<List<String>>,
    /// The endpoint's name in `webhooks list`, logs and metrics [default: default]
    #[arg(
        id = "webhook.name",
        long = "webhook-name",
        global = true,
        env = "AXUM_USERS_WEBHOOK_NAME",
        value_name = "NAME"
    )]
    name: Option<String>,
    /// Longest wait for an endpoint's answer, connecting included [default: 10]
    #[arg(
        id = "webhook.timeout_seconds",
        long = "webhook-timeout-seconds",
        global = true,
        env = "AXUM_USERS_WEBHOOK_TIMEOUT_SECONDS",
        value_name = "S"
    )]
    timeout_seconds: Option<f64>,
    /// Attempts to deliver an event before it is marked failed [default: 24, about a day]
    #[arg(
        id = "webhook.max_attempts",
        long = "webhook-max-attempts",
        global = true,
        env = "AXUM_USERS_WEBHOOK_MAX_ATTEMPTS",
        value_name = "N"
    )]
    max_attempts: Option<u32>,
    /// Wait after a delivery's first failed attempt, doubled after each further one [default: 10]
    #[arg(
        id = "webhook.retry_base_seconds",
        long = "webhook-retry-base-seconds",
        global = true,
        env = "AXUM_USERS_WEBHOOK_RETRY_BASE_SECONDS",
        value_name = "S"
    )]
    retry_base_seconds: Option<f64>,
    /// Longest wait between two attempts of a delivery [default: 7200]
    #[arg(
        id = "webhook.retry_max_seconds",
        long = "webhook-retry-max-seconds",
        global = true,
        env = "AXUM_USERS_WEBHOOK_RETRY_MAX_SECONDS",
        value_name = "S"
    )]
    retry_max_seconds: Option<f64>,
}

/// A `whsec_` secret as a setting (redacted in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretKey(WebhookSecret);

impl std::str::FromStr for SecretKey {
    type Err = axum_users::WebhookConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.trim().parse().map(Self)
    }
}

impl<'de> Deserialize<'de> for SecretKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// One `[[webhooks]]` table of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointTable {
    name: String,
    url: String,
    secret: SecretKey,
    events: List<String>,
}

/// A checked endpoint (`Debug` shows its name and events: the URL may carry credentials).
#[derive(Clone)]
pub(crate) struct Endpoint {
    /// Its name (`a-z0-9-_`).
    pub(crate) name: String,
    /// Where deliveries are POSTed; never logged (it may carry credentials).
    url: url::Url,
    secret: WebhookSecret,
    events: EventFilter,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// The webhook settings, checked.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSettings {
    /// The endpoints; none: no webhook.
    pub(crate) endpoints: Vec<Endpoint>,
    /// Longest wait for an answer.
    pub(crate) timeout: Duration,
    /// Attempts, back-off, lease and polling of the worker.
    pub(crate) retry: RetryPolicy,
}

fn endpoint(name: &str, url: &str, secret: WebhookSecret, events: &[String]) -> Result<Endpoint> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    let Some(parsed) = parsed else {
        bail!("invalid url of the webhook `{name}`: use an absolute http:// or https:// URL");
    };
    if parsed.fragment().is_some() {
        bail!("invalid url of the webhook `{name}`: no #fragment");
    }
    // Deliveries carry client addresses, browsers and user ids: in clear only on this machine.
    let loopback = match parsed.host() {
        Some(url::Host::Domain(host)) => host.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if parsed.scheme() == "http" && !loopback {
        bail!(
            "invalid url of the webhook `{name}`: plain http:// only to a loopback receiver \
             (127.0.0.1, ::1, localhost); use https://"
        );
    }
    let events = EventFilter::parse(events)
        .with_context(|| format!("invalid events of the webhook `{name}`"))?;
    Ok(Endpoint {
        name: name.to_owned(),
        url: parsed,
        secret,
        events,
    })
}

fn positive_seconds(value: Option<f64>, default: f64, id: &str, env: &str) -> Result<Duration> {
    let value = value.unwrap_or(default);
    if !(0.001..=86_400.0).contains(&value) {
        bail!("invalid value for {id} ({env}): `{value}` must be between 0.001 and 86400 seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

impl WebhookSettings {
    /// Checks the `[webhook]` keys and the `[[webhooks]]` tables.
    ///
    /// # Errors
    /// A message naming the key or the endpoint whose value is wrong.
    pub(crate) fn resolve(keys: WebhookKeys, tables: Vec<EndpointTable>) -> Result<Self> {
        let mut endpoints = Vec::new();
        match (keys.url, keys.secret, keys.events) {
            (None, None, None) => {}
            (Some(url), Some(secret), Some(events)) => {
                let name = keys.name.as_deref().unwrap_or(ENV_ENDPOINT);
                endpoints.push(endpoint(name, &url, secret.0, &events.into_inner())?);
            }
            _ => bail!(
                "incomplete webhook: AXUM_USERS_WEBHOOK_URL, AXUM_USERS_WEBHOOK_SECRET and \
                 AXUM_USERS_WEBHOOK_EVENTS (webhook.url, .secret, .events) go together"
            ),
        }
        for table in tables {
            endpoints.push(endpoint(
                &table.name,
                &table.url,
                table.secret.0,
                &table.events.into_inner(),
            )?);
        }
        let timeout = positive_seconds(
            keys.timeout_seconds,
            10.0,
            "webhook.timeout_seconds",
            "AXUM_USERS_WEBHOOK_TIMEOUT_SECONDS",
        )?;
        let mut retry = RetryPolicy::default();
        retry.max_attempts = keys.max_attempts.unwrap_or(24);
        if retry.max_attempts == 0 {
            bail!(
                "invalid value for webhook.max_attempts (AXUM_USERS_WEBHOOK_MAX_ATTEMPTS): at least 1"
            );
        }
        retry.base_delay = positive_seconds(
            keys.retry_base_seconds,
            10.0,
            "webhook.retry_base_seconds",
            "AXUM_USERS_WEBHOOK_RETRY_BASE_SECONDS",
        )?;
        retry.max_delay = positive_seconds(
            keys.retry_max_seconds,
            7200.0,
            "webhook.retry_max_seconds",
            "AXUM_USERS_WEBHOOK_RETRY_MAX_SECONDS",
        )?;
        retry.poll_interval = Duration::from_secs(1);
        // A delivery in flight keeps its lease: a slow endpoint is never sent one event by two
        // workers at once.
        retry.lease = (timeout * 4).max(Duration::from_secs(60));
        let settings = Self {
            endpoints,
            timeout,
            retry,
        };
        settings.routes()?;
        Ok(settings)
    }

    /// Which endpoint receives which events, for the store.
    ///
    /// # Errors
    /// A bad or repeated endpoint name.
    pub(crate) fn routes(&self) -> Result<WebhookRoutes> {
        let mut routes = WebhookRoutes::new();
        for e in &self.endpoints {
            routes = routes
                .with_endpoint(&e.name, e.events.clone())
                .context("invalid webhook")?;
        }
        Ok(routes)
    }
}

/// Wakes this node's worker when an event it delivers was stored (the hooks call [`notify`]).
static WAKE: Notify = Notify::const_new();

/// The routes of this node's worker, once it runs.
static ROUTES: OnceLock<WebhookRoutes> = OnceLock::new();

/// Wakes the worker if `record` has a delivery (called by the hooks after the record was stored).
pub(crate) fn notify(record: &AuditRecord) {
    if ROUTES
        .get()
        .is_some_and(|routes| !routes.deliveries(record).is_empty())
    {
        WAKE.notify_one();
    }
}

/// Why an attempt failed: the text stored and logged (no URL, no secret).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        format!("request failed: {error}")
    }
}

/// Reads at most [`MAX_ANSWER_BYTES`] of an answer's body, as printable text.
async fn answer_start(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ANSWER_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    bytes.truncate(MAX_ANSWER_BYTES);
    String::from_utf8_lossy(&bytes)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

struct Deliverer {
    queue: axum_users_sqlx::WebhookOutbox,
    endpoints: Vec<Endpoint>,
    client: reqwest::Client,
    policy: RetryPolicy,
    id: String,
}

impl Deliverer {
    /// One attempt: `Ok` on a 2xx answer.
    async fn attempt(&self, endpoint: &Endpoint, delivery: &OutboxMessage) -> Result<(), String> {
        let mut request = self
            .client
            .post(endpoint.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(delivery.sealed.clone());
        let now = axum_users::now_unix();
        for (name, value) in axum_users::webhook_headers(&endpoint.secret, delivery, now) {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(describe)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let answer = answer_start(response).await;
        Err(match answer.is_empty() {
            true => format!("HTTP {status}"),
            false => format!("HTTP {status}: {answer}"),
        })
    }

    async fn deliver(&self, delivery: OutboxMessage) -> Result<(), axum_users::StoreError> {
        let Some(endpoint) = self.endpoints.iter().find(|e| e.name == delivery.recipient) else {
            tracing::error!(id = %delivery.id, endpoint = %delivery.recipient, "a webhook delivery names an endpoint no longer configured; marked failed");
            return self
                .queue
                .record_failure(&delivery.id, &self.id, "endpoint not configured", None)
                .await;
        };
        match self.attempt(endpoint, &delivery).await {
            Ok(()) => {
                self.queue.delete_sent(&delivery.id, &self.id).await?;
                tracing::info!(id = %delivery.id, endpoint = %endpoint.name, kind = %delivery.kind, "webhook delivered");
                Ok(())
            }
            Err(error) => {
                metrics::counter!("axum_users_webhook_failures_total", "endpoint" => endpoint.name.clone())
                    .increment(1);
                let failures = delivery.attempts + 1;
                let next = (failures < self.policy.max_attempts).then(|| {
                    let delay = self.policy.delay(failures, jitter());
                    axum_users::now_unix()
                        + i64::try_from(delay.as_secs().max(1)).unwrap_or(i64::MAX)
                });
                match next {
                    Some(at) => {
                        tracing::warn!(id = %delivery.id, endpoint = %endpoint.name, %error, attempt = failures, retry_in_s = at - axum_users::now_unix(), "webhook delivery failed; will retry")
                    }
                    None => {
                        tracing::error!(id = %delivery.id, endpoint = %endpoint.name, %error, attempts = failures, "webhook delivery failed for good; marked failed (`webhooks retry` queues it again)")
                    }
                }
                self.queue
                    .record_failure(&delivery.id, &self.id, &error, next)
                    .await
            }
        }
    }

    /// Claims a batch and delivers it, each delivery at once; returns how many it claimed.
    async fn run_once(self: &Arc<Self>) -> Result<usize, axum_users::StoreError> {
        let lease = i64::try_from(self.policy.lease.as_secs()).unwrap_or(i64::MAX);
        let claimed = self
            .queue
            .claim(axum_users::now_unix(), lease, self.policy.batch, &self.id)
            .await?;
        let count = claimed.len();
        let mut tasks = tokio::task::JoinSet::new();
        for delivery in claimed {
            let me = self.clone();
            tasks.spawn(async move { me.deliver(delivery).await });
        }
        for result in tasks.join_all().await {
            result?;
        }
        Ok(count)
    }
}

/// A random factor in `[0, 1]`.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// The running webhook worker of this node.
pub(crate) struct WebhookWorker {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookWorker {
    /// Stops after the deliveries in flight (a claimed one not attempted is taken again by a
    /// worker once its lease runs out).
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Starts the worker when endpoints are configured.
///
/// # Errors
/// When the HTTP client cannot be built.
pub(crate) fn start_worker(
    settings: &WebhookSettings,
    store: &crate::app::Store,
) -> Result<Option<WebhookWorker>> {
    if settings.endpoints.is_empty() {
        return Ok(None);
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout)
        .user_agent(concat!("axum-users-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the webhook HTTP client")?;
    let _ = ROUTES.set(settings.routes()?);
    let deliverer = Arc::new(Deliverer {
        queue: store.webhook_outbox(),
        endpoints: settings.endpoints.clone(),
        client,
        policy: settings.retry,
        id: format!("wh-{}", axum_users::random_token(9)),
    });
    for e in &settings.endpoints {
        tracing::info!(endpoint = %e.name, events = ?e.events, "webhook endpoint configured");
    }
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        loop {
            let claimed = match deliverer.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "the webhook outbox is unreachable; retrying");
                    0
                }
            };
            if claimed >= deliverer.policy.batch as usize {
                continue;
            }
            tokio::select! {
                _ = &mut stopped => return,
                () = WAKE.notified() => {}
                () = tokio::time::sleep(deliverer.policy.poll_interval) => {}
            }
        }
    });
    Ok(Some(WebhookWorker { stop, task }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str, secret: &str, events: &str) -> WebhookKeys {
        WebhookKeys {
            url: Some(url.into()),
            secret: Some(secret.parse().unwrap()),
            events: Some(events.parse().unwrap()),
            ..WebhookKeys::default()
        }
    }

    #[test]
    fn endpoints_are_checked_at_start_and_redacted() {
        let secret = WebhookSecret::generate().expose();
        let ok = WebhookSettings::resolve(
            keys(
                "https://hooks.example.com/in?k=v",
                &secret,
                "login.failed,logout",
            ),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(ok.endpoints[0].name, "default");
        let shown = format!("{ok:?}");
        assert!(
            !shown.contains(&secret[6..]),
            "the secret is redacted: {shown}"
        );
        assert!(!shown.contains("k=v"), "the URL is not shown: {shown}");
        for (url, events, needle) in [
            ("ftp://x", "logout", "http:// or https://"),
            ("/relative", "logout", "http:// or https://"),
            ("https://x/#frag", "logout", "fragment"),
            ("https://x/", "login.nope", "events of the webhook"),
            ("http://hooks.example.com/", "logout", "use https://"),
            ("http://10.0.0.2:9000/", "logout", "use https://"),
        ] {
            let err = WebhookSettings::resolve(keys(url, &secret, events), Vec::new()).unwrap_err();
            assert!(format!("{err:#}").contains(needle), "{url}: {err:#}");
        }
        let half = WebhookKeys {
            url: Some("https://x/".into()),
            ..WebhookKeys::default()
        };
        let err = WebhookSettings::resolve(half, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("go together"), "{err}");
        let twice = EndpointTable {
            name: "default".into(),
            url: "https://y/".into(),
            secret: secret.parse().unwrap(),
            events: "*".parse().unwrap(),
        };
        let err =
            WebhookSettings::resolve(keys("https://x/", &secret, "*"), vec![twice]).unwrap_err();
        assert!(format!("{err:#}").contains("two webhooks"), "{err:#}");
        assert!("whsec_short".parse::<SecretKey>().is_err());
    }

    #[test]
    fn the_default_schedule_spans_about_a_day() {
        let settings = WebhookSettings::resolve(WebhookKeys::default(), Vec::new()).unwrap();
        let policy = settings.retry;
        let total = |jitter: f64| -> Duration {
            (1..policy.max_attempts)
                .map(|n| policy.delay(n, jitter))
                .sum()
        };
        let (shortest, longest) = (total(0.0), total(1.0));
        assert!(
            shortest > Duration::from_secs(14 * 3600) && longest < Duration::from_secs(30 * 3600),
            "{shortest:?} to {longest:?}"
        );
        assert!(policy.lease > settings.timeout * 2);
    }
}
