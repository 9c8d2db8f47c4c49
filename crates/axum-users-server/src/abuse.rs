//! The settings of the abuse defences (rate limits, login throttle, mail cooldown, password
//! policy, breached passwords) and their translation into the library's [`Defences`].

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};
use axum_users::{
    BreachedPasswords, Defences, IpNet, LimitedRoute, LoginThrottle, PasswordPolicy, RateLimits,
    Rule,
};
use clap::Args;
use serde::{Deserialize, Deserializer};

use crate::config::{Settings, key};

/// A rate rule: `N/S` (N per S seconds) or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleValue(Option<Rule>);

impl FromStr for RuleValue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().eq_ignore_ascii_case("off") {
            return Ok(Self(None));
        }
        text.parse().map(|rule| Self(Some(rule)))
    }
}

impl<'de> Deserialize<'de> for RuleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A CIDR setting (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetValue(pub(crate) IpNet);

impl FromStr for NetValue {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse()
            .map(Self)
            .map_err(|e: axum_users::InvalidIpNet| e.to_string())
    }
}

/// Declares the `[rate_limits]` table: one `N/S` rule per route and kind of key.
macro_rules! rate_limit_settings {
    ($($field:ident, $id:literal, $long:literal, $env:literal, $route:ident, $kind:ident, $doc:literal;)*) => {
        /// The `[rate_limits]` table.
        #[derive(Debug, Clone, Default, Args, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub(crate) struct RateLimitSettings {
            /// false: no rate limit, login throttle or mail cooldown at all [default: true]
            #[arg(id = "rate_limits.enabled", long = "rate-limits", global = true, env = "AXUM_USERS_RATE_LIMITS", value_name = "BOOL")]
            pub(crate) enabled: Option<bool>,
            /// true: answer 503 when the shared counters (Redis) are down, instead of serving [default: false]
            #[arg(id = "rate_limits.fail_closed", long = "rate-limits-fail-closed", global = true, env = "AXUM_USERS_RATE_LIMITS_FAIL_CLOSED", value_name = "BOOL")]
            pub(crate) fail_closed: Option<bool>,
            $(
                #[doc = $doc]
                #[arg(id = $id, long = $long, global = true, env = $env, value_name = "N/S")]
                pub(crate) $field: Option<RuleValue>,
            )*
        }

        impl RateLimitSettings {
            fn apply(&self, limits: &mut RateLimits) {
                $(
                    if let Some(RuleValue(rule)) = self.$field {
                        limits.route_mut(LimitedRoute::$route).$kind = rule;
                    }
                )*
            }
        }
    };
}

rate_limit_settings! {
    login_per_ip, "rate_limits.login_per_ip", "rate-limits-login-per-ip", "AXUM_USERS_RATE_LIMITS_LOGIN_PER_IP", Login, per_ip,
        "Sign-ins per client IP, N per S seconds, or off [default: 20/60]";
    login_per_account, "rate_limits.login_per_account", "rate-limits-login-per-account", "AXUM_USERS_RATE_LIMITS_LOGIN_PER_ACCOUNT", Login, per_account,
        "Sign-ins per account (e-mail, known or not) [default: 10/60]";
    register_per_ip, "rate_limits.register_per_ip", "rate-limits-register-per-ip", "AXUM_USERS_RATE_LIMITS_REGISTER_PER_IP", Register, per_ip,
        "Registrations per client IP [default: 10/3600]";
    register_per_account, "rate_limits.register_per_account", "rate-limits-register-per-account", "AXUM_USERS_RATE_LIMITS_REGISTER_PER_ACCOUNT", Register, per_account,
        "Registrations per e-mail address [default: 3/3600]";
    forgot_password_per_ip, "rate_limits.forgot_password_per_ip", "rate-limits-forgot-password-per-ip", "AXUM_USERS_RATE_LIMITS_FORGOT_PASSWORD_PER_IP", ForgotPassword, per_ip,
        "Forgot-password requests per client IP [default: 10/600]";
    request_verify_per_ip, "rate_limits.request_verify_per_ip", "rate-limits-request-verify-per-ip", "AXUM_USERS_RATE_LIMITS_REQUEST_VERIFY_PER_IP", RequestVerify, per_ip,
        "Request-verify-token requests per client IP [default: 10/600]";
    reset_password_per_ip, "rate_limits.reset_password_per_ip", "rate-limits-reset-password-per-ip", "AXUM_USERS_RATE_LIMITS_RESET_PASSWORD_PER_IP", ResetPassword, per_ip,
        "Reset-password requests per client IP [default: 10/600]";
    verify_per_ip, "rate_limits.verify_per_ip", "rate-limits-verify-per-ip", "AXUM_USERS_RATE_LIMITS_VERIFY_PER_IP", Verify, per_ip,
        "Verify requests per client IP [default: 20/600]";
    refresh_per_ip, "rate_limits.refresh_per_ip", "rate-limits-refresh-per-ip", "AXUM_USERS_RATE_LIMITS_REFRESH_PER_IP", Refresh, per_ip,
        "Refresh-token exchanges per client IP [default: 60/60]";
    oauth_per_ip, "rate_limits.oauth_per_ip", "rate-limits-oauth-per-ip", "AXUM_USERS_RATE_LIMITS_OAUTH_PER_IP", OAuth, per_ip,
        "OAuth authorize and callback requests per client IP [default: 30/60]";
}

/// The checked abuse settings.
#[derive(Debug, Clone)]
pub(crate) struct AbuseConfig {
    pub(crate) rate_limits: RateLimits,
    pub(crate) fail_closed: bool,
    pub(crate) login_throttle: LoginThrottle,
    pub(crate) mail_cooldown: Duration,
    pub(crate) mail_answer_floor: Duration,
    pub(crate) trusted_proxies: Vec<IpNet>,
    pub(crate) forwarded_header: axum_users::ForwardedHeader,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) breached: Option<BreachedConfig>,
}

/// Where the breached-password check asks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BreachedConfig {
    pub(crate) url: String,
    pub(crate) threshold: u64,
    pub(crate) timeout: Duration,
}

impl AbuseConfig {
    /// Checks the settings and fills in the defaults.
    pub(crate) fn from_settings(s: &Settings) -> Result<Self> {
        let mut rate_limits = RateLimits::default();
        rate_limits.enabled = s.rate_limits.enabled.unwrap_or(true);
        s.rate_limits.apply(&mut rate_limits);
        let window = s.login_failure_window_seconds.unwrap_or(900);
        if window == 0 {
            bail!(
                "invalid value for {}: must be at least 1",
                key("login_failure_window_seconds")
            );
        }
        let floor = s.mail_answer_floor_ms.unwrap_or(500);
        if !(1..=10_000).contains(&floor) {
            bail!(
                "invalid value for {}: between 1 and 10000 milliseconds",
                key("mail_answer_floor_ms")
            );
        }
        let min_length = s.password_min_length.unwrap_or(8);
        let max_length = s.password_max_length.unwrap_or(1024);
        if max_length < 64 || max_length < min_length {
            bail!(
                "invalid value for {}: at least 64 (NIST SP 800-63B) and at least password_min_length",
                key("password_max_length")
            );
        }
        let mut policy = PasswordPolicy::default()
            .with_min_length(min_length)
            .with_max_length(max_length)
            .with_blocklist(s.password_blocklist.unwrap_or(true))
            .with_email_context(s.password_email_check.unwrap_or(true));
        if let Some(name) = &s.service_name {
            policy = policy.with_context_words([name.clone()]);
        }
        let breached = match &s.breached_passwords_url {
            Some(url) if !url.is_empty() => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!(
                        "invalid value for {}: `{url}` must start with http:// or https://",
                        key("breached_passwords_url")
                    );
                }
                let timeout = s.breached_passwords_timeout_seconds.unwrap_or(2.0);
                if !(0.001..=60.0).contains(&timeout) {
                    bail!(
                        "invalid value for {}: between 0.001 and 60 seconds",
                        key("breached_passwords_timeout_seconds")
                    );
                }
                Some(BreachedConfig {
                    url: url.clone(),
                    threshold: s.breached_passwords_threshold.unwrap_or(1).max(1),
                    timeout: Duration::from_secs_f64(timeout),
                })
            }
            _ => None,
        };
        Ok(Self {
            rate_limits,
            fail_closed: s.rate_limits.fail_closed.unwrap_or(false),
            login_throttle: LoginThrottle::new(
                s.login_max_failures.unwrap_or(10),
                Duration::from_secs(window),
            ),
            mail_cooldown: Duration::from_secs(s.mail_cooldown_seconds.unwrap_or(60)),
            mail_answer_floor: Duration::from_millis(floor),
            trusted_proxies: s
                .trusted_proxies
                .clone()
                .map(|l| l.into_inner().into_iter().map(|n| n.0).collect())
                .unwrap_or_default(),
            forwarded_header: match &s.forwarded_header {
                Some(h) => h.parse().map_err(|e| {
                    anyhow::anyhow!("invalid value for {}: {e}", key("forwarded_header"))
                })?,
                None => axum_users::ForwardedHeader::default(),
            },
            password_policy: policy,
            breached,
        })
    }

    /// The library's defences, with `limiter` as the counters when given (Redis).
    pub(crate) fn defences(
        &self,
        limiter: Option<std::sync::Arc<dyn axum_users::Limiter>>,
    ) -> Result<Defences> {
        let mut defences = Defences::default();
        defences.rate_limits = self.rate_limits.clone();
        defences.fail_closed = self.fail_closed;
        defences.login_throttle = self.login_throttle;
        defences.mail_cooldown = self.mail_cooldown;
        defences.mail_answer_floor = self.mail_answer_floor;
        defences.client_ip.trusted_proxies = self.trusted_proxies.clone();
        defences.client_ip.header = self.forwarded_header;
        defences.password_policy = self.password_policy.clone();
        if let Some(b) = &self.breached {
            let check = BreachedPasswords::new(b.url.clone(), b.threshold, b.timeout)
                .map_err(|e| anyhow::anyhow!("cannot build the breached-password client: {e}"))?;
            defences.breached_passwords = Some(check);
        }
        if let Some(limiter) = limiter {
            defences.limiter = limiter;
        }
        Ok(defences)
    }
}
