//! Abuse defences that count: rate limits per client IP and per account key, the per-account
//! login throttle, and the mail cooldown. Counters live behind [`Limiter`]: in memory by
//! default ([`MemoryLimiter`], GCRA, bounded), or shared by several nodes (the Redis
//! limiter of `axum-users-redis`).
//!
//! Where they run: the login throttle and the login limits at the manager's throttle seam
//! (every way in: password, OAuth, a one-time code, and the refresh route, which calls
//! [`UserManager::rate_limit`] with [`LimitedRoute::Refresh`]); the other routes call
//! [`UserManager::rate_limit`] first thing; the mail cooldown in the manager before the mail
//! hook. Every check runs before any lookup, so a known and an unknown e-mail meet the same
//! counters, answers and timing.

mod builder;
mod memory;
mod records;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::request::Parts;

use crate::client_ip::{ClientIpPolicy, ip_bucket};
use crate::hooks::UserHooks;
use crate::manager::{ManagerError, UserManager};
use crate::password::{BreachedPasswords, PasswordPolicy};
use crate::store::{StoreError, UserStore};

pub use memory::MemoryLimiter;

/// The longest account key a store can hold (the e-mail column): a longer one names no account.
const MAX_ACCOUNT_KEY: usize = 320;

/// The one key every per-account counter uses for what a client typed as its e-mail: NFKC,
/// trimmed (a database that pads or trims, as MySQL's `PAD SPACE` does, finds the same account
/// for `victim@x.org   `), then [`email_key`](crate::email_key). `None` when it is longer than
/// any stored address can be, so no account can be found under it and no counter is spent.
pub fn account_key(typed: &str) -> Option<String> {
    use unicode_normalization::UnicodeNormalization;
    let nfkc: String = typed.nfkc().collect();
    let key = crate::email::email_key(nfkc.trim());
    (key.len() <= MAX_ACCOUNT_KEY).then_some(key)
}

/// The `Retry-After` of a wait: whole seconds, rounded up (a client that obeys is never early),
/// at least 1.
pub(crate) fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// How long limiter calls are skipped after one failed.
const OUTAGE_PAUSE: Duration = Duration::from_secs(1);

/// Milliseconds since the first call, a monotonic clock an atomic can hold.
fn elapsed_millis() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether the missing peer address was warned about (once per process).
static WARNED_WITHOUT_PEER: AtomicBool = AtomicBool::new(false);

/// The per-IP limits need the peer address, which plain `axum::serve(listener, router)` does not
/// give: said once, loudly, rather than limits silently off.
fn warn_once_without_peer() {
    if !WARNED_WITHOUT_PEER.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "no client address (ConnectInfo<SocketAddr>) on requests: the per-IP rate limits are \
             off; serve with into_make_service_with_connect_info::<SocketAddr>()"
        );
    }
}

/// At most `limit` events per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// Events allowed in one window (at least 1).
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

impl Rule {
    /// `limit` events per `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window: window.max(Duration::from_millis(1)),
        }
    }

    /// `limit` events per `seconds` seconds.
    pub fn per_seconds(limit: u32, seconds: u64) -> Self {
        Self::new(limit, Duration::from_secs(seconds))
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.limit, self.window.as_secs_f64())
    }
}

impl std::str::FromStr for Rule {
    type Err = String;

    /// `N/S`: N events per S seconds, e.g. `10/60`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}` is not a rule like 10/60 (10 per 60 seconds)");
        let (limit, seconds) = text.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = limit.trim().parse().map_err(|_| bad())?;
        let seconds: f64 = seconds
            .trim()
            .trim_end_matches('s')
            .parse()
            .map_err(|_| bad())?;
        if limit == 0 || !(0.001..=86_400.0 * 31.0).contains(&seconds) {
            return Err(bad());
        }
        Ok(Self::new(limit, Duration::from_secs_f64(seconds)))
    }
}

/// The routes that are limited, each with its own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LimitedRoute {
    /// Every sign-in (password login of every backend, OAuth and one-time codes).
    Login,
    /// `POST /auth/register`.
    Register,
    /// `POST /auth/forgot-password`.
    ForgotPassword,
    /// `POST /auth/request-verify-token`.
    RequestVerify,
    /// `POST /auth/reset-password`.
    ResetPassword,
    /// `POST /auth/verify`.
    Verify,
    /// A refresh-token exchange (the route the sessions feature mounts).
    Refresh,
    /// OAuth `authorize` and `callback` of every provider (sign-in and associate).
    OAuth,
}

impl LimitedRoute {
    /// The name used in counter keys and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Register => "register",
            Self::ForgotPassword => "forgot_password",
            Self::RequestVerify => "request_verify",
            Self::ResetPassword => "reset_password",
            Self::Verify => "verify",
            Self::Refresh => "refresh",
            Self::OAuth => "oauth",
        }
    }
}

/// The limits of one route: per client IP and per account key; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RouteLimits {
    /// Per client IP (IPv6 per /64).
    pub per_ip: Option<Rule>,
    /// Per account key (the normalised e-mail, known or not).
    pub per_account: Option<Rule>,
}

impl RouteLimits {
    /// Both limits.
    pub fn new(per_ip: Option<Rule>, per_account: Option<Rule>) -> Self {
        Self {
            per_ip,
            per_account,
        }
    }
}

/// Every rate limit. The defaults suit a small site: a person never meets them, a script does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimits {
    /// `false` turns every counting defence off: the rate limits, the login throttle and the
    /// mail cooldown (for load tests and for a deployment that limits at its proxy).
    pub enabled: bool,
    /// Sign-in: 20 per minute per IP, 10 per minute per account.
    pub login: RouteLimits,
    /// Registration: 10 per hour per IP, 3 per hour per address.
    pub register: RouteLimits,
    /// Forgot-password: 10 per 10 minutes per IP (per address: the mail cooldown).
    pub forgot_password: RouteLimits,
    /// Request-verify-token: 10 per 10 minutes per IP (per address: the mail cooldown).
    pub request_verify: RouteLimits,
    /// Reset-password: 10 per 10 minutes per IP.
    pub reset_password: RouteLimits,
    /// Verify: 20 per 10 minutes per IP.
    pub verify: RouteLimits,
    /// Refresh: 60 per minute per IP.
    pub refresh: RouteLimits,
    /// OAuth authorize and callback: 30 per minute per IP.
    pub oauth: RouteLimits,
}

impl Default for RateLimits {
    fn default() -> Self {
        let r = |limit, seconds| Some(Rule::per_seconds(limit, seconds));
        Self {
            enabled: true,
            login: RouteLimits::new(r(20, 60), r(10, 60)),
            register: RouteLimits::new(r(10, 3600), r(3, 3600)),
            forgot_password: RouteLimits::new(r(10, 600), None),
            request_verify: RouteLimits::new(r(10, 600), None),
            reset_password: RouteLimits::new(r(10, 600), None),
            verify: RouteLimits::new(r(20, 600), None),
            refresh: RouteLimits::new(r(60, 60), None),
            oauth: RouteLimits::new(r(30, 60), None),
        }
    }
}

impl RateLimits {
    /// No rate limit at all.
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    /// The limits of `route`.
    pub fn route(&self, route: LimitedRoute) -> RouteLimits {
        match route {
            LimitedRoute::Login => self.login,
            LimitedRoute::Register => self.register,
            LimitedRoute::ForgotPassword => self.forgot_password,
            LimitedRoute::RequestVerify => self.request_verify,
            LimitedRoute::ResetPassword => self.reset_password,
            LimitedRoute::Verify => self.verify,
            LimitedRoute::Refresh => self.refresh,
            LimitedRoute::OAuth => self.oauth,
        }
    }

    /// The limits of `route`, mutably (to change one rule).
    pub fn route_mut(&mut self, route: LimitedRoute) -> &mut RouteLimits {
        match route {
            LimitedRoute::Login => &mut self.login,
            LimitedRoute::Register => &mut self.register,
            LimitedRoute::ForgotPassword => &mut self.forgot_password,
            LimitedRoute::RequestVerify => &mut self.request_verify,
            LimitedRoute::ResetPassword => &mut self.reset_password,
            LimitedRoute::Verify => &mut self.verify,
            LimitedRoute::Refresh => &mut self.refresh,
            LimitedRoute::OAuth => &mut self.oauth,
        }
    }
}

/// The counter backend failed (Redis down...).
#[derive(Debug, thiserror::Error)]
#[error("the rate-limit counters are unavailable: {0}")]
pub struct LimitError(#[source] pub crate::BoxError);

/// A boxed future of a [`Limiter`]: the limiter is chosen at run time and kept as
/// `Arc<dyn Limiter>`, which `impl Future` returns cannot be.
pub type LimitFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LimitError>> + Send + 'a>>;

/// Counters, atomically updated; keys are opaque strings chosen by the caller.
pub trait Limiter: Send + Sync + 'static {
    /// Counts one event of `key` under `rule` (GCRA): `None` when allowed, or how long to wait
    /// when over the limit (a refused event is not counted).
    fn hit<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>>;

    /// The failure log of `key` (a sliding window of `rule.window`), checked and counted in one
    /// atomic step: when `key` has fewer than `rule.limit` failures within the window, counts
    /// one more under `id` (an attempt in flight counts as failed until [`Limiter::forget`]
    /// takes it back) and answers `None`; otherwise how long until the oldest of the last
    /// `rule.limit` leaves the window, counting nothing. Two concurrent attempts at
    /// `limit - 1` failures cannot both pass.
    fn attempt<'a>(
        &'a self,
        key: &'a str,
        rule: Rule,
        id: u64,
    ) -> LimitFuture<'a, Option<Duration>>;

    /// Takes back the attempt `id` of `key` (it did not fail); the other failures stay.
    fn forget<'a>(&'a self, key: &'a str, id: u64) -> LimitFuture<'a, ()>;
}

/// The names counters get in a store other processes can read (Redis): an HMAC-SHA256 of the
/// counter key under a sub-key of the server secret, so that neither an e-mail address nor an
/// unkeyed hash of one (which a dictionary reverses) is ever stored.
#[derive(Clone)]
pub struct CounterKeys {
    keys: crate::keys::KeyRing,
}

impl std::fmt::Debug for CounterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CounterKeys([redacted])")
    }
}

impl CounterKeys {
    /// The names under the server secret (a new secret starts the counters afresh).
    pub fn new(secret: crate::Secret) -> Self {
        Self {
            keys: crate::keys::KeyRing::new(secret, Vec::new()),
        }
    }

    /// The stored name of counter `key`: base64url of its keyed hash, 43 characters.
    pub fn name(&self, key: &str) -> String {
        self.keys
            .mac(crate::keys::Purpose::CounterKeys, &[key.as_bytes()])
    }
}

/// A sign-in attempt's place in its account's failure log, taken before any credential is
/// checked ([`Defences::begin_attempt`]) and kept (a failure) or taken back
/// ([`Defences::end_attempt`]).
#[derive(Debug)]
pub(crate) struct AttemptSlot {
    key: String,
    id: u64,
}

/// The per-account login throttle: after `max_failures` failed sign-ins for one account key
/// within `window`, from any IP, the next attempts are refused until the window has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginThrottle {
    /// Failures allowed within the window (default 10; 0 turns the throttle off).
    pub max_failures: u32,
    /// The sliding window (default 15 minutes).
    pub window: Duration,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::from_secs(900),
        }
    }
}

impl LoginThrottle {
    /// `max_failures` within `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures,
            window,
        }
    }
}

/// Which mail a cooldown is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MailKind {
    Reset,
    Verify,
}

/// Every abuse defence the manager applies; see the module.
#[derive(Clone)]
#[non_exhaustive]
pub struct Defences {
    /// The counters.
    pub limiter: Arc<dyn Limiter>,
    /// Rate limits per route.
    pub rate_limits: RateLimits,
    /// The per-account login throttle.
    pub login_throttle: LoginThrottle,
    /// At most one reset or verify mail per address per this long (default 60 s; zero: off).
    pub mail_cooldown: Duration,
    /// Forgot-password and request-verify-token answer this long after they start, known
    /// address or not, once the mail is written (default 500 ms; see `mail_answer.rs`).
    pub mail_answer_floor: Duration,
    /// The work of those answers: bounded, and able to outlive an answer that overran.
    pub(crate) mail_jobs: crate::background::BackgroundJobs,
    /// Refuse (503) rather than serve when the counters are unavailable (default `false`:
    /// serve, with a warning).
    pub fail_closed: bool,
    /// How the client IP is found.
    pub client_ip: ClientIpPolicy,
    /// The password policy.
    pub password_policy: PasswordPolicy,
    /// The breached-password check, when configured.
    pub breached_passwords: Option<BreachedPasswords>,
    outages: Arc<AtomicU64>,
    /// The throttled sign-ins recorded lately, so a flood of refusals writes a row a minute.
    pub(crate) throttle_records: Arc<records::ThrottleRecords>,
    /// Until when (milliseconds of [`elapsed_millis`]) limiter calls are skipped.
    paused_until: Arc<AtomicU64>,
}

impl std::fmt::Debug for Defences {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defences")
            .field("rate_limits", &self.rate_limits)
            .field("login_throttle", &self.login_throttle)
            .field("mail_cooldown", &self.mail_cooldown)
            .field("mail_answer_floor", &self.mail_answer_floor)
            .field("fail_closed", &self.fail_closed)
            .field("client_ip", &self.client_ip)
            .field("password_policy", &self.password_policy)
            .finish_non_exhaustive()
    }
}

impl Default for Defences {
    fn default() -> Self {
        Self {
            limiter: Arc::new(MemoryLimiter::new()),
            rate_limits: RateLimits::default(),
            login_throttle: LoginThrottle::default(),
            mail_cooldown: Duration::from_secs(60),
            mail_answer_floor: crate::mail_answer::DEFAULT_FLOOR,
            mail_jobs: crate::background::BackgroundJobs::new(crate::route_state::BACKGROUND_JOBS),
            fail_closed: false,
            client_ip: ClientIpPolicy::default(),
            password_policy: PasswordPolicy::default(),
            breached_passwords: None,
            outages: Arc::default(),
            throttle_records: Arc::default(),
            paused_until: Arc::default(),
        }
    }
}

impl Defences {
    /// How many times the counters were unavailable (and the request served or refused as
    /// `fail_closed` says): a metric.
    pub fn limiter_outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// One limiter call, skipped (an outage at once) for [`OUTAGE_PAUSE`] after a failed one: a
    /// black-holed Redis costs one time-out per pause, not one per call of every request.
    async fn call<T>(&self, call: LimitFuture<'_, T>) -> Result<T, LimitError> {
        let now = elapsed_millis();
        if now < self.paused_until.load(Ordering::Relaxed) {
            return Err(LimitError(
                "skipped: the counters failed less than a second ago".into(),
            ));
        }
        let result = call.await;
        if result.is_err() {
            let pause = u64::try_from(OUTAGE_PAUSE.as_millis()).unwrap_or(u64::MAX);
            self.paused_until
                .store(elapsed_millis().saturating_add(pause), Ordering::Relaxed);
        }
        result
    }

    /// A counter answer, with an outage turned into "allowed" (fail open) or 503.
    fn settle<T: Default>(
        &self,
        what: &str,
        result: Result<T, LimitError>,
    ) -> Result<T, ManagerError> {
        match result {
            Ok(value) => Ok(value),
            Err(e) => {
                self.outages.fetch_add(1, Ordering::Relaxed);
                if self.fail_closed {
                    tracing::error!(error = %e, what, "rate-limit counters unavailable; refusing (fail closed)");
                    Err(StoreError::Unavailable(e.into()).into())
                } else {
                    tracing::warn!(error = %e, what, "rate-limit counters unavailable; serving (fail open)");
                    Ok(T::default())
                }
            }
        }
    }

    async fn hit(&self, key: &str, rule: Rule) -> Result<(), ManagerError> {
        let wait = self.settle(key, self.call(self.limiter.hit(key, rule)).await)?;
        match wait {
            Some(wait) => Err(ManagerError::LoginRefused(wait)),
            None => Ok(()),
        }
    }

    /// The rate limits of `route` for this request and account key.
    async fn rate_limit(
        &self,
        route: LimitedRoute,
        request: Option<&Parts>,
        account: Option<&str>,
    ) -> Result<(), ManagerError> {
        if !self.rate_limits.enabled {
            return Ok(());
        }
        let limits = self.rate_limits.route(route);
        let name = route.name();
        let ip = request.and_then(|p| self.client_ip.client_ip(p));
        if limits.per_ip.is_some() && request.is_some() && ip.is_none() {
            warn_once_without_peer();
        }
        if let (Some(rule), Some(ip)) = (limits.per_ip, ip) {
            self.hit(&format!("{name}:ip:{}", ip_bucket(ip)), rule)
                .await
                .inspect_err(|e| count_rejection(e, name, "ip"))?;
        }
        if let (Some(rule), Some(account)) = (limits.per_account, account.and_then(account_key)) {
            self.hit(&format!("{name}:account:{account}"), rule)
                .await
                .inspect_err(|e| count_rejection(e, name, "account"))?;
        }
        Ok(())
    }

    fn throttle_rule(&self) -> Option<Rule> {
        (self.rate_limits.enabled && self.login_throttle.max_failures > 0)
            .then(|| Rule::new(self.login_throttle.max_failures, self.login_throttle.window))
    }

    /// Refuses a sign-in for an account with too many recent failures, or counts it as one
    /// failure more in the same atomic step (see [`Limiter::attempt`]); the slot is ended by
    /// [`Defences::end_attempt`]. `None`: nothing was counted (throttle off, or an outage).
    pub(crate) async fn begin_attempt(
        &self,
        account: &str,
    ) -> Result<Option<AttemptSlot>, ManagerError> {
        let (Some(rule), Some(account)) = (self.throttle_rule(), account_key(account)) else {
            return Ok(None);
        };
        let key = format!("login_failures:{account}");
        let id = attempt_id();
        let result = self.call(self.limiter.attempt(&key, rule, id)).await;
        let counted = result.is_ok();
        match self.settle(&key, result)? {
            Some(wait) => Err(ManagerError::LoginRefused(wait)),
            None => Ok(counted.then_some(AttemptSlot { key, id })),
        }
    }

    /// Ends an attempt [`Defences::begin_attempt`] counted: a failure stays counted, anything
    /// else is taken back (a success never erases the other failures).
    pub(crate) async fn end_attempt(&self, slot: Option<AttemptSlot>, failed: bool) {
        let Some(slot) = slot.filter(|_| !failed) else {
            return;
        };
        let result = self.call(self.limiter.forget(&slot.key, slot.id)).await;
        // Not taken back: the attempt counts as a failure until it leaves the window.
        let _ = self.settle::<()>(&slot.key, result);
    }

    /// Whether a mail of `kind` may go to `email` now (at most one per cooldown).
    pub(crate) async fn mail_allowed(
        &self,
        kind: MailKind,
        email: &str,
    ) -> Result<bool, ManagerError> {
        let counted = self.rate_limits.enabled && !self.mail_cooldown.is_zero();
        let Some(email) = account_key(email).filter(|_| counted) else {
            return Ok(true);
        };
        let kind = match kind {
            MailKind::Reset => "reset",
            MailKind::Verify => "verify",
        };
        let key = format!("mail_cooldown:{kind}:{email}");
        let rule = Rule::new(1, self.mail_cooldown);
        let wait = self.settle(&key, self.call(self.limiter.hit(&key, rule)).await)?;
        Ok(wait.is_none())
    }
}

/// Counts a refusal of a rate limit (`axum_users_rate_limit_rejections_total`), not an outage of
/// the counters.
fn count_rejection(error: &ManagerError, route: &'static str, by: &'static str) {
    if matches!(error, ManagerError::LoginRefused(_)) {
        metrics::counter!(
            "axum_users_rate_limit_rejections_total",
            "route" => route,
            "by" => by
        )
        .increment(1);
    }
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Applies the rate limits of `route` to a request and, when given, an account key (the
    /// normalised e-mail): `Err(ManagerError::LoginRefused(wait))` when over a limit, which
    /// routes answer 429 `TOO_MANY_REQUESTS` with `Retry-After`. A route outside this crate (the
    /// refresh route) calls it first thing with its [`LimitedRoute`].
    ///
    /// # Errors
    /// [`ManagerError::LoginRefused`], or a store error when the counters are down and
    /// `fail_closed` is set.
    pub async fn rate_limit(
        &self,
        route: LimitedRoute,
        request: Option<&Parts>,
        account: Option<&str>,
    ) -> Result<(), ManagerError> {
        self.defences().rate_limit(route, request, account).await
    }

    /// The defences' part of the throttle seam: the login limits, then the failure count,
    /// checked and spent in one atomic step (the slot is ended by
    /// [`Defences::end_attempt`]).
    pub(crate) async fn defend_login(
        &self,
        account: &str,
        request: Option<&Parts>,
    ) -> Result<Option<AttemptSlot>, ManagerError> {
        let defences = self.defences();
        defences
            .rate_limit(LimitedRoute::Login, request, Some(account))
            .await?;
        defences.begin_attempt(account).await
    }
}

/// A fresh attempt id: random, never 0 (the id of failures recorded without an attempt).
fn attempt_id() -> u64 {
    let mut bytes = [0u8; 8];
    crate::secret::fill_random(&mut bytes);
    u64::from_le_bytes(bytes) | 1
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// The current password of a self-service change, behind the login defences of the user's
    /// account: a stolen session must not make it an unthrottled password oracle. A wrong one
    /// counts as a failed sign-in.
    pub(crate) async fn throttled_current_password(
        &self,
        user: &crate::manager::UserOf<S>,
        current: Option<&crate::Secret>,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if current.is_none() {
            return self.check_current_password(user, current).await;
        }
        let check = self.check_current_password(user, current);
        self.behind_account_throttle(user, request, ManagerError::BadCurrentPassword, check)
            .await
    }

    /// Runs a proof a signed-in user gives (a current password, a TOTP code) behind the login
    /// defences of their account, so that every such proof and every sign-in share one budget:
    /// the failure count is checked and spent before `check`, and kept when it ends in
    /// `wrong` (compared by variant).
    pub(crate) async fn behind_account_throttle<T>(
        &self,
        user: &crate::manager::UserOf<S>,
        request: Option<&Parts>,
        wrong: ManagerError,
        check: impl std::future::Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let slot = self.defend_login(&user.email, request).await?;
        let checked = check.await;
        let failed = matches!(&checked, Err(e) if std::mem::discriminant(e) == std::mem::discriminant(&wrong));
        self.defences().end_attempt(slot, failed).await;
        checked
    }
}

impl<S, H> crate::route_state::RouteState<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// A route's rate limits, answered as the route answers: 429 with `Retry-After`.
    pub(crate) async fn limit(
        &self,
        route: LimitedRoute,
        parts: &Parts,
        account: Option<&str>,
    ) -> Result<(), crate::error::ApiError> {
        self.manager
            .rate_limit(route, Some(parts), account)
            .await
            .map_err(crate::routes::server_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthBackend, JwtStrategy, Transport};
    use crate::hooks::NoHooks;
    use crate::manager::{Privilege, TokenSettings, UserCreate};
    use crate::memory::MemoryStore;
    use crate::password::{Argon2Params, PasswordHasher};
    use crate::secret::Secret;

    fn manager(defences: Defences) -> UserManager<MemoryStore, NoHooks> {
        let hasher = PasswordHasher::new(Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        UserManager::new(
            MemoryStore::new(),
            NoHooks,
            hasher,
            Secret::new("k".repeat(32)),
            TokenSettings::default(),
        )
        .unwrap()
        .with_defences(defences)
    }

    fn jwt_backend(m: &UserManager<MemoryStore, NoHooks>) -> AuthBackend<uuid::Uuid> {
        let codec = m.key_ring().auth_codec().unwrap();
        AuthBackend::new(
            "jwt",
            Transport::Bearer {
                token_url: "auth/jwt/login".into(),
            },
            JwtStrategy::new(codec, Duration::from_secs(60)),
        )
    }

    /// A manager whose throttle allows `max_failures`, its JWT backend, and the account
    /// `t@example.com` with the password `a long right passphrase`.
    async fn signed_up(
        max_failures: u32,
    ) -> (UserManager<MemoryStore, NoHooks>, AuthBackend<uuid::Uuid>) {
        let m = manager(Defences {
            login_throttle: LoginThrottle::new(max_failures, Duration::from_secs(60)),
            ..Defences::default()
        });
        let backend = jwt_backend(&m);
        m.create(
            UserCreate::new("t@example.com", "a long right passphrase"),
            Privilege::SelfService,
            None,
        )
        .await
        .unwrap();
        (m, backend)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_wrong_passwords_at_the_last_allowed_failure_spend_one_hash() {
        let (m, backend) = signed_up(5).await;
        let m = Arc::new(m);
        let backend = Arc::new(backend);
        for _ in 0..4 {
            let wrong = m
                .login_with_password("t@example.com", "wrong", &backend, None)
                .await;
            assert!(matches!(wrong, Err(ManagerError::BadCredentials)));
        }
        let before = m.passwords().verifications();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let (m, backend) = (m.clone(), backend.clone());
                tokio::spawn(async move {
                    m.login_with_password("t@example.com", "wrong", &backend, None)
                        .await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        let wrong = outcomes
            .iter()
            .filter(|o| matches!(o, Err(ManagerError::BadCredentials)))
            .count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(ManagerError::LoginRefused(_))))
            .count();
        assert_eq!((wrong, refused), (1, 11), "one passed the throttle");
        assert_eq!(
            m.passwords().verifications() - before,
            1,
            "exactly one of the concurrent attempts spent a hash"
        );
    }

    #[tokio::test]
    async fn a_right_password_takes_its_attempt_back() {
        let (m, backend) = signed_up(2).await;
        for _ in 0..5 {
            let signed_in = m
                .login_with_password("t@example.com", "a long right passphrase", &backend, None)
                .await;
            assert!(signed_in.is_ok(), "successes are not failures");
        }
        let wrong = m
            .login_with_password("t@example.com", "wrong", &backend, None)
            .await;
        assert!(matches!(wrong, Err(ManagerError::BadCredentials)));
    }

    #[tokio::test]
    async fn a_throttled_sign_in_spends_no_hash_and_a_success_erases_nothing() {
        let (m, backend) = signed_up(3).await;
        let attempt = |password: &'static str| {
            let (m, backend) = (&m, &backend);
            async move {
                m.login_with_password("t@example.com", password, backend, None)
                    .await
            }
        };
        for _ in 0..2 {
            assert!(matches!(
                attempt("wrong").await,
                Err(ManagerError::BadCredentials)
            ));
        }
        assert!(attempt("a long right passphrase").await.is_ok());
        assert!(matches!(
            attempt("wrong").await,
            Err(ManagerError::BadCredentials)
        ));
        let before = m.passwords().verifications();
        let refused = attempt("a long right passphrase").await;
        assert!(
            matches!(refused, Err(ManagerError::LoginRefused(wait)) if wait > Duration::from_secs(50)),
            "three failures within the window, the success between them did not erase them"
        );
        assert_eq!(m.passwords().verifications(), before, "no hash was spent");
    }

    #[tokio::test]
    async fn padded_or_case_folded_spellings_of_an_address_share_its_failures() {
        let (m, backend) = signed_up(3).await;
        // MySQL's PAD SPACE collation finds `t@example.com` for each of these.
        for typed in [
            "t@example.com   ",
            " T@Example.com\t",
            "t@example.com\u{a0}",
        ] {
            let _ = m.login_with_password(typed, "wrong", &backend, None).await;
        }
        let refused = m
            .login_with_password("t@example.com", "a long right passphrase", &backend, None)
            .await;
        assert!(
            matches!(refused, Err(ManagerError::LoginRefused(_))),
            "three failures under spellings of one address throttle it"
        );
    }

    /// Review R1: a flood of refused sign-ins writes one audit row a minute, not one each
    /// (each row may also be a webhook delivery); the refusals themselves stay 429s.
    #[tokio::test]
    async fn a_flood_of_throttled_sign_ins_is_recorded_once_per_window() {
        let m = manager(Defences {
            rate_limits: RateLimits {
                login: RouteLimits::new(None, Some(Rule::per_seconds(1, 60))),
                ..RateLimits::default()
            },
            ..Defences::default()
        });
        let backend = jwt_backend(&m);
        let mut refused = 0;
        for _ in 0..30 {
            let answer = m
                .login_with_password("victim@example.com", "guess", &backend, None)
                .await;
            if matches!(answer, Err(ManagerError::LoginRefused(_))) {
                refused += 1;
            }
        }
        assert_eq!(refused, 29, "the limit still refuses every extra attempt");
        let page = m
            .audit_events(&crate::AuditQuery {
                kind: Some("login.failed".into()),
                limit: 100,
                ..crate::AuditQuery::default()
            })
            .await
            .unwrap();
        let throttled = page
            .items
            .iter()
            .filter(|r| r.to_json()["reason"] == "throttled")
            .count();
        assert_eq!(throttled, 1, "one row for the flood: {:?}", page.items);
        assert_eq!(page.items.len(), 2, "and the one bad password before it");
    }

    #[tokio::test]
    async fn the_mail_cooldown_and_register_limit_key_on_the_case_folded_address() {
        let defences = Defences {
            rate_limits: RateLimits {
                register: RouteLimits::new(None, Some(Rule::per_seconds(2, 3600))),
                ..RateLimits::default()
            },
            ..Defences::default()
        };
        assert!(
            defences
                .mail_allowed(MailKind::Reset, "Victim@x.org")
                .await
                .unwrap()
        );
        for variant in ["vIctim@x.org", "VICTIM@X.ORG ", "victim@x.org"] {
            assert!(
                !defences
                    .mail_allowed(MailKind::Reset, variant)
                    .await
                    .unwrap(),
                "{variant}: one mail per address per cooldown, whatever its case"
            );
        }
        assert!(
            defences
                .mail_allowed(MailKind::Verify, "victim@x.org")
                .await
                .unwrap(),
            "the verify mail has its own cooldown"
        );
        assert!(
            !defences
                .mail_allowed(MailKind::Verify, "VICTIM@x.org")
                .await
                .unwrap()
        );
        for variant in ["Victim@x.org", "vIctim@x.org"] {
            assert!(
                defences
                    .rate_limit(LimitedRoute::Register, None, Some(variant))
                    .await
                    .is_ok()
            );
        }
        assert!(matches!(
            defences
                .rate_limit(LimitedRoute::Register, None, Some("VICTIM@x.org"))
                .await,
            Err(ManagerError::LoginRefused(_))
        ));
    }

    #[tokio::test]
    async fn wrong_current_passwords_count_as_failed_sign_ins() {
        let m = manager(Defences {
            login_throttle: LoginThrottle::new(3, Duration::from_secs(60)),
            ..Defences::default()
        });
        let user = m
            .create(
                UserCreate::new("c@example.com", "a long right passphrase"),
                Privilege::SelfService,
                None,
            )
            .await
            .unwrap();
        let patch = |current: &str| crate::manager::UserUpdate {
            password: Some(Secret::new("another long passphrase")),
            current_password: Some(Secret::new(current.to_owned())),
            ..Default::default()
        };
        for _ in 0..3 {
            let wrong = m
                .update(user.clone(), patch("guess"), Privilege::SelfService, None)
                .await;
            assert!(matches!(wrong, Err(ManagerError::BadCurrentPassword)));
        }
        let before = m.passwords().verifications();
        let refused = m
            .update(
                user.clone(),
                patch("a long right passphrase"),
                Privilege::SelfService,
                None,
            )
            .await;
        assert!(
            matches!(refused, Err(ManagerError::LoginRefused(_))),
            "the account's throttle covers the current password"
        );
        assert_eq!(m.passwords().verifications(), before, "no hash was spent");
    }

    #[tokio::test]
    async fn rate_limits_off_turns_the_throttle_and_the_cooldown_off_too() {
        let defences = Defences {
            rate_limits: RateLimits::off(),
            login_throttle: LoginThrottle::new(1, Duration::from_secs(60)),
            ..Defences::default()
        };
        for _ in 0..3 {
            let slot = defences.begin_attempt("o@example.com").await.unwrap();
            assert!(slot.is_none(), "nothing counted");
            defences.end_attempt(slot, true).await;
            assert!(
                defences
                    .mail_allowed(MailKind::Verify, "o@example.com")
                    .await
                    .unwrap()
            );
        }
    }

    #[tokio::test]
    async fn a_patch_of_email_and_password_checks_the_password_against_the_new_address() {
        let m = manager(Defences::default());
        let user = m
            .create(
                UserCreate::new("old.one@example.com", "a long right passphrase"),
                Privilege::SelfService,
                None,
            )
            .await
            .unwrap();
        let update = crate::manager::UserUpdate {
            email: Some("zebedee@example.org".into()),
            password: Some(Secret::new("zebedee-horse-battery")),
            current_password: Some(Secret::new("a long right passphrase")),
            ..Default::default()
        };
        let refused = m.update(user, update, Privilege::SelfService, None).await;
        assert!(
            matches!(refused, Err(ManagerError::InvalidPassword(_))),
            "{refused:?}"
        );
    }

    #[tokio::test]
    async fn per_ip_limits_without_a_peer_address_are_warned_about() {
        let (parts, ()) = http::Request::new(()).into_parts();
        Defences::default()
            .rate_limit(LimitedRoute::Verify, Some(&parts), None)
            .await
            .unwrap();
        assert!(WARNED_WITHOUT_PEER.load(Ordering::Relaxed));
    }

    /// Counters that fail every call after a delay, counting the calls.
    struct BlackHole(std::sync::atomic::AtomicUsize);

    impl Limiter for BlackHole {
        fn hit<'a>(&'a self, _: &'a str, _: Rule) -> LimitFuture<'a, Option<Duration>> {
            Box::pin(async move {
                self.0.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(LimitError("black hole".into()))
            })
        }
        fn attempt<'a>(
            &'a self,
            key: &'a str,
            rule: Rule,
            _: u64,
        ) -> LimitFuture<'a, Option<Duration>> {
            self.hit(key, rule)
        }
        fn forget<'a>(&'a self, key: &'a str, _: u64) -> LimitFuture<'a, ()> {
            Box::pin(async move { self.hit(key, Rule::per_seconds(1, 1)).await.map(|_| ()) })
        }
    }

    #[tokio::test]
    async fn black_holed_counters_cost_one_time_out_per_pause_not_one_per_call() {
        let hole = Arc::new(BlackHole(Default::default()));
        let defences = Defences {
            limiter: hole.clone(),
            ..Defences::default()
        };
        let started = std::time::Instant::now();
        for _ in 0..5 {
            defences
                .rate_limit(LimitedRoute::Login, None, Some("h@example.com"))
                .await
                .unwrap();
            let slot = defences.begin_attempt("h@example.com").await.unwrap();
            assert!(slot.is_none(), "an outage counts nothing");
        }
        assert_eq!(
            hole.0.load(Ordering::SeqCst),
            1,
            "one call reached the counters"
        );
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(
            defences.limiter_outages(),
            10,
            "every skipped call is counted"
        );
    }

    #[test]
    fn an_account_key_longer_than_any_address_is_no_key() {
        assert_eq!(account_key(" A@B.org\t").as_deref(), Some("a@b.org"));
        assert_eq!(account_key(&"a".repeat(321)), None);
    }

    #[test]
    fn rules_parse() {
        assert_eq!("10/60".parse::<Rule>().unwrap(), Rule::per_seconds(10, 60));
        assert_eq!(
            " 3 / 0.5s ".parse::<Rule>().unwrap(),
            Rule::new(3, Duration::from_millis(500))
        );
        for bad in ["10", "0/60", "x/60", "10/0", "10/-1", "10/"] {
            assert!(bad.parse::<Rule>().is_err(), "{bad}");
        }
    }
}
