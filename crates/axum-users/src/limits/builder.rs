//! The builder's settings of the abuse defences, kept beside them rather than in `app.rs`.

use std::sync::Arc;
use std::time::Duration;

use crate::app::AxumUsersBuilder;
use crate::client_ip::{ClientIpPolicy, ForwardedHeader, IpNet};
use crate::password::{BreachedPasswords, PasswordPolicy};
use crate::store::UserStore;

use super::{Defences, Limiter, LoginThrottle, RateLimits};

impl<S: UserStore, H> AxumUsersBuilder<S, H> {
    /// Every abuse defence at once (see [`Defences`]); the other methods change one part.
    pub fn defences(mut self, defences: Defences) -> Self {
        self.defences = defences;
        self
    }

    /// The rate limits (default [`RateLimits::default`]; [`RateLimits::off`] turns them, the
    /// login throttle and the mail cooldown off).
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.defences.rate_limits = limits;
        self
    }

    /// Where the counters live (default in memory; the Redis limiter shares them between nodes).
    pub fn limiter(mut self, limiter: impl Limiter) -> Self {
        self.defences.limiter = Arc::new(limiter);
        self
    }

    /// Refuse with 503 rather than serve when the counters are unavailable (default `false`).
    pub fn limiter_fail_closed(mut self, fail_closed: bool) -> Self {
        self.defences.fail_closed = fail_closed;
        self
    }

    /// The per-account login throttle (default 10 failures in 15 minutes).
    pub fn login_throttle(mut self, throttle: LoginThrottle) -> Self {
        self.defences.login_throttle = throttle;
        self
    }

    /// At most one reset or verify mail per address per `cooldown` (default 60 s; zero: off).
    pub fn mail_cooldown(mut self, cooldown: Duration) -> Self {
        self.defences.mail_cooldown = cooldown;
        self
    }

    /// When forgot-password and request-verify-token answer, known address or not (default
    /// 500 ms): above the time a lookup and the mail hook's write take, or the answer leaves
    /// before the mail is written (see [`Defences::mail_answer_floor`]).
    pub fn mail_answer_floor(mut self, floor: Duration) -> Self {
        self.defences.mail_answer_floor = floor;
        self
    }

    /// Proxies whose forwarded header (see [`Self::forwarded_header`]) names the client (default none).
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpNet>) -> Self {
        self.defences.client_ip = ClientIpPolicy {
            trusted_proxies: proxies.into_iter().collect(),
            header: self.defences.client_ip.header,
        };
        self
    }

    /// The one header the trusted proxies write (default `X-Forwarded-For`); the other is
    /// ignored, since a proxy passes a client's own copy of it through.
    pub fn forwarded_header(mut self, header: ForwardedHeader) -> Self {
        self.defences.client_ip.header = header;
        self
    }

    /// The password policy (default [`PasswordPolicy::default`]; the hook refines it).
    pub fn password_policy(mut self, policy: PasswordPolicy) -> Self {
        self.defences.password_policy = policy;
        self
    }

    /// The breached-password check (default none).
    pub fn breached_passwords(mut self, check: BreachedPasswords) -> Self {
        self.defences.breached_passwords = Some(check);
        self
    }
}
