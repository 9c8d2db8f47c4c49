//! Password hashing: Argon2id for new hashes, verification of older Argon2 and bcrypt hashes with
//! a transparent rehash, all off the async threads behind a bound.
//!
//! Hashing runs in `spawn_blocking`, at most one job per core at a time, and reuses its Argon2
//! memory between jobs: an unbounded number of concurrent 19 MiB hashes would starve the runtime
//! and let the allocator keep hundreds of megabytes.

use std::sync::{Arc, Mutex};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use tokio::sync::Semaphore;

use crate::model::PasswordHash;
use crate::secret::{constant_time_eq, fill_random};

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
        if self.memory_kib > MAX_MEMORY_KIB {
            return Err(format!("memory_kib must be at most {MAX_MEMORY_KIB}"));
        }
        Ok(())
    }
}

/// Hashes whose memory cost is above this are refused rather than computed (4 GiB).
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// Errors of the hashing machinery itself (never a wrong password, which is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The parameters are out of Argon2's range.
    #[error("invalid Argon2 parameters: {0}")]
    Params(String),
    /// The blocking task panicked or was cancelled.
    #[error("the hashing task failed")]
    TaskFailed,
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// The password does not match (or the hash is of an unknown kind).
    No,
    /// It matches and the hash is current.
    Yes,
    /// It matches, and this fresh hash should replace the stored one (legacy kind or parameters).
    YesRehash(PasswordHash),
}

/// Hashes and verifies passwords on a bounded blocking pool.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Argon2Params,
    permits: Arc<Semaphore>,
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    dummy: Arc<tokio::sync::OnceCell<PasswordHash>>,
    verifications: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with these parameters, running at most one hash per core at a time.
    ///
    /// # Errors
    /// [`PasswordError::Params`] when the parameters are out of range.
    pub fn new(params: Argon2Params) -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_concurrency(params, cores)
    }

    /// Like [`PasswordHasher::new`] with an explicit bound on concurrent hashes.
    ///
    /// # Errors
    /// [`PasswordError::Params`] when the parameters are out of range.
    pub fn with_concurrency(
        params: Argon2Params,
        concurrency: usize,
    ) -> Result<Self, PasswordError> {
        params.validate().map_err(PasswordError::Params)?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::new(Mutex::new(Vec::new())),
            dummy: Arc::new(tokio::sync::OnceCell::new()),
            verifications: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        })
    }

    /// The configured parameters.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// How many verifications this hasher has run (for metrics, and to show that every login
    /// attempt costs one, whoever it names).
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hashes a password with Argon2id at the configured parameters.
    ///
    /// # Errors
    /// [`PasswordError`] when the blocking task fails.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash, PasswordError> {
        let password = password.to_owned();
        let params = self.params;
        self.run(move |memory| hash_argon2id(&password, params, memory))
            .await?
    }

    /// Checks a password against a stored hash and says whether it should be rehashed.
    ///
    /// # Errors
    /// [`PasswordError`] when the blocking task fails; a wrong password is `Ok(Verified::No)`.
    pub async fn verify(
        &self,
        password: &str,
        hash: &PasswordHash,
    ) -> Result<Verified, PasswordError> {
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let password = password.to_owned();
        let hash = hash.0.clone();
        let params = self.params;
        self.run(move |memory| verify_and_update(&password, &hash, params, memory))
            .await?
    }

    /// Spends the time of one verification against a hash of the current parameters, so that
    /// an unknown user costs what a wrong password costs.
    ///
    /// # Errors
    /// [`PasswordError`] when the blocking task fails.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), PasswordError> {
        let dummy = self
            .dummy
            .get_or_try_init(|| async { self.hash(&crate::secret::random_token(16)).await })
            .await?
            .clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::TaskFailed)?;
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let mut memory = pool
                .lock()
                .map(|mut p| p.pop().unwrap_or_default())
                .unwrap_or_default();
            let out = job(&mut memory);
            if let Ok(mut p) = pool.lock() {
                p.push(memory);
            }
            out
        })
        .await
        .map_err(|_| PasswordError::TaskFailed)
    }
}

fn argon2_params(m: u32, t: u32, p: u32, len: usize) -> Result<Params, PasswordError> {
    Params::new(m, t, p, Some(len)).map_err(|e| PasswordError::Params(e.to_string()))
}

fn hash_argon2id(
    password: &str,
    params: Argon2Params,
    memory: &mut Vec<Block>,
) -> Result<PasswordHash, PasswordError> {
    let mut salt = [0u8; SALT_LEN];
    fill_random(&mut salt);
    let p = argon2_params(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        HASH_LEN,
    )?;
    let mut out = [0u8; HASH_LEN];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        p,
        password,
        &salt,
        &mut out,
        memory,
    )?;
    Ok(PasswordHash(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        B64.encode(salt),
        B64.encode(out)
    )))
}

fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<(), PasswordError> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..blocks])
        .map_err(|e| PasswordError::Params(e.to_string()))
}

fn verify_and_update(
    password: &str,
    hash: &str,
    current: Argon2Params,
    memory: &mut Vec<Block>,
) -> Result<Verified, PasswordError> {
    let matches_and_current = if let Some(phc) = ArgonPhc::parse(hash) {
        if phc.memory_kib > MAX_MEMORY_KIB {
            return Ok(Verified::No);
        }
        let Ok(params) = argon2_params(
            phc.memory_kib,
            phc.iterations,
            phc.parallelism,
            phc.hash.len(),
        ) else {
            return Ok(Verified::No);
        };
        let mut out = vec![0u8; phc.hash.len()];
        if compute(
            phc.algorithm,
            phc.version,
            params,
            password,
            &phc.salt,
            &mut out,
            memory,
        )
        .is_err()
        {
            return Ok(Verified::No);
        }
        if !constant_time_eq(&out, &phc.hash) {
            return Ok(Verified::No);
        }
        phc.algorithm == Algorithm::Argon2id
            && phc.version == Version::V0x13
            && phc.memory_kib == current.memory_kib
            && phc.iterations == current.iterations
            && phc.parallelism == current.parallelism
            && phc.hash.len() == HASH_LEN
    } else if is_bcrypt(hash) {
        // bcrypt only reads 72 bytes; a longer password never matched when it was set here.
        if password.len() > 72 || !bcrypt::verify(password, hash).unwrap_or(false) {
            return Ok(Verified::No);
        }
        false
    } else {
        tracing::warn!("a stored password hash is of an unknown kind; the login is refused");
        return Ok(Verified::No);
    };
    if matches_and_current {
        Ok(Verified::Yes)
    } else {
        Ok(Verified::YesRehash(hash_argon2id(
            password, current, memory,
        )?))
    }
}

fn is_bcrypt(hash: &str) -> bool {
    let b = hash.as_bytes();
    hash.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// The parts of an Argon2 PHC string: `$argon2id$v=19$m=..,t=..,p=..$salt$hash`.
struct ArgonPhc {
    algorithm: Algorithm,
    version: Version,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl ArgonPhc {
    fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('$');
        if !parts.next()?.is_empty() {
            return None;
        }
        let algorithm = match parts.next()? {
            "argon2id" => Algorithm::Argon2id,
            "argon2i" => Algorithm::Argon2i,
            "argon2d" => Algorithm::Argon2d,
            _ => return None,
        };
        let mut field = parts.next()?;
        let mut version = Version::V0x10;
        if let Some(v) = field.strip_prefix("v=") {
            version = match v {
                "19" => Version::V0x13,
                "16" => Version::V0x10,
                _ => return None,
            };
            field = parts.next()?;
        }
        let (mut m, mut t, mut p) = (None, None, None);
        for kv in field.split(',') {
            let (k, v) = kv.split_once('=')?;
            let v: u32 = v.parse().ok()?;
            match k {
                "m" => m = Some(v),
                "t" => t = Some(v),
                "p" => p = Some(v),
                _ => return None,
            }
        }
        let salt = B64.decode(parts.next()?).ok()?;
        let hash = B64.decode(parts.next()?).ok()?;
        if parts.next().is_some() || hash.len() < 4 {
            return None;
        }
        Some(Self {
            algorithm,
            version,
            memory_kib: m?,
            iterations: t?,
            parallelism: p?,
            salt,
            hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    async fn argon2_reference_vector_verifies() {
        // A hash made by argon2-cffi (the reference's default parameters m=65536,t=3,p=4) would be
        // slow in a unit test; this one is made by another implementation at small parameters.
        let hasher = PasswordHasher::new(fast()).unwrap();
        let mut memory = Vec::new();
        let other = hash_argon2id(
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
}
