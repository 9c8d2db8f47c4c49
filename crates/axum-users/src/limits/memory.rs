//! The in-memory [`Limiter`]: one node's counters. Rate limits are GCRA from `governor`, one
//! keyed limiter per distinct rule; failures are a sliding log of at most `limit` instants per
//! key. Both are pruned as they grow, so a flood of distinct keys cannot grow them forever.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::{LimitFuture, Limiter, Rule};

/// Keys a structure holds before it is pruned of the expired ones.
const PRUNE_AT: usize = 10_000;

type Keyed = DefaultKeyedRateLimiter<String>;

/// Counters in this process's memory (the default; several nodes need the Redis limiter).
#[derive(Default)]
pub struct MemoryLimiter {
    rates: Mutex<HashMap<Rule, Arc<Keyed>>>,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimiter").finish_non_exhaustive()
    }
}

impl MemoryLimiter {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    fn limiter(&self, rule: Rule) -> Arc<Keyed> {
        let mut rates = self.rates.lock().unwrap_or_else(PoisonError::into_inner);
        rates
            .entry(rule)
            .or_insert_with(|| {
                let burst = NonZeroU32::new(rule.limit).unwrap_or(NonZeroU32::MIN);
                let period = (rule.window / rule.limit).max(Duration::from_nanos(1));
                let quota = Quota::with_period(period)
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(burst);
                Arc::new(Keyed::keyed(quota))
            })
            .clone()
    }

    fn hit_now(&self, key: &str, rule: Rule) -> Option<Duration> {
        let limiter = self.limiter(rule);
        if limiter.len() > PRUNE_AT {
            limiter.retain_recent();
        }
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(DefaultClock::default().now())),
        }
    }

    fn blocked_now(&self, key: &str, rule: Rule) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let log = failures.get(key)?;
        let now = Instant::now();
        let recent: Vec<&Instant> = log
            .iter()
            .filter(|at| now.duration_since(**at) < rule.window)
            .collect();
        if recent.len() < rule.limit as usize {
            return None;
        }
        // Blocked until the oldest of the last `limit` failures leaves the window.
        let oldest = recent[recent.len() - rule.limit as usize];
        Some(rule.window.saturating_sub(now.duration_since(*oldest)))
    }

    fn record_now(&self, key: &str, rule: Rule) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if failures.len() > PRUNE_AT {
            failures.retain(|_, log| {
                log.back()
                    .is_some_and(|at| now.duration_since(*at) < rule.window)
            });
        }
        let log = failures.entry(key.to_owned()).or_default();
        log.push_back(now);
        while log.len() > rule.limit as usize {
            log.pop_front();
        }
    }
}

impl Limiter for MemoryLimiter {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move { Ok(self.hit_now(key, rule)) })
    }

    fn blocked<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move { Ok(self.blocked_now(key, rule)) })
    }

    fn record_failure<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, ()> {
        Box::pin(async move {
            self.record_now(key, rule);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_allows_its_burst_then_says_how_long_to_wait() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::per_seconds(3, 60);
        for _ in 0..3 {
            assert_eq!(limiter.hit_now("a", rule), None);
        }
        let wait = limiter.hit_now("a", rule).unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limiter.hit_now("b", rule), None, "keys are separate");
    }

    #[test]
    fn failures_block_until_the_window_passes() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::new(2, Duration::from_millis(200));
        limiter.record_now("k", rule);
        assert_eq!(limiter.blocked_now("k", rule), None);
        limiter.record_now("k", rule);
        let wait = limiter.blocked_now("k", rule).unwrap();
        assert!(wait <= Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(limiter.blocked_now("k", rule), None, "never permanent");
    }
}
