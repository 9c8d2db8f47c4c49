//! Password hashing: Argon2id for new hashes, verification of older Argon2 and bcrypt hashes with
//! a transparent rehash, all off the async threads behind a bound.
//!
//! Hashes run on a few long-lived threads of our own (one per core by default, at a lower priority
//! on Linux), each reusing one Argon2 buffer, fed by a bounded queue: an unbounded number of
//! concurrent 19 MiB hashes would starve the runtime and let the allocator keep hundreds of
//! megabytes, and a bound kept in the request (a semaphore permit) is lost when the client hangs
//! up while the hash goes on. `pool.rs` says how the bound holds.

#[cfg(feature = "breached-passwords")]
mod breached;
mod kdf;
mod policy;
mod pool;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::PasswordHash;

// The crate root re-exports these beside `PasswordHasher` (lib.rs is the lead's: until the merge
// adds them there, the lint cannot see that they are reachable).
#[cfg(feature = "breached-passwords")]
pub use breached::{BreachedPasswords, BreachedSetupError};
pub use policy::{PasswordPolicy, PasswordRefusal};
pub use pool::{HasherLimits, HasherStats};

/// Without the `breached-passwords` feature there is no check to configure.
#[cfg(not(feature = "breached-passwords"))]
#[derive(Debug, Clone)]
pub enum BreachedPasswords {}

#[cfg(not(feature = "breached-passwords"))]
impl BreachedPasswords {
    pub(crate) async fn check(&self, _: &str) -> Result<(), crate::InvalidPassword> {
        match *self {}
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Checks the parameters against Argon2's limits.
    ///
    /// # Errors
    /// A message naming the parameter that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.parallelism < 1 || self.parallelism > 255 {
            return Err("parallelism must be between 1 and 255".into());
        }
        if self.iterations < 1 {
            return Err("iterations must be at least 1".into());
        }
        if self.memory_kib < 8 * self.parallelism {
            return Err("memory_kib must be at least 8 x parallelism".into());
        }
        if self.memory_kib > kdf::MAX_MEMORY_KIB {
            return Err(format!(
                "memory_kib must be at most {}",
                kdf::MAX_MEMORY_KIB
            ));
        }
        Ok(())
    }
}

/// Errors of the hashing machinery itself (never a wrong password, which is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The parameters are out of Argon2's range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// The hashing job panicked, or no hashing thread could be started.
    #[error("the hashing task failed")]
    TaskFailed,
    /// The server is overloaded: every hashing thread is busy and the queue is full. Nothing was
    /// computed; the route answers 503 `SERVICE_UNAVAILABLE` with `Retry-After`.
    #[error("too many password hashes are waiting; try again later")]
    Busy,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verified {
    /// The password does not match (or the hash is of an unknown kind).
    No,
    /// It matches and the hash is current.
    Yes,
    /// It matches, and this fresh hash should replace the stored one (legacy kind or parameters).
    YesRehash(PasswordHash),
}

/// Hashes and verifies passwords on its own bounded threads; clones share them, and dropping the
/// last clone ends them.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    pool: Arc<pool::Pool>,
    dummy: Arc<tokio::sync::OnceCell<PasswordHash>>,
    verifications: Arc<AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .field("limits", &self.pool.limits())
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with these parameters, running at most one hash per core at a time.
    ///
    /// # Errors
    /// [`PasswordError::Params`] when the parameters are out of range.
    pub fn new(params: Argon2Params) -> Result<Self, PasswordError> {
        Self::with_limits(params, HasherLimits::default())
    }

    /// Like [`PasswordHasher::new`] with an explicit bound on concurrent hashes (and the default
    /// queue for that many threads).
    ///
    /// # Errors
    /// [`PasswordError::Params`] when the parameters are out of range.
    pub fn with_concurrency(
        params: Argon2Params,
        concurrency: usize,
    ) -> Result<Self, PasswordError> {
        Self::with_limits(params, HasherLimits::new(concurrency))
    }

    /// Like [`PasswordHasher::new`] with explicit thread and queue bounds.
    ///
    /// # Errors
    /// [`PasswordError::Params`] when the parameters are out of range.
    pub fn with_limits(params: Argon2Params, limits: HasherLimits) -> Result<Self, PasswordError> {
        params.validate().map_err(PasswordError::Params)?;
        Ok(Self {
            params,
            pool: Arc::new(pool::Pool::new(limits, kdf::blocks_for(params))),
            dummy: Arc::new(tokio::sync::OnceCell::new()),
            verifications: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// The thread and queue bounds in force.
    pub fn limits(&self) -> HasherLimits {
        self.pool.limits()
    }

    /// What the hashing threads are doing and have done (for metrics, and to show the bound).
    pub fn stats(&self) -> HasherStats {
        self.pool.stats()
    }

    /// How many verifications were asked of this hasher (for metrics, and to show that every login
    /// attempt costs one, whoever it names).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Whether `hash` is an Argon2id hash of the configured parameters: one this hasher writes,
    /// which a sign-in would not replace. Legacy kinds (bcrypt) and other parameters are not.
    pub fn is_current(&self, hash: &PasswordHash) -> bool {
        kdf::is_current(&hash.0, self.params)
    }

    /// Whether a login would verify `hash` at all: a kind this crate reads (Argon2, bcrypt) at a
    /// cost under the ceiling for legacy hashes (or at most the configured parameters). An
    /// import checks it, so that a row written elsewhere cannot hold a hashing thread for hours.
    pub fn is_verifiable(&self, hash: &PasswordHash) -> bool {
        kdf::verifiable(&hash.0, self.params)
    }

    /// Hashes a password with Argon2id at the configured parameters.
    ///
    /// # Errors
    /// [`PasswordError::Busy`] at once when the queue is full, or [`PasswordError::TaskFailed`].
    pub async fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        let password = password.to_owned();
        let params = self.params;
        self.pool
            .run(move |memory| kdf::hash_argon2id(&password, params, memory))
            .await
    }

    /// Checks a password against a stored hash and says whether it should be rehashed.
    ///
    /// # Errors
    /// [`PasswordError::Busy`] at once when the queue is full, or [`PasswordError::TaskFailed`];
    /// a wrong password is `Ok(Verified::No)`.
    pub async fn verify(
        &self,
        password: &str,
        hash: &PasswordHash,
    ) -> Result<Verified, PasswordError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let password = password.to_owned();
        let hash = hash.0.clone();
        let params = self.params;
        self.pool
            .run(move |memory| kdf::verify_and_update(&password, &hash, params, memory))
            .await
    }

    /// Spends the time of one verification against a hash of the current parameters, so that
    /// an unknown user costs what a wrong password costs.
    ///
    /// # Errors
    /// As [`PasswordHasher::verify`].
    pub async fn verify_dummy(&self, password: &str) -> Result<(), PasswordError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async { self.hash(&crate::secret::random_token(16)).await })
            .await?
            .clone();
        self.verify(password, &dummy).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fast() -> Argon2Params {
        Argon2Params {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert!(hash.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert_eq!(
            hasher.verify("correct horse", &hash).await.unwrap(),
            Verified::Yes
        );
        assert_eq!(hasher.verify("wrong", &hash).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn other_parameters_are_rehashed() {
        let old = PasswordHasher::new(Argon2Params {
            memory_kib: 32,
            iterations: 2,
            parallelism: 2,
        })
        .unwrap();
        let hash = old.hash("pw").await.unwrap();
        let hasher = PasswordHasher::new(fast()).unwrap();
        match hasher.verify("pw", &hash).await.unwrap() {
            Verified::YesRehash(new) => {
                assert!(new.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
                assert_eq!(hasher.verify("pw", &new).await.unwrap(), Verified::Yes);
            }
            other => panic!("expected a rehash, got {other:?}"),
        }
        assert_eq!(hasher.verify("nope", &hash).await.unwrap(), Verified::No);
    }

    #[tokio::test]
    async fn only_hashes_of_the_current_parameters_are_current() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        let ours = hasher.hash("pw").await.unwrap();
        assert!(hasher.is_current(&ours));
        let other = PasswordHasher::new(Argon2Params {
            memory_kib: 32,
            iterations: 2,
            parallelism: 2,
        })
        .unwrap();
        assert!(!hasher.is_current(&other.hash("pw").await.unwrap()));
        assert!(!hasher.is_current(&PasswordHash(bcrypt::hash("pw", 4).unwrap())));
        assert!(!hasher.is_current(&PasswordHash("garbage".into())));
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_are_upgraded() {
        let legacy = PasswordHash(bcrypt::hash("legacy-pw", 4).unwrap());
        let hasher = PasswordHasher::new(fast()).unwrap();
        assert!(matches!(
            hasher.verify("legacy-pw", &legacy).await.unwrap(),
            Verified::YesRehash(_)
        ));
        assert_eq!(hasher.verify("other", &legacy).await.unwrap(), Verified::No);
        assert_eq!(
            hasher.verify(&"x".repeat(100), &legacy).await.unwrap(),
            Verified::No
        );
    }

    #[tokio::test]
    async fn hashes_over_the_cost_ceiling_are_refused_without_being_computed() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        let argon = |m: u64, t: u64, p: u64| {
            PasswordHash(format!(
                "$argon2id$v=19$m={m},t={t},p={p}$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"
            ))
        };
        let bcrypt_at = |cost: &str| {
            let hash = bcrypt::hash("pw", 4).unwrap();
            PasswordHash(format!("$2b${cost}{}", &hash[6..]))
        };
        // Hours of passes, a 4 GiB buffer, 2^31 bcrypt rounds: each would pin a hashing thread.
        for costly in [
            argon(8, 4_294_967_295, 1),
            argon(4_194_304, 1, 1),
            argon(262_144, 10, 1),
            bcrypt_at("31"),
            bcrypt_at("15"),
        ] {
            assert!(!hasher.is_verifiable(&costly), "{costly:?}");
            let answer =
                tokio::time::timeout(Duration::from_secs(30), hasher.verify("pw", &costly))
                    .await
                    .expect("an over-cost hash is refused, not computed");
            assert_eq!(answer.unwrap(), Verified::No);
        }
        // FastAPI Users' pwdlib default and bcrypt 12 stay verifiable, as does anything at or
        // under the configured parameters, however high those are.
        assert!(hasher.is_verifiable(&argon(65_536, 3, 4)));
        assert!(hasher.is_verifiable(&bcrypt_at("12")));
        assert!(
            !hasher.is_verifiable(&bcrypt_at("03")),
            "under bcrypt's minimum"
        );
        assert!(hasher.is_verifiable(&hasher.hash("pw").await.unwrap()));
        let heavy = PasswordHasher::new(Argon2Params {
            memory_kib: 1_048_576,
            iterations: 12,
            parallelism: 1,
        })
        .unwrap();
        assert!(heavy.is_verifiable(&argon(1_048_576, 12, 1)));
        assert!(!heavy.is_verifiable(&argon(1_048_576, 13, 1)));
        assert!(!hasher.is_verifiable(&PasswordHash("garbage".into())));
        assert!(!hasher.is_verifiable(&PasswordHash::unusable()));
    }

    #[tokio::test]
    async fn argon2_reference_vector_verifies() {
        // A hash made by argon2-cffi (the reference's default parameters m=65536,t=3,p=4) would be
        // slow in a unit test; this one is made by another implementation at small parameters.
        let hasher = PasswordHasher::new(fast()).unwrap();
        let mut memory = Vec::new();
        let other = kdf::hash_argon2id(
            "pw",
            Argon2Params {
                memory_kib: 128,
                iterations: 1,
                parallelism: 2,
            },
            &mut memory,
        )
        .unwrap();
        assert!(matches!(
            hasher.verify("pw", &other).await.unwrap(),
            Verified::YesRehash(_)
        ));
    }

    #[tokio::test]
    async fn garbage_hashes_never_match() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        for junk in [
            "",
            "plain",
            "$argon2id$v=19$m=64,t=1,p=1$$",
            "$argon2id$v=99$m=1,t=1,p=1$AAAA$AAAA",
            "$2b$12$short",
        ] {
            assert_eq!(
                hasher
                    .verify("pw", &PasswordHash(junk.into()))
                    .await
                    .unwrap(),
                Verified::No,
                "{junk}"
            );
        }
    }

    /// Waits (a few seconds at most) until no job runs or waits.
    async fn idle(hasher: &PasswordHasher) -> HasherStats {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let stats = hasher.stats();
            if stats.running == 0 && stats.queued == 0 {
                return stats;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still busy: {stats:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requesters_that_hang_up_never_lift_the_bound() {
        use std::time::{Duration, Instant};
        const CONCURRENCY: usize = 2;
        const REQUESTS: usize = 30;
        const PATIENCE: Duration = Duration::from_millis(5);
        let params = Argon2Params {
            memory_kib: 8 * 1024,
            iterations: 2,
            parallelism: 1,
        };
        let hasher = PasswordHasher::with_concurrency(params, CONCURRENCY).unwrap();
        let hash = hasher.hash("pw").await.unwrap();
        let timed = Instant::now();
        assert_eq!(hasher.verify("pw", &hash).await.unwrap(), Verified::Yes);
        let one = timed.elapsed();
        let before = idle(&hasher).await;

        let burst = Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..REQUESTS {
            let (hasher, hash) = (hasher.clone(), hash.clone());
            requests.spawn(async move {
                let _ = tokio::time::timeout(PATIENCE, hasher.verify("pw", &hash)).await;
            });
        }
        requests.join_all().await;
        let window = burst.elapsed();
        let after = idle(&hasher).await;

        let ran = after.completed - before.completed;
        let skipped = after.skipped - before.skipped;
        assert_eq!(ran + skipped, REQUESTS as u64, "{after:?}");
        assert!(after.max_running <= CONCURRENCY, "{after:?}");
        assert!(after.threads <= CONCURRENCY, "{after:?}");
        // While requesters were there each thread started at most one job per `one`, plus the one
        // it was running when the last requester left; every later job found nobody and was
        // skipped.
        let could_start =
            CONCURRENCY as u64 * (window.as_micros() / one.as_micros().max(1) + 2) as u64;
        assert!(
            ran <= could_start,
            "{ran} ran in {window:?} at {one:?} a hash: {after:?}"
        );
        assert!(skipped > 0, "{after:?}");
        assert!(after.buffers <= CONCURRENCY, "{after:?}");
        assert!(
            after.buffer_bytes
                <= CONCURRENCY * kdf::blocks_for(params) * std::mem::size_of::<argon2::Block>(),
            "{after:?}"
        );
        assert_eq!(hasher.verifications(), 1 + REQUESTS as u64);
    }

    #[tokio::test]
    async fn a_full_queue_answers_busy_and_nothing_is_computed() {
        let params = Argon2Params {
            memory_kib: 8 * 1024,
            iterations: 4,
            parallelism: 1,
        };
        let hasher =
            PasswordHasher::with_limits(params, HasherLimits::new(1).with_queue(0)).unwrap();
        let hash = hasher.hash("pw").await.unwrap();
        // One verification holds the only thread; with no queue the next is refused at once.
        let (first, second) = tokio::join!(hasher.verify("pw", &hash), async {
            hasher.verify("pw", &hash).await
        });
        assert_eq!(first.unwrap(), Verified::Yes);
        assert!(matches!(second, Err(PasswordError::Busy)), "{second:?}");
        let stats = idle(&hasher).await;
        assert_eq!((stats.completed, stats.refused), (2, 1));
    }

    #[tokio::test]
    async fn buffers_shrink_back_after_a_legacy_hash() {
        let hasher = PasswordHasher::with_concurrency(fast(), 1).unwrap();
        let legacy = PasswordHasher::with_concurrency(
            Argon2Params {
                memory_kib: 1024,
                ..fast()
            },
            1,
        )
        .unwrap()
        .hash("pw")
        .await
        .unwrap();
        assert!(matches!(
            hasher.verify("pw", &legacy).await.unwrap(),
            Verified::YesRehash(_)
        ));
        let stats = hasher.stats();
        assert_eq!(stats.buffers, 1);
        assert_eq!(
            stats.buffer_bytes,
            64 * 1024,
            "m=64 KiB: 64 blocks of 1 KiB"
        );
    }

    #[tokio::test]
    async fn verify_dummy_costs_one_verification() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        hasher.verify_dummy("a").await.unwrap();
        hasher.verify_dummy("b").await.unwrap();
        assert_eq!(hasher.verifications(), 2);
        // The dummy hash is made once, then each call is one verification on the threads.
        assert_eq!(idle(&hasher).await.completed, 3);
    }

    #[tokio::test]
    async fn clones_share_the_threads() {
        let hasher = PasswordHasher::with_concurrency(fast(), 1).unwrap();
        let clone = hasher.clone();
        let hash = clone.hash("pw").await.unwrap();
        drop(clone);
        assert_eq!(hasher.verify("pw", &hash).await.unwrap(), Verified::Yes);
        let stats = hasher.stats();
        assert_eq!((stats.threads, stats.completed), (1, 2));
    }

    #[test]
    fn params_are_validated() {
        assert!(Argon2Params::default().validate().is_ok());
        assert!(
            Argon2Params {
                parallelism: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Argon2Params {
                iterations: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Argon2Params {
                memory_kib: 4,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
    }

    #[tokio::test]
    async fn every_refusal_without_a_check_still_costs_one_current_hash() {
        let hasher = PasswordHasher::new(fast()).unwrap();
        let current = hasher.hash("correct horse").await.unwrap().0;
        let over_cap = current.replacen("m=64,", "m=99999999,", 1);
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        let long = "x".repeat(73);
        let cost_03 = format!("$2b$03{}", &bcrypt[6..]);
        for (password, hash, what) in [
            (
                "pw",
                cost_03.as_str(),
                "bcrypt under its minimum cost (malformed)",
            ),
            (
                long.as_str(),
                bcrypt.as_str(),
                "over 72 bytes against bcrypt",
            ),
            ("pw", "plain-text", "a hash of an unknown kind"),
            (
                "pw",
                over_cap.as_str(),
                "an Argon2 hash over the memory cap",
            ),
        ] {
            // The Argon2 memory of the current parameters is touched only by a hash of them.
            let mut memory = Vec::new();
            let verified = kdf::verify_and_update(password, hash, fast(), &mut memory).unwrap();
            assert!(matches!(verified, Verified::No), "{what}");
            assert!(memory.len() >= 64, "{what}: answered with no work");
        }
        let before = hasher.verifications();
        let refused = hasher.verify(&long, &PasswordHash(bcrypt)).await.unwrap();
        assert!(matches!(refused, Verified::No));
        assert_eq!(hasher.verifications(), before + 1);
    }
}
