//! The in-memory [`Limiter`]: one node's counters. Rate limits are governor's GCRA, its state
//! kept in a table of ours with a hard capacity (governor's own keyed stores have none);
//! failures are a sliding log of at most `limit` instants per key. Keys are stored as their
//! SHA-256, so an entry has a fixed size whatever a client sends; the expired entries are swept
//! every [`SWEEP_EVERY`] new keys, and past the capacity the least recently used entry makes
//! room, so a flood of distinct keys has a hard memory bound and evicts the counters nobody is
//! using first.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::hash::RandomState;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use hashlink::LinkedHashMap;
use sha2::{Digest, Sha256};

use super::{LimitFuture, Limiter, Rule};

/// Entries each table holds at most, by default (about 100 bytes each).
const DEFAULT_CAPACITY: usize = 100_000;

/// New keys between two sweeps of the expired entries.
const SWEEP_EVERY: usize = 1024;

type Digest32 = [u8; 32];

fn digest(key: &str) -> Digest32 {
    Sha256::digest(key.as_bytes()).into()
}

/// A map with a capacity, in order of last use: the expired entries are swept periodically, and
/// past the capacity the least recently used one makes room (a counter a client keeps hitting is
/// the last to go; one nobody touched for longest is the first).
struct Bounded<K, V> {
    entries: LinkedHashMap<K, V, RandomState>,
    inserts: usize,
}

impl<K: Hash + Eq, V> Bounded<K, V> {
    fn new() -> Self {
        Self {
            entries: LinkedHashMap::with_hasher(RandomState::new()),
            inserts: 0,
        }
    }

    /// The entry of `key`, now the most recently used; made room for when new: the expired ones
    /// are swept every [`SWEEP_EVERY`] new keys; at `capacity`, the least recently used goes.
    fn entry(
        &mut self,
        key: K,
        capacity: usize,
        expired: impl Fn(&V) -> bool,
        new: impl FnOnce() -> V,
    ) -> &mut V {
        if self.entries.contains_key(&key) {
            self.entries.to_back(&key);
        } else {
            self.inserts += 1;
            if self.inserts >= SWEEP_EVERY {
                self.inserts = 0;
                self.entries.retain(|_, v| !expired(v));
            }
            while self.entries.len() >= capacity.max(1) {
                self.entries.pop_front();
            }
        }
        self.entries.entry(key).or_insert_with(new)
    }
}

/// A key's window and its recent failures (and attempts in flight), each with its attempt id.
type Failures = (Duration, VecDeque<(Instant, u64)>);

/// A (rule, key) of the rate table.
type RateKey = (Rule, Digest32);

/// The state governor's limiters keep, one table for every rule (the rule is part of the key),
/// so the bound is one for all: each entry is governor's theoretical arrival time and the
/// instant by which it is surely past (one window after its last use), for the sweep.
#[derive(Clone)]
struct RateTable {
    capacity: usize,
    entries: Arc<Mutex<Bounded<RateKey, (Nanos, Instant)>>>,
}

impl StateStore for RateTable {
    type Key = RateKey;

    fn measure_and_replace<T, F, E>(&self, key: &Self::Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = entries.entries.get(key).map(|(tat, _)| *tat);
        let (answer, tat) = match f(previous) {
            Ok(next) => next,
            Err(refused) => {
                // A refused key is one in use: the last to be dropped.
                entries.entries.to_back(key);
                return Err(refused);
            }
        };
        // After an allowed event the arrival time is at most one window ahead.
        let past_by = now + key.0.window;
        *entries.entry(*key, self.capacity, |(_, by)| *by <= now, || (tat, past_by)) =
            (tat, past_by);
        Ok(answer)
    }
}

/// governor's keyed limiter of one rule, over the shared table.
type RuleLimiter = RateLimiter<RateKey, RateTable, DefaultClock>;

/// Counters in this process's memory (the default; several nodes need the Redis limiter).
pub struct MemoryLimiter {
    capacity: usize,
    clock: DefaultClock,
    /// The rate state of every (rule, key).
    rates: RateTable,
    /// One governor limiter per rule met so far (the rules are the configuration's few).
    limiters: Mutex<HashMap<Rule, Arc<RuleLimiter>>>,
    /// The recent failures (and attempts in flight) of each key, each with its attempt id, with
    /// the window they count in.
    failures: Mutex<Bounded<Digest32, Failures>>,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl MemoryLimiter {
    /// Empty counters, at most 100,000 rate entries and 100,000 failure logs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Empty counters holding at most `capacity` rate entries and as many failure logs.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            clock: DefaultClock::default(),
            rates: RateTable {
                capacity,
                entries: Arc::new(Mutex::new(Bounded::new())),
            },
            limiters: Mutex::new(HashMap::new()),
            failures: Mutex::new(Bounded::new()),
        }
    }

    /// How many rate entries and failure logs are held (a gauge; bounded by the capacity).
    pub fn len(&self) -> usize {
        let rates = self.rates_held();
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        rates + failures.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn rates_held(&self) -> usize {
        let entries = self.rates.entries.lock();
        entries
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .len()
    }

    /// governor's limiter of `rule`: one event per `window / limit`, a burst of `limit`.
    fn limiter(&self, rule: Rule) -> Arc<RuleLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
        limiters
            .entry(rule)
            .or_insert_with(|| {
                // `Rule`'s fields are public: a limit of 0 is read as 1 rather than divided by.
                let interval = (rule.window / rule.limit.max(1)).max(Duration::from_nanos(1));
                let quota = Quota::with_period(interval)
                    .expect("a period of at least 1 ns")
                    .allow_burst(NonZeroU32::new(rule.limit).unwrap_or(NonZeroU32::MIN));
                Arc::new(RateLimiter::new(
                    quota,
                    self.rates.clone(),
                    self.clock.clone(),
                ))
            })
            .clone()
    }

    fn hit_now(&self, key: &str, rule: Rule) -> Option<Duration> {
        let limiter = self.limiter(rule);
        match limiter.check_key(&(rule, digest(key))) {
            Ok(()) => None,
            Err(refused) => Some(refused.wait_time_from(self.clock.now())),
        }
    }

    /// Checks and counts in one step, under the table's lock (see [`Limiter::attempt`]).
    fn attempt_now(&self, key: &str, rule: Rule, id: u64) -> Option<Duration> {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (window, log) = failures.entry(
            digest(key),
            self.capacity,
            |(window, log)| {
                log.back()
                    .is_none_or(|(at, _)| now.duration_since(*at) >= *window)
            },
            || (rule.window, VecDeque::new()),
        );
        *window = rule.window;
        log.retain(|(at, _)| now.duration_since(*at) < rule.window);
        let limit = rule.limit as usize;
        if log.len() >= limit {
            // Blocked until the oldest of the last `limit` failures leaves the window.
            let (oldest, _) = log[log.len() - limit];
            return Some(rule.window.saturating_sub(now.duration_since(oldest)));
        }
        log.push_back((now, id));
        None
    }

    /// Takes back the attempt `id` of `key`.
    fn forget_now(&self, key: &str, id: u64) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let digest = digest(key);
        let Some((_, log)) = failures.entries.get_mut(&digest) else {
            return;
        };
        log.retain(|(_, attempt)| *attempt != id);
        if log.is_empty() {
            failures.entries.remove(&digest);
        }
    }
}

impl Limiter for MemoryLimiter {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move { Ok(self.hit_now(key, rule)) })
    }

    fn attempt<'a>(
        &'a self,
        key: &'a str,
        rule: Rule,
        id: u64,
    ) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move { Ok(self.attempt_now(key, rule, id)) })
    }

    fn forget<'a>(&'a self, key: &'a str, id: u64) -> LimitFuture<'a, ()> {
        Box::pin(async move {
            self.forget_now(key, id);
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
    fn a_rule_built_with_a_limit_of_zero_counts_as_one_and_does_not_panic() {
        let limiter = MemoryLimiter::new();
        let rule = Rule {
            limit: 0,
            window: Duration::from_secs(60),
        };
        assert_eq!(limiter.hit_now("a", rule), None);
        assert!(limiter.hit_now("a", rule).is_some());
    }

    #[test]
    fn a_rule_lets_one_more_through_per_interval() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::new(2, Duration::from_millis(200));
        assert_eq!(limiter.hit_now("a", rule), None);
        assert_eq!(limiter.hit_now("a", rule), None);
        assert!(limiter.hit_now("a", rule).is_some());
        std::thread::sleep(Duration::from_millis(110));
        assert_eq!(limiter.hit_now("a", rule), None, "one interval later");
        assert!(limiter.hit_now("a", rule).is_some());
    }

    #[test]
    fn failures_block_until_the_window_passes() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::new(2, Duration::from_millis(200));
        assert_eq!(limiter.attempt_now("k", rule, 1), None);
        assert_eq!(limiter.attempt_now("k", rule, 3), None);
        let wait = limiter.attempt_now("k", rule, 5).unwrap();
        assert!(wait <= Duration::from_millis(200));
        std::thread::sleep(Duration::from_millis(220));
        assert_eq!(limiter.attempt_now("k", rule, 7), None, "never permanent");
    }

    #[test]
    fn a_forgotten_attempt_frees_its_place_and_only_its_own() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::per_seconds(2, 60);
        assert_eq!(limiter.attempt_now("k", rule, 1), None);
        assert_eq!(limiter.attempt_now("k", rule, 3), None);
        assert!(limiter.attempt_now("k", rule, 5).is_some(), "two in flight");
        limiter.forget_now("k", 3);
        assert_eq!(limiter.attempt_now("k", rule, 7), None, "3 was taken back");
        limiter.forget_now("k", 99);
        assert!(limiter.attempt_now("k", rule, 9).is_some(), "1 and 7 stay");
    }

    #[test]
    fn concurrent_attempts_at_the_last_place_pass_once() {
        let limiter = std::sync::Arc::new(MemoryLimiter::new());
        let rule = Rule::per_seconds(3, 60);
        assert_eq!(limiter.attempt_now("k", rule, 1), None);
        assert_eq!(limiter.attempt_now("k", rule, 3), None);
        let threads: Vec<_> = (0..16u64)
            .map(|i| {
                let limiter = limiter.clone();
                std::thread::spawn(move || limiter.attempt_now("k", rule, 11 + 2 * i).is_none())
            })
            .collect();
        let passed = threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .filter(|passed| *passed)
            .count();
        assert_eq!(passed, 1, "the check and the count are one step");
    }

    #[test]
    fn a_flood_of_distinct_long_keys_stays_within_the_capacity() {
        // 5,000 distinct keys of 16 KiB each: 80 MiB if kept; held as 100 fixed-size digests.
        let limiter = MemoryLimiter::with_capacity(100);
        let rule = Rule::per_seconds(5, 3600);
        let long = "x".repeat(16 * 1024);
        for i in 0..5_000 {
            let key = format!("{long}{i}");
            assert_eq!(limiter.hit_now(&key, rule), None);
            assert_eq!(limiter.attempt_now(&key, rule, 1), None);
        }
        assert!(limiter.len() <= 200, "{} entries", limiter.len());
        // A key just used is still counted.
        for _ in 0..5 {
            limiter.hit_now("fresh", rule);
        }
        assert!(limiter.hit_now("fresh", rule).is_some());
    }

    #[test]
    fn past_the_capacity_the_least_recently_used_key_makes_room() {
        let limiter = MemoryLimiter::with_capacity(3);
        let rule = Rule::per_seconds(1, 3600);
        for key in ["a", "b", "c"] {
            assert_eq!(limiter.hit_now(key, rule), None);
        }
        assert!(limiter.hit_now("a", rule).is_some(), "a is used again");
        assert_eq!(limiter.hit_now("d", rule), None, "d makes room");
        assert!(
            limiter.hit_now("a", rule).is_some(),
            "a was used lately: kept"
        );
        assert!(limiter.hit_now("c", rule).is_some(), "c: kept");
        assert_eq!(
            limiter.hit_now("b", rule),
            None,
            "b, the least recently used, was dropped for d"
        );
        assert!(limiter.len() <= 3);
    }

    #[test]
    fn a_flood_of_distinct_addresses_keeps_the_counter_under_attack() {
        // An attacker floods with fresh keys (IPs, addresses) to evict the failure log of the
        // account being guessed; each guess touches that log, so the flood must outrun the
        // capacity between two guesses.
        let limiter = MemoryLimiter::with_capacity(1000);
        let rule = Rule::per_seconds(3, 3600);
        for round in 0..2u64 {
            assert_eq!(
                limiter.attempt_now("login_failures:victim", rule, 2 * round + 1),
                None
            );
            for i in 0..900 {
                limiter.attempt_now(&format!("login_failures:{round}-{i}"), rule, 1);
            }
        }
        assert_eq!(limiter.attempt_now("login_failures:victim", rule, 99), None);
        assert!(
            limiter
                .attempt_now("login_failures:victim", rule, 101)
                .is_some(),
            "three failures survived 1,800 other keys in a table of 1,000"
        );
        assert!(limiter.len() <= 1000, "{}", limiter.len());
    }

    #[test]
    fn expired_entries_are_swept() {
        let limiter = MemoryLimiter::new();
        let rule = Rule::new(1, Duration::from_millis(20));
        for i in 0..SWEEP_EVERY / 2 {
            limiter.hit_now(&i.to_string(), rule);
            limiter.attempt_now(&i.to_string(), rule, 1);
        }
        std::thread::sleep(Duration::from_millis(30));
        for i in 0..SWEEP_EVERY {
            limiter.hit_now(&format!("new{i}"), rule);
        }
        let rates = limiter.rates_held();
        assert!(
            rates <= SWEEP_EVERY,
            "{rates} of 1.5 x SWEEP_EVERY: the expired were swept"
        );
    }
}
