//! The hashing limit: raw Argon2id verifications per second with the `argon2` crate directly, at
//! the server's parameters, on as many threads as the server's hashing pool has permits (one per
//! core), each reusing its memory — what a login costs with no HTTP, no database and no runtime.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Argon2id cost, as the server's `AXUM_USERS_ARGON2_*` settings.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// The hashing limit as measured.
#[derive(Debug, Clone, Copy)]
pub struct RawRate {
    /// Verifications per second (wall clock).
    pub per_second: f64,
    /// CPU time per verification (`None` where `/proc` cannot be read).
    pub cpu_per_verification: Option<Duration>,
}

impl RawRate {
    /// The mean of two measurements of the same limit (taken before and after a scenario, so
    /// that a ratio against it does not hang on one moment's load: on this shared machine one
    /// measurement moved between 83 and 118 per second from suite to suite).
    pub fn mean(self, other: RawRate) -> RawRate {
        RawRate {
            per_second: (self.per_second + other.per_second) / 2.0,
            cpu_per_verification: self
                .cpu_per_verification
                .zip(other.cpu_per_verification)
                .map(|(a, b)| (a + b) / 2),
        }
    }
}

/// Verifies one fixed password against its hash on `threads` threads for `duration`.
///
/// # Errors
/// When the parameters are out of Argon2's range.
pub fn verifications_per_second(cost: Cost, threads: usize, duration: Duration) -> Result<RawRate> {
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid Argon2 parameters")?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = *b"bench-salt-16byt";
    let mut memory = vec![Block::new(); params.block_count()];
    let mut expected = [0u8; 32];
    argon
        .hash_password_into_with_memory(b"correct horse", &salt, &mut expected, &mut memory)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(memory);
    let done = AtomicU64::new(0);
    let cpu_start = crate::process::cpu_time(std::process::id());
    let started = Instant::now();
    let deadline = started + duration;
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut memory = vec![Block::new(); params.block_count()];
                let mut out = [0u8; 32];
                while Instant::now() < deadline {
                    if argon
                        .hash_password_into_with_memory(
                            b"correct horse",
                            &salt,
                            &mut out,
                            &mut memory,
                        )
                        .is_ok()
                        && out == expected
                    {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let done = done.load(Ordering::Relaxed);
    let cpu_end = crate::process::cpu_time(std::process::id());
    Ok(RawRate {
        per_second: done as f64 / started.elapsed().as_secs_f64(),
        cpu_per_verification: cpu_start
            .zip(cpu_end)
            .filter(|_| done > 0)
            .map(|(start, end)| end.saturating_sub(start) / done as u32),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_cheap_verifications() {
        let cost = Cost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let rate = verifications_per_second(cost, 2, Duration::from_millis(100)).unwrap();
        assert!(rate.per_second > 0.0);
    }

    #[test]
    fn the_mean_of_two_rates() {
        let a = RawRate {
            per_second: 80.0,
            cpu_per_verification: Some(Duration::from_millis(20)),
        };
        let b = RawRate {
            per_second: 120.0,
            cpu_per_verification: Some(Duration::from_millis(16)),
        };
        let m = a.mean(b);
        assert_eq!(m.per_second, 100.0);
        assert_eq!(m.cpu_per_verification, Some(Duration::from_millis(18)));
        let unknown = RawRate {
            cpu_per_verification: None,
            ..b
        };
        assert_eq!(a.mean(unknown).cpu_per_verification, None);
    }

    #[test]
    fn refuses_bad_parameters() {
        let cost = Cost {
            memory_kib: 1,
            iterations: 1,
            parallelism: 1,
        };
        assert!(verifications_per_second(cost, 1, Duration::from_millis(1)).is_err());
    }
}
