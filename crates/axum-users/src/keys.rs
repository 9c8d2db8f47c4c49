//! The server's keys: one configured secret (and the ones it replaced), and a sub-key derived
//! from it for every purpose that is ours alone, so that no two purposes share a key.
//!
//! The auth JWT is the exception: it is signed with the configured secret itself (HS256), so
//! that tokens of a FastAPI Users deployment with the same secret keep working.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::{Secret, fill_random};
use crate::tokens::{JwtCodec, TokenError};

/// What a derived key is for; each gives a different key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(feature = "oauth"), allow(dead_code))] // the OAuth purposes
pub(crate) enum Purpose {
    /// Reset-password tokens.
    Reset,
    /// The password fingerprint inside reset tokens.
    PasswordFingerprint,
    /// E-mail verification tokens.
    Verify,
    /// OAuth `state` tokens.
    OAuthState,
    /// The keyed hash of the CSRF cookie inside the state.
    OAuthCsrf,
    /// PKCE verifiers and OIDC nonces derived from the CSRF cookie.
    OAuthDerivation,
    /// One-time login codes after an OAuth redirect.
    LoginCode,
    /// Encryption of provider tokens at rest.
    ProviderTokens,
    /// Encryption of queued mail (with its links' tokens) at rest.
    MailOutbox,
    /// E-mail change confirmation tokens (`email_change.rs`).
    EmailChange,
    /// The keyed names of rate-limit counters in a shared store (`limits::CounterKeys`).
    CounterKeys,
    /// Encryption of TOTP secrets at rest (`mfa/`).
    TotpSecret,
    /// The keyed hashes of recovery codes.
    RecoveryCode,
    /// The keyed hashes of mfa tokens (pending second-factor sign-ins).
    MfaToken,
    /// The keyed hashes of passkey ceremony handles (`passkeys/`).
    PasskeyChallenge,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Reset => b"axum-users/reset-token/v1",
            Purpose::PasswordFingerprint => b"axum-users/password-fingerprint/v1",
            Purpose::Verify => b"axum-users/verify-token/v1",
            Purpose::OAuthState => b"axum-users/oauth-state/v1",
            Purpose::OAuthCsrf => b"axum-users/oauth-csrf/v1",
            Purpose::OAuthDerivation => b"axum-users/oauth-derivation/v1",
            Purpose::LoginCode => b"axum-users/login-code/v1",
            Purpose::ProviderTokens => b"axum-users/provider-tokens/v1",
            Purpose::MailOutbox => b"axum-users/mail-outbox/v1",
            Purpose::EmailChange => b"axum-users/email-change/v1",
            Purpose::CounterKeys => b"axum-users/counter-keys/v1",
            Purpose::TotpSecret => b"axum-users/totp-secret/v1",
            Purpose::RecoveryCode => b"axum-users/recovery-code/v1",
            Purpose::MfaToken => b"axum-users/mfa-token/v1",
            Purpose::PasskeyChallenge => b"axum-users/passkey-challenge/v1",
        }
    }
}

/// The configured secret, the secrets it replaced (still accepted while tokens they signed
/// live), and the sub-keys of both.
#[derive(Clone)]
pub(crate) struct KeyRing {
    current: Secret,
    previous: Vec<Secret>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyRing([redacted])")
    }
}

impl KeyRing {
    pub(crate) fn new(current: Secret, previous: Vec<Secret>) -> Self {
        Self { current, previous }
    }

    /// HKDF-SHA256 of `secret` for `purpose`, as 32 bytes.
    fn derive(secret: &Secret, purpose: Purpose) -> [u8; 32] {
        let mut out = [0u8; 32];
        let hk = Hkdf::<Sha256>::new(Some(b"axum-users"), secret.expose().as_bytes());
        #[allow(clippy::expect_used)]
        hk.expand(purpose.info(), &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    fn sub_secret(secret: &Secret, purpose: Purpose) -> Secret {
        Secret::new(B64.encode(Self::derive(secret, purpose)))
    }

    /// The current sub-key of `purpose`.
    pub(crate) fn sub_key(&self, purpose: Purpose) -> Secret {
        Self::sub_secret(&self.current, purpose)
    }

    /// HS256 tokens of `purpose`: signed with the current sub-key, checked against the
    /// previous secrets' sub-keys too.
    pub(crate) fn codec(&self, purpose: Purpose) -> Result<JwtCodec, TokenError> {
        let previous: Vec<Secret> = self
            .previous
            .iter()
            .map(|s| Self::sub_secret(s, purpose))
            .collect();
        Ok(JwtCodec::hs256(&self.sub_key(purpose))?.with_previous_secrets(&previous))
    }

    /// The auth JWT codec: the configured secret itself, previous secrets accepted.
    pub(crate) fn auth_codec(&self) -> Result<JwtCodec, TokenError> {
        Ok(JwtCodec::hs256(&self.current)?.with_previous_secrets(&self.previous))
    }

    /// HMAC-SHA256 under the current sub-key of `purpose` over `parts` (each length-prefixed,
    /// so that no two different lists give the same input), base64url.
    pub(crate) fn mac(&self, purpose: Purpose, parts: &[&[u8]]) -> String {
        B64.encode(hmac(&Self::derive(&self.current, purpose), parts))
    }

    /// Encrypts `plaintext` with AES-256-GCM under the sub-key of `purpose`: `v1.` + base64url
    /// of a random 96-bit nonce and the ciphertext.
    pub(crate) fn encrypt(&self, purpose: Purpose, plaintext: &str) -> String {
        let cipher = Aes256Gcm::new(&Self::derive(&self.current, purpose).into());
        let mut nonce = [0u8; 12];
        fill_random(&mut nonce);
        #[allow(clippy::expect_used)]
        let sealed = cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .expect("AES-GCM encryption of a short string cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{ENCRYPTED_PREFIX}{}", B64.encode(out))
    }

    /// Decrypts what [`KeyRing::encrypt`] made, with the current or a previous secret. A value
    /// without the prefix was stored in clear by an earlier release and is returned as it is.
    pub(crate) fn decrypt(&self, purpose: Purpose, stored: &str) -> Option<String> {
        let Some(encoded) = stored.strip_prefix(ENCRYPTED_PREFIX) else {
            return Some(stored.to_owned());
        };
        let bytes = B64.decode(encoded).ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(12);
        std::iter::once(&self.current)
            .chain(&self.previous)
            .find_map(|secret| {
                let cipher = Aes256Gcm::new(&Self::derive(secret, purpose).into());
                cipher.decrypt(Nonce::from_slice(nonce), sealed).ok()
            })
            .and_then(|plain| String::from_utf8(plain).ok())
    }
}

/// Marks a value encrypted by [`KeyRing::encrypt`].
const ENCRYPTED_PREFIX: &str = "v1.";

/// HMAC-SHA256 over length-prefixed parts.
pub(crate) fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(Secret::new("s".repeat(32)), vec![])
    }

    #[test]
    fn every_purpose_has_its_own_key_and_none_is_the_secret() {
        let r = ring();
        let all = [
            Purpose::Reset,
            Purpose::PasswordFingerprint,
            Purpose::Verify,
            Purpose::OAuthState,
            Purpose::OAuthCsrf,
            Purpose::OAuthDerivation,
            Purpose::LoginCode,
            Purpose::ProviderTokens,
            Purpose::MailOutbox,
            Purpose::EmailChange,
            Purpose::TotpSecret,
            Purpose::RecoveryCode,
            Purpose::MfaToken,
            Purpose::PasskeyChallenge,
        ];
        let keys: std::collections::HashSet<String> = all
            .iter()
            .map(|p| r.sub_key(*p).expose().to_owned())
            .collect();
        assert_eq!(keys.len(), all.len());
        assert!(!keys.contains(&"s".repeat(32)));
    }

    #[test]
    fn a_token_of_one_purpose_is_refused_for_another() {
        let r = ring();
        let claims = serde_json::json!({"sub": "1", "aud": "x", "exp": crate::now_unix() + 60});
        let t = r.codec(Purpose::Reset).unwrap().encode(&claims).unwrap();
        let verify = r.codec(Purpose::Verify).unwrap();
        assert!(verify.decode::<serde_json::Value>(&t, "x").is_err());
        assert!(
            r.codec(Purpose::Reset)
                .unwrap()
                .decode::<serde_json::Value>(&t, "x")
                .is_ok()
        );
    }

    #[test]
    fn mac_parts_are_unambiguous() {
        let r = ring();
        assert_ne!(
            r.mac(Purpose::OAuthCsrf, &[b"ab", b"c"]),
            r.mac(Purpose::OAuthCsrf, &[b"a", b"bc"])
        );
    }

    #[test]
    fn encryption_round_trips_hides_the_value_and_survives_rotation() {
        let r = ring();
        let sealed = r.encrypt(Purpose::ProviderTokens, "gho_secret");
        assert!(!sealed.contains("gho_secret"));
        assert_ne!(sealed, r.encrypt(Purpose::ProviderTokens, "gho_secret"));
        assert_eq!(
            r.decrypt(Purpose::ProviderTokens, &sealed).as_deref(),
            Some("gho_secret")
        );
        assert_eq!(
            r.decrypt(Purpose::Reset, &sealed),
            None,
            "another purpose's key fails"
        );
        let rotated = KeyRing::new(
            Secret::new("t".repeat(32)),
            vec![Secret::new("s".repeat(32))],
        );
        assert_eq!(
            rotated.decrypt(Purpose::ProviderTokens, &sealed).as_deref(),
            Some("gho_secret")
        );
        assert_eq!(
            r.decrypt(Purpose::ProviderTokens, "legacy-clear")
                .as_deref(),
            Some("legacy-clear")
        );
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert_eq!(r.decrypt(Purpose::ProviderTokens, &tampered), None);
    }
}
