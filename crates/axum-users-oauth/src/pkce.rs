//! PKCE (RFC 7636, method S256) and nonce generation from the operating system's CSPRNG.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::secret::PkceVerifier;

/// Bytes of randomness in every generated verifier, nonce or state (256 bits).
const RANDOM_BYTES: usize = 32;

/// A PKCE verifier with its S256 challenge: send the challenge now, the verifier at the code exchange.
#[derive(Debug, Clone)]
pub struct PkcePair {
    /// Kept secret by the client until the token request.
    pub verifier: PkceVerifier,
    /// `BASE64URL(SHA256(verifier))`, sent in the authorization URL.
    pub challenge: String,
}

impl PkcePair {
    /// Generates a fresh verifier (43 characters, 256 bits) and its S256 challenge.
    ///
    /// # Panics
    /// If the operating system's random source fails.
    pub fn generate() -> Self {
        Self::from_verifier(PkceVerifier::new(random_urlsafe()))
    }

    /// Derives the S256 challenge of an existing verifier (for example one restored from a cookie).
    pub fn from_verifier(verifier: PkceVerifier) -> Self {
        let challenge = s256_challenge(&verifier);
        Self {
            verifier,
            challenge,
        }
    }
}

/// The S256 code challenge of a verifier.
pub fn s256_challenge(verifier: &PkceVerifier) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.secret().as_bytes()))
}

/// A fresh OpenID Connect nonce (256 bits, base64url without padding).
///
/// # Panics
/// If the operating system's random source fails.
pub fn generate_nonce() -> String {
    random_urlsafe()
}

/// 256 random bits, base64url without padding (43 characters); also fit for a `state` value.
///
/// # Panics
/// If the operating system's random source fails.
pub fn random_urlsafe() -> String {
    let mut bytes = [0u8; RANDOM_BYTES];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        let verifier = PkceVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            s256_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn generated_values_are_long_random_and_url_safe() {
        let first = PkcePair::generate();
        let second = PkcePair::generate();
        assert_eq!(first.verifier.secret().len(), 43);
        assert_ne!(first.verifier, second.verifier);
        assert_eq!(first.challenge, s256_challenge(&first.verifier));
        let nonce = generate_nonce();
        assert_eq!(nonce.len(), 43);
        assert!(
            nonce
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(nonce, generate_nonce());
    }

    #[test]
    fn debug_of_pair_hides_the_verifier() {
        let pair = PkcePair::from_verifier(PkceVerifier::new("super-secret-verifier"));
        assert!(!format!("{pair:?}").contains("super-secret-verifier"));
    }
}
