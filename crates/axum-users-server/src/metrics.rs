//! Prometheus metrics at `GET /metrics`, off by default: on a listener of its own
//! (`AXUM_USERS_METRICS_BIND`) or on the main address behind a bearer token
//! (`AXUM_USERS_METRICS_TOKEN`).
//!
//! The library counts what happens inside it (sign-ins by method and outcome, rate-limit
//! refusals, the hashing threads' wait, mail delivery failures) through the `metrics` facade;
//! this module installs the recorder, times every request by route template and status, and
//! reads the gauges (hashing queue, database pool, outbox) when scraped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_users::Secret;
use http::{StatusCode, header};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use crate::app::{Store, Users};

/// The latency histogram of every request.
pub(crate) const REQUEST_SECONDS: &str = "axum_users_http_request_duration_seconds";

/// Upper bounds of the latency buckets, in seconds: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often the recorded latencies are folded into the histograms' buckets. Until then (or
/// until a scrape) the recorder keeps every sample, so a server nobody scraped would grow by
/// some 24 bytes per request.
const UPKEEP: Duration = Duration::from_secs(5);

/// What `/metrics` reads when scraped.
#[derive(Clone)]
pub(crate) struct Metrics {
    handle: PrometheusHandle,
    token: Option<Arc<Secret>>,
    store: Store,
    users: Users,
}

impl Metrics {
    /// Installs the process-wide recorder (once: a second call fails) and starts its upkeep
    /// (within the server's runtime).
    ///
    /// # Errors
    /// When a recorder is already installed.
    pub(crate) fn install(
        token: Option<Secret>,
        store: Store,
        users: Users,
    ) -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), BUCKETS)?
            .set_buckets_for_metric(
                Matcher::Full("axum_users_hash_wait_seconds".into()),
                BUCKETS,
            )?
            .install_recorder()?;
        describe();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP);
            loop {
                every.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Self {
            handle,
            token: token.map(Arc::new),
            store,
            users,
        })
    }

    /// `GET /metrics` on the main address, behind the bearer token.
    pub(crate) fn guarded_route(&self) -> Router {
        Router::new().route("/metrics", get(guarded).with_state(self.clone()))
    }

    /// The listener of its own: `GET /metrics` without a token, 404 for everything else.
    pub(crate) fn own_router(&self) -> Router {
        Router::new()
            .route("/metrics", get(open).with_state(self.clone()))
            .fallback(|| async { (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))) })
    }

    /// The text exposition, gauges read now.
    async fn render(&self) -> String {
        let hashing = self.users.manager().passwords().stats();
        metrics::gauge!("axum_users_hash_queue_length").set(hashing.queued as f64);
        metrics::gauge!("axum_users_hash_running").set(hashing.running as f64);
        metrics::counter!("axum_users_hash_refused_total").absolute(hashing.refused);
        let (open, idle) = self.store.pool().connections();
        metrics::gauge!("axum_users_db_connections", "state" => "in_use")
            .set(f64::from(open.saturating_sub(idle)));
        metrics::gauge!("axum_users_db_connections", "state" => "idle").set(f64::from(idle));
        match self.store.outbox_depth().await {
            Ok((pending, failed)) => {
                metrics::gauge!("axum_users_outbox_depth", "status" => "pending")
                    .set(pending as f64);
                metrics::gauge!("axum_users_outbox_depth", "status" => "failed").set(failed as f64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count the outbox"),
        }
        match self.store.webhook_outbox().depth().await {
            Ok((pending, failed)) => {
                metrics::gauge!("axum_users_webhook_outbox_depth", "status" => "pending")
                    .set(pending as f64);
                metrics::gauge!("axum_users_webhook_outbox_depth", "status" => "failed")
                    .set(failed as f64);
            }
            Err(e) => tracing::warn!(error = %e, "metrics: cannot count the webhook outbox"),
        }
        self.handle.render()
    }
}

/// Help texts of the series.
fn describe() {
    metrics::describe_histogram!(
        REQUEST_SECONDS,
        metrics::Unit::Seconds,
        "Requests by route template, method and status (_count is the request count)"
    );
    metrics::describe_counter!(
        "axum_users_sign_ins_total",
        "Sign-in attempts by method and outcome (ok or an error code)"
    );
    metrics::describe_counter!(
        "axum_users_rate_limit_rejections_total",
        "Requests refused by a rate limit, by route and key (ip or account)"
    );
    metrics::describe_histogram!(
        "axum_users_hash_wait_seconds",
        metrics::Unit::Seconds,
        "Time a password hash waited for a hashing thread"
    );
    metrics::describe_gauge!(
        "axum_users_hash_queue_length",
        "Password hashes waiting for a hashing thread"
    );
    metrics::describe_gauge!("axum_users_hash_running", "Password hashes running");
    metrics::describe_counter!(
        "axum_users_hash_refused_total",
        "Password hashes refused because the queue was full (503)"
    );
    metrics::describe_gauge!(
        "axum_users_db_connections",
        "Database pool connections by state (in_use, idle)"
    );
    metrics::describe_gauge!(
        "axum_users_outbox_depth",
        "Mail outbox messages by status (pending, failed)"
    );
    metrics::describe_gauge!(
        "axum_users_webhook_outbox_depth",
        "Webhook deliveries by status (pending, failed)"
    );
    metrics::describe_counter!(
        "axum_users_webhook_failures_total",
        "Failed webhook delivery attempts by endpoint"
    );
    metrics::describe_counter!(
        "axum_users_outbox_failures_total",
        "Failed mail delivery attempts by kind"
    );
}

async fn open(State(metrics): State<Metrics>) -> Response {
    exposition(metrics.render().await)
}

async fn guarded(State(metrics): State<Metrics>, request: Request) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let allowed = match (presented, &metrics.token) {
        (Some(presented), Some(token)) => {
            bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes()))
        }
        _ => false,
    };
    if !allowed {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"detail": "Unauthorized"})),
        )
            .into_response();
    }
    exposition(metrics.render().await)
}

fn exposition(text: String) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}

/// The route layer that times every request into [`REQUEST_SECONDS`] by its route template
/// (never the raw path, whose ids would make a series per user), method and status. A route
/// layer sees only matched routes.
///
/// Each layered route keeps the histograms it has recorded into, one per method and status,
/// registered with the recorder at their first request: a request then costs a read lock, a
/// short scan and the recording, instead of building the labels (the template as a `String`)
/// and hashing the key into the recorder's registry every time.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TrackLayer;

impl<S> Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(&self, inner: S) -> Track<S> {
        Track {
            inner,
            histograms: Arc::default(),
        }
    }
}

/// A route timed by [`TrackLayer`].
#[derive(Clone)]
pub(crate) struct Track<S> {
    inner: S,
    histograms: Arc<Histograms>,
}

impl<S> Service<Request> for Track<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Tracked<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = method_label(request.method());
        Tracked {
            inner: self.inner.call(request),
            started,
            route,
            method,
            histograms: Arc::clone(&self.histograms),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Track`]ed route, recorded when it is ready.
    pub(crate) struct Tracked<F> {
        #[pin]
        inner: F,
        started: Instant,
        route: Option<MatchedPath>,
        method: &'static str,
        histograms: Arc<Histograms>,
    }
}

impl<F, E> Future for Tracked<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result {
            let route = this.route.as_ref().map_or("", MatchedPath::as_str);
            this.histograms.record(
                route,
                this.method,
                response.status(),
                this.started.elapsed().as_secs_f64(),
            );
        }
        Poll::Ready(result)
    }
}

/// The request histograms one layered route has recorded into.
#[derive(Default)]
struct Histograms(RwLock<Vec<Series>>);

/// One series of [`REQUEST_SECONDS`] and its handle in the recorder.
struct Series {
    route: Box<str>,
    method: &'static str,
    status: StatusCode,
    histogram: metrics::Histogram,
}

impl Histograms {
    /// Records `seconds` into the series of `route`, `method` and `status`, registering it with
    /// the recorder first if this is its first request.
    fn record(&self, route: &str, method: &'static str, status: StatusCode, seconds: f64) {
        let same = |s: &Series| s.status == status && s.method == method && &*s.route == route;
        {
            let known = self.0.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(series) = known.iter().find(|s| same(s)) {
                series.histogram.record(seconds);
                return;
            }
        }
        let histogram = metrics::histogram!(
            REQUEST_SECONDS,
            "route" => route.to_owned(),
            "method" => method,
            "status" => status_label(status)
        );
        histogram.record(seconds);
        let mut known = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if !known.iter().any(same) {
            known.push(Series {
                route: route.into(),
                method,
                status,
                histogram,
            });
        }
    }
}

fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PATCH => "PATCH",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status as a label without an allocation for the common ones.
fn status_label(status: StatusCode) -> metrics::SharedString {
    match status.as_u16() {
        200 => "200".into(),
        201 => "201".into(),
        202 => "202".into(),
        204 => "204".into(),
        302 => "302".into(),
        307 => "307".into(),
        400 => "400".into(),
        401 => "401".into(),
        403 => "403".into(),
        404 => "404".into(),
        409 => "409".into(),
        422 => "422".into(),
        429 => "429".into(),
        500 => "500".into(),
        503 => "503".into(),
        other => other.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_series_is_registered_once() {
        let histograms = Histograms::default();
        let count = || histograms.0.read().unwrap().len();
        histograms.record("/users/me", "GET", StatusCode::OK, 0.001);
        histograms.record("/users/me", "GET", StatusCode::OK, 0.002);
        assert_eq!(count(), 1, "the second request reuses the handle");
        histograms.record("/users/me", "GET", StatusCode::UNAUTHORIZED, 0.001);
        histograms.record("/users/me", "PATCH", StatusCode::OK, 0.001);
        histograms.record("/users/{id}", "GET", StatusCode::OK, 0.001);
        assert_eq!(count(), 4, "a series per route, method and status");
        histograms.record("/users/{id}", "GET", StatusCode::OK, 0.001);
        assert_eq!(count(), 4);
    }

    #[test]
    fn labels_are_the_status_and_a_known_method() {
        assert_eq!(&*status_label(StatusCode::OK), "200");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&http::Method::from_bytes(b"BREW").unwrap()),
            "other"
        );
    }
}
