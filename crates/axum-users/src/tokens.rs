//! Purpose-bound JSON Web Tokens: each purpose has its own audience, so a token made for one
//! purpose (a reset link) is refused for another (logging in).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Serialize, de::DeserializeOwned};

use crate::secret::Secret;

/// Audience of auth tokens written by the JWT strategy.
pub const AUTH_AUDIENCE: &str = "fastapi-users:auth";
/// Audience of reset-password tokens.
pub const RESET_AUDIENCE: &str = "fastapi-users:reset";
/// Audience of e-mail verification tokens.
pub const VERIFY_AUDIENCE: &str = "fastapi-users:verify";
/// Audience of OAuth `state` tokens.
pub const OAUTH_STATE_AUDIENCE: &str = "fastapi-users:oauth-state";
/// Audience of the one-time login codes of an OAuth redirect.
pub const LOGIN_CODE_AUDIENCE: &str = "axum-users:login-code";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Expired.
    #[error("the token has expired")]
    Expired,
    /// Malformed, badly signed, of another audience or missing a claim.
    #[error("the token is invalid")]
    Invalid,
    /// The key could not be used (a bad PEM, say).
    #[error("the signing key is unusable: {0}")]
    Key(String),
}

/// Signs and checks tokens with one key and algorithm.
#[derive(Clone)]
pub struct JwtCodec {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Keys of earlier secrets, still accepted for decoding during a rotation.
    previous: Vec<DecodingKey>,
}

impl std::fmt::Debug for JwtCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCodec")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl JwtCodec {
    /// HS256 with a shared secret.
    ///
    /// # Errors
    /// [`TokenError::Key`] for an empty secret.
    pub fn hs256(secret: &Secret) -> Result<Self, TokenError> {
        let key_err = |e: jsonwebtoken::errors::Error| TokenError::Key(e.to_string());
        Ok(Self {
            algorithm: Algorithm::HS256,
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()).map_err(key_err)?,
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()).map_err(key_err)?,
            previous: Vec::new(),
        })
    }

    /// Also accepts tokens signed with these earlier HS256 secrets (never signs with them).
    /// An empty secret is skipped.
    pub fn with_previous_secrets(mut self, secrets: &[Secret]) -> Self {
        self.previous = secrets
            .iter()
            .filter_map(|s| DecodingKey::from_secret(s.expose().as_bytes()).ok())
            .collect();
        self
    }

    /// RS256 or ES256 from a PEM private key (to sign) and PEM public key (to check).
    ///
    /// # Errors
    /// [`TokenError::Key`] when a key does not parse or the algorithm is not asymmetric.
    pub fn asymmetric(
        algorithm: Algorithm,
        private_pem: &Secret,
        public_pem: &str,
    ) -> Result<Self, TokenError> {
        let key_err = |e: jsonwebtoken::errors::Error| TokenError::Key(e.to_string());
        let (encoding, decoding) = match algorithm {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => (
                EncodingKey::from_rsa_pem(private_pem.expose().as_bytes()).map_err(key_err)?,
                DecodingKey::from_rsa_pem(public_pem.as_bytes()).map_err(key_err)?,
            ),
            Algorithm::ES256 | Algorithm::ES384 => (
                EncodingKey::from_ec_pem(private_pem.expose().as_bytes()).map_err(key_err)?,
                DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(key_err)?,
            ),
            other => {
                return Err(TokenError::Key(format!(
                    "{other:?} is not an asymmetric algorithm"
                )));
            }
        };
        Ok(Self {
            algorithm,
            encoding,
            decoding,
            previous: Vec::new(),
        })
    }

    /// Signs `claims`.
    ///
    /// # Errors
    /// [`TokenError::Key`] when signing fails.
    pub fn encode<C: Serialize>(&self, claims: &C) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.encoding)
            .map_err(|e| TokenError::Key(e.to_string()))
    }

    /// Checks signature, algorithm, audience (string or array), `exp` (required) and `nbf`
    /// (when present), with no leeway, and decodes the claims.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn decode<C: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<C, TokenError> {
        let mut validation = Validation::new(self.algorithm);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["aud", "exp"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut result = jsonwebtoken::decode::<C>(token, &self.decoding, &validation);
        for key in &self.previous {
            match &result {
                Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature) => {
                    result = jsonwebtoken::decode::<C>(token, key, &validation);
                }
                _ => break,
            }
        }
        result.map(|data| data.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
    }
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sub {
        sub: String,
    }

    fn codec() -> JwtCodec {
        JwtCodec::hs256(&Secret::new("a-test-secret-that-is-long-enough!!")).unwrap()
    }

    #[test]
    fn audience_may_be_a_string_or_an_array() {
        let c = codec();
        let exp = now_unix() + 60;
        for aud in [
            json!("fastapi-users:auth"),
            json!(["fastapi-users:auth"]),
            json!(["x", "fastapi-users:auth"]),
        ] {
            let t = c
                .encode(&json!({"sub": "1", "aud": aud, "exp": exp}))
                .unwrap();
            assert_eq!(c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap().sub, "1");
        }
    }

    #[test]
    fn wrong_or_missing_audience_is_refused() {
        let c = codec();
        let t = c
            .encode(&json!({"sub": "1", "aud": RESET_AUDIENCE, "exp": now_unix() + 60}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
        let t = c
            .encode(&json!({"sub": "1", "exp": now_unix() + 60}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn exp_is_required_and_enforced_without_leeway_and_nbf_is_checked() {
        let c = codec();
        let t = c
            .encode(&json!({"sub": "1", "aud": AUTH_AUDIENCE}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
        let t = c
            .encode(&json!({"sub": "1", "aud": AUTH_AUDIENCE, "exp": now_unix() - 2}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Expired
        );
        let later = now_unix() + 600;
        let t = c
            .encode(&json!({"sub": "1", "aud": AUTH_AUDIENCE, "exp": later + 60, "nbf": later}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn alg_none_and_other_keys_are_refused() {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"1","aud":"{AUTH_AUDIENCE}","exp":{}}}"#,
            now_unix() + 60
        ));
        let c = codec();
        assert!(
            c.decode::<Sub>(&format!("{header}.{body}."), AUTH_AUDIENCE)
                .is_err()
        );
        let other = JwtCodec::hs256(&Secret::new("another-secret-another-secret-0000")).unwrap();
        let t = other
            .encode(&json!({"sub": "1", "aud": AUTH_AUDIENCE, "exp": now_unix() + 60}))
            .unwrap();
        assert_eq!(
            c.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn previous_secrets_still_decode_but_never_sign() {
        let old = Secret::new("the-old-secret-the-old-secret-0000");
        let by_old = JwtCodec::hs256(&old).unwrap();
        let exp = now_unix() + 60;
        let t = by_old
            .encode(&json!({"sub": "1", "aud": AUTH_AUDIENCE, "exp": exp}))
            .unwrap();
        assert_eq!(
            codec().decode::<Sub>(&t, AUTH_AUDIENCE).unwrap_err(),
            TokenError::Invalid
        );
        let rotated = codec().with_previous_secrets(&[old]);
        assert_eq!(rotated.decode::<Sub>(&t, AUTH_AUDIENCE).unwrap().sub, "1");
        let fresh = rotated
            .encode(&json!({"sub": "2", "aud": AUTH_AUDIENCE, "exp": exp}))
            .unwrap();
        assert_eq!(
            codec().decode::<Sub>(&fresh, AUTH_AUDIENCE).unwrap().sub,
            "2"
        );
    }

    #[test]
    fn numeric_sub_is_refused() {
        let c = codec();
        let t = c
            .encode(&json!({"sub": 1, "aud": AUTH_AUDIENCE, "exp": now_unix() + 60}))
            .unwrap();
        assert!(c.decode::<Sub>(&t, AUTH_AUDIENCE).is_err());
    }
}
