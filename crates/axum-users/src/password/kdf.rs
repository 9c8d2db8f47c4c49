//! The key-derivation functions themselves: Argon2id hashing into a reused buffer, verification of
//! Argon2 (any variant and parameters) and bcrypt hashes, and the PHC string format.
//!
//! Everything here is blocking CPU work; it runs on the hashing threads only.

use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;

use super::{Argon2Params, PasswordError, Verified};
use crate::model::PasswordHash;
use crate::secret::{constant_time_eq, fill_random};

/// Hashes whose memory cost is above this are refused rather than computed (4 GiB).
pub(super) const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;

/// The costliest stored hash that is still verified, whoever wrote it: a row written with
/// `t=4294967295` or `$2b$31$` would hold a hashing thread for hours at each login naming it.
/// Above these (and above the configured parameters, which always pass) the hash is not
/// computed. FastAPI Users' pwdlib default (`m=65536,t=3,p=4`) and bcrypt 12 are well inside.
const LEGACY_MAX_MEMORY_KIB: u32 = 256 * 1024;
const LEGACY_MAX_ITERATIONS: u32 = 10;
const LEGACY_MAX_PARALLELISM: u32 = 16;
/// Memory times passes, in KiB: 1 GiB of block writes, some 50 times the default's.
const LEGACY_MAX_WORK: u64 = 1024 * 1024;
const LEGACY_MAX_BCRYPT_COST: u32 = 14;
/// bcrypt's own minimum: a lower cost is a malformed hash, which nothing verifies.
const LEGACY_MIN_BCRYPT_COST: u32 = 4;
const SALT_LEN: usize = 16;
const HASH_LEN: usize = 32;

/// The Argon2 blocks of one hash at `params`: the size a hashing thread keeps its buffer at.
pub(super) fn blocks_for(params: Argon2Params) -> usize {
    argon2_params(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        HASH_LEN,
    )
    .map_or(0, |p| p.block_count())
}

fn argon2_params(m: u32, t: u32, p: u32, len: usize) -> Result<Params, PasswordError> {
    Params::new(m, t, p, Some(len)).map_err(|e| PasswordError::Params(e.to_string()))
}

pub(super) fn hash_argon2id(
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

pub(super) fn verify_and_update(
    password: &str,
    hash: &str,
    current: Argon2Params,
    memory: &mut Vec<Block>,
) -> Result<Verified, PasswordError> {
    let matches_and_current = if let Some(phc) = ArgonPhc::parse(hash) {
        if !phc.cost_acceptable(current) {
            tracing::warn!(
                "a stored Argon2 hash costs more than the ceiling; the login is refused"
            );
            return refused_at_current_cost(password, current, memory);
        }
        let Ok(params) = argon2_params(
            phc.memory_kib,
            phc.iterations,
            phc.parallelism,
            phc.hash.len(),
        ) else {
            return refused_at_current_cost(password, current, memory);
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
        is_current(hash, current)
    } else if let Some(cost) = bcrypt_cost(hash) {
        if cost > LEGACY_MAX_BCRYPT_COST {
            tracing::warn!(
                "a stored bcrypt hash costs more than the ceiling; the login is refused"
            );
            return refused_at_current_cost(password, current, memory);
        }
        // bcrypt only reads 72 bytes; a longer password never matched when it was set here.
        if password.len() > 72 {
            return refused_at_current_cost(password, current, memory);
        }
        match bcrypt::verify(password, hash) {
            Ok(true) => {}
            Ok(false) => return Ok(Verified::No),
            // A malformed hash or a cost under 4 checks nothing: still one current hash.
            Err(_) => return refused_at_current_cost(password, current, memory),
        }
        false
    } else {
        tracing::warn!("a stored password hash is of an unknown kind; the login is refused");
        return refused_at_current_cost(password, current, memory);
    };
    if matches_and_current {
        Ok(Verified::Yes)
    } else {
        Ok(Verified::YesRehash(hash_argon2id(
            password, current, memory,
        )?))
    }
}

/// A refusal that checked nothing still costs one hash at the current parameters, what an
/// unknown e-mail costs: the answer's timing does not tell such an account from none.
fn refused_at_current_cost(
    password: &str,
    current: Argon2Params,
    memory: &mut Vec<Block>,
) -> Result<Verified, PasswordError> {
    hash_argon2id(password, current, memory).map(|_| Verified::No)
}

/// Whether `hash` is what [`hash_argon2id`] writes at `current`.
pub(super) fn is_current(hash: &str, current: Argon2Params) -> bool {
    ArgonPhc::parse(hash).is_some_and(|phc| {
        phc.algorithm == Algorithm::Argon2id
            && phc.version == Version::V0x13
            && phc.memory_kib == current.memory_kib
            && phc.iterations == current.iterations
            && phc.parallelism == current.parallelism
            && phc.hash.len() == HASH_LEN
    })
}

/// Whether `hash` is of a kind verified here, at a cost under the ceiling (or at `current`):
/// what a login would compute rather than refuse.
pub(super) fn verifiable(hash: &str, current: Argon2Params) -> bool {
    if let Some(phc) = ArgonPhc::parse(hash) {
        phc.cost_acceptable(current)
            && argon2_params(
                phc.memory_kib,
                phc.iterations,
                phc.parallelism,
                phc.hash.len(),
            )
            .is_ok()
    } else {
        bcrypt_cost(hash)
            .is_some_and(|cost| (LEGACY_MIN_BCRYPT_COST..=LEGACY_MAX_BCRYPT_COST).contains(&cost))
    }
}

/// The cost of a bcrypt hash (`$2b$12$` + 53 characters), or `None` when it is not one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let b = hash.as_bytes();
    let shaped = hash.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$';
    shaped.then(|| u32::from(b[4] - b'0') * 10 + u32::from(b[5] - b'0'))
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
    /// At or under the configured parameters, or under every legacy ceiling.
    fn cost_acceptable(&self, current: Argon2Params) -> bool {
        let at_most_current = self.memory_kib <= current.memory_kib
            && self.iterations <= current.iterations
            && self.parallelism <= current.parallelism;
        let under_ceiling = self.memory_kib <= LEGACY_MAX_MEMORY_KIB
            && self.iterations <= LEGACY_MAX_ITERATIONS
            && self.parallelism <= LEGACY_MAX_PARALLELISM
            && u64::from(self.memory_kib) * u64::from(self.iterations) <= LEGACY_MAX_WORK;
        (at_most_current || under_ceiling) && self.memory_kib <= MAX_MEMORY_KIB
    }

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
