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
    /// HS256: the same secrets with their HMAC key schedule done once, for [`hs256::decode`].
    hmac: Option<hs256::Keys>,
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
            hmac: Some(hs256::Keys::new(secret.expose().as_bytes())),
        })
    }

    /// Also accepts tokens signed with these earlier HS256 secrets (never signs with them).
    /// An empty secret is skipped.
    pub fn with_previous_secrets(mut self, secrets: &[Secret]) -> Self {
        self.previous = secrets
            .iter()
            .filter_map(|s| DecodingKey::from_secret(s.expose().as_bytes()).ok())
            .collect();
        if let Some(keys) = &mut self.hmac {
            keys.set_previous(secrets);
        }
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
            hmac: None,
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
    /// (when present), with no leeway, and decodes the claims. Tokens longer than
    /// `MAX_TOKEN_LEN` (8 KiB) are refused unread.
    ///
    /// # Errors
    /// [`TokenError::Expired`] or [`TokenError::Invalid`].
    pub fn decode<C: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<C, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid);
        }
        if let Some(keys) = &self.hmac {
            return hs256::decode(keys, token, audience, now_unix());
        }
        self.decode_with_jsonwebtoken(token, audience)
    }

    /// [`JwtCodec::decode`] through `jsonwebtoken::decode` (the asymmetric algorithms; HS256's
    /// reference in the tests).
    fn decode_with_jsonwebtoken<C: DeserializeOwned>(
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

/// The longest token [`JwtCodec::decode`] reads: ours are a few hundred bytes; a longer one is
/// refused before any base64, JSON or HMAC work is spent on it.
pub(crate) const MAX_TOKEN_LEN: usize = 8 * 1024;

/// HS256 checked here instead of by `jsonwebtoken::decode`, which per token redoes the HMAC key
/// schedule and parses the claims twice, once through serde's buffered `Content` into a
/// validation struct (about 70% of the instructions `GET /users/me` spends above the floor,
/// docs/benchmarks.md). The same rules, in the same order: the algorithm pinned to HS256 before
/// the signature is looked at, the signature compared in constant time (`Mac::verify_slice`),
/// then `exp` (required, a number, no leeway), `nbf` (when present) and the audience (a string
/// or an array holding ours). The claims are read once into the caller's type and once into
/// the few registered claims checked here, both typed, no `serde_json::Value`.
mod hs256 {
    use std::borrow::Cow;
    use std::fmt;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use hmac::{Hmac, Mac};
    use serde::Deserialize;
    use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
    use sha2::Sha256;

    use super::TokenError;
    use crate::secret::Secret;

    /// The current secret's HMAC and the earlier ones', each keyed once.
    #[derive(Clone)]
    pub(super) struct Keys {
        current: Hmac<Sha256>,
        previous: Vec<Hmac<Sha256>>,
    }

    fn keyed(secret: &[u8]) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length")
    }

    impl Keys {
        pub(super) fn new(secret: &[u8]) -> Self {
            Self {
                current: keyed(secret),
                previous: Vec::new(),
            }
        }

        /// As `JwtCodec::with_previous_secrets`: empty secrets are skipped.
        pub(super) fn set_previous(&mut self, secrets: &[Secret]) {
            self.previous = secrets
                .iter()
                .map(|s| s.expose().as_bytes())
                .filter(|s| !s.is_empty())
                .map(keyed)
                .collect();
        }

        /// Whether `signature` is the HMAC of `header.payload` under one of the keys.
        fn verify(&self, header: &str, payload: &str, signature: &[u8]) -> bool {
            std::iter::once(&self.current)
                .chain(&self.previous)
                .any(|key| {
                    let mut mac = key.clone();
                    mac.update(header.as_bytes());
                    mac.update(b".");
                    mac.update(payload.as_bytes());
                    mac.verify_slice(signature).is_ok()
                })
        }
    }

    #[derive(Deserialize)]
    struct Header<'a> {
        #[serde(borrow)]
        alg: Cow<'a, str>,
    }

    /// The registered claims checked here; every other member is skipped.
    #[derive(Deserialize)]
    struct Registered {
        #[serde(default, deserialize_with = "numeric_date")]
        exp: Option<u64>,
        #[serde(default, deserialize_with = "numeric_date")]
        nbf: Option<u64>,
        #[serde(default)]
        aud: Option<Audience>,
    }

    /// `aud`: one string or an array of strings.
    struct Audience(Vec<String>);

    impl<'de> Deserialize<'de> for Audience {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Of;
            impl<'de> Visitor<'de> for Of {
                type Value = Audience;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a string or an array of strings")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                    Ok(Audience(vec![v.to_owned()]))
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut all = Vec::new();
                    while let Some(one) = seq.next_element::<String>()? {
                        all.push(one);
                    }
                    Ok(Audience(all))
                }
            }
            deserializer.deserialize_any(Of)
        }
    }

    /// A NumericDate as jsonwebtoken reads it: a non-negative integer, or a finite
    /// non-negative float rounded; anything else (`null` too) refuses the token.
    fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        struct Of;
        impl Visitor<'_> for Of {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Ok(Some(v.round() as u64))
                } else {
                    Err(E::custom("a NumericDate out of range"))
                }
            }
        }
        deserializer.deserialize_any(Of)
    }

    fn invalid<E>(_: E) -> TokenError {
        TokenError::Invalid
    }

    /// Checks `token` (see the module) and reads its claims as `C`, at `now` (Unix seconds).
    pub(super) fn decode<C: DeserializeOwned>(
        keys: &Keys,
        token: &str,
        audience: &str,
        now: i64,
    ) -> Result<C, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let header_json = URL_SAFE_NO_PAD.decode(header).map_err(invalid)?;
        let alg = serde_json::from_slice::<Header<'_>>(&header_json).map_err(invalid)?;
        if alg.alg != "HS256" {
            return Err(TokenError::Invalid);
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(invalid)?;
        if !keys.verify(header, payload, &signature) {
            return Err(TokenError::Invalid);
        }
        let claims_json = URL_SAFE_NO_PAD.decode(payload).map_err(invalid)?;
        let registered = serde_json::from_slice::<Registered>(&claims_json).map_err(invalid)?;
        // Required first, then expiry, then the rest: jsonwebtoken's order, so that a token
        // gets the same answer from both.
        let (Some(exp), Some(aud)) = (registered.exp, registered.aud) else {
            return Err(TokenError::Invalid);
        };
        let now = u64::try_from(now).unwrap_or(0);
        if exp < now {
            return Err(TokenError::Expired);
        }
        if registered.nbf.is_some_and(|nbf| nbf > now) || !aud.0.iter().any(|a| a == audience) {
            return Err(TokenError::Invalid);
        }
        serde_json::from_slice(&claims_json).map_err(invalid)
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

    const SECRET: &str = "a-test-secret-that-is-long-enough!!";

    /// `header.payload.signature` as written, signed with HMAC-SHA256 under `secret` whatever
    /// the header says: a token only the claim checks can refuse.
    fn signed(header: &str, payload: &str, secret: &str) -> String {
        use base64::Engine;
        use hmac::{Hmac, Mac};
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let message = format!("{}.{}", b64.encode(header), b64.encode(payload));
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        format!("{message}.{}", b64.encode(mac.finalize().into_bytes()))
    }

    /// Tokens of every shape a client could send: well-formed, forged, expired, malformed.
    fn corpus() -> Vec<String> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let hs = r#"{"alg":"HS256","typ":"JWT"}"#;
        let later = now_unix() + 600;
        let past = now_unix() - 5;
        let claims = |extra: &str| format!(r#"{{"sub":"1"{extra}}}"#);
        let aud = format!(r#","aud":"{AUTH_AUDIENCE}""#);
        let good = signed(hs, &claims(&format!("{aud},\"exp\":{later}")), SECRET);
        let mut tampered = good.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        let (message, _) = good.rsplit_once('.').unwrap();
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &json!({"sub": "1", "aud": AUTH_AUDIENCE, "exp": later}),
            &EncodingKey::from_secret(SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        let mut tokens = vec![
            good.clone(),
            signed(
                hs,
                &claims(&format!(r#","aud":["x","{AUTH_AUDIENCE}"],"exp":{later}"#)),
                SECRET,
            ),
            signed(hs, &claims(&format!("{aud},\"exp\":{later}.4")), SECRET),
            signed(
                hs,
                &claims(&format!("{aud},\"exp\":{later},\"nbf\":null")),
                SECRET,
            ),
            signed(
                hs,
                &claims(&format!("{aud},\"exp\":{later},\"extra\":{{\"a\":[1,2]}}")),
                SECRET,
            ),
            // Refused: expiry, audience, nbf, claim formats.
            signed(hs, &claims(&format!("{aud},\"exp\":{past}")), SECRET),
            signed(hs, &claims(&format!(r#","exp":{past}"#)), SECRET),
            signed(hs, &claims(&aud), SECRET),
            signed(hs, &claims(&format!("{aud},\"exp\":null")), SECRET),
            signed(hs, &claims(&format!("{aud},\"exp\":\"{later}\"")), SECRET),
            signed(hs, &claims(&format!("{aud},\"exp\":-1")), SECRET),
            signed(
                hs,
                &claims(&format!(r#","aud":"{RESET_AUDIENCE}","exp":{later}"#)),
                SECRET,
            ),
            signed(hs, &claims(&format!(r#","aud":[],"exp":{later}"#)), SECRET),
            signed(hs, &claims(&format!(r#","aud":[1],"exp":{later}"#)), SECRET),
            signed(
                hs,
                &claims(&format!(r#","aud":{{}},"exp":{later}"#)),
                SECRET,
            ),
            signed(hs, &claims(&format!(r#","exp":{later}"#)), SECRET),
            signed(
                hs,
                &claims(&format!("{aud},\"exp\":{later},\"nbf\":{later}")),
                SECRET,
            ),
            signed(
                hs,
                &claims(&format!("{aud},\"exp\":{later},\"nbf\":\"x\"")),
                SECRET,
            ),
            signed(hs, &format!(r#"{{"sub":1{aud},"exp":{later}}}"#), SECRET),
            signed(
                hs,
                &format!(r#"{{"sub":"1"{aud},"exp":{later},"exp":{later}}}"#),
                SECRET,
            ),
            signed(hs, "not json", SECRET),
            signed(hs, "[]", SECRET),
            // Refused: the algorithm, the key, the signature.
            signed(
                r#"{"alg":"none"}"#,
                &claims(&format!("{aud},\"exp\":{later}")),
                SECRET,
            ),
            signed(
                r#"{"alg":"HS384"}"#,
                &claims(&format!("{aud},\"exp\":{later}")),
                SECRET,
            ),
            signed(
                r#"{"alg":"RS256"}"#,
                &claims(&format!("{aud},\"exp\":{later}")),
                SECRET,
            ),
            signed(
                r#"{"typ":"JWT"}"#,
                &claims(&format!("{aud},\"exp\":{later}")),
                SECRET,
            ),
            signed("{}", &claims(&format!("{aud},\"exp\":{later}")), SECRET),
            signed(
                "not json",
                &claims(&format!("{aud},\"exp\":{later}")),
                SECRET,
            ),
            signed(
                hs,
                &claims(&format!("{aud},\"exp\":{later}")),
                "another-secret-0000",
            ),
            hs384,
            tampered,
            format!("{message}."),
            message.to_owned(),
            format!("{good}.x"),
            format!("{message}.{}", b64.encode([0u8; 32])),
            format!("{message}.{}=", b64.encode([0u8; 31])),
            format!("{good}="),
            format!("={good}"),
            format!("{message}.!!!"),
            String::new(),
            "..".into(),
            "a.b.c".into(),
        ];
        tokens.push(good.replacen('.', "..", 1));
        tokens
    }

    #[test]
    fn hs256_answers_every_token_as_jsonwebtoken_does() {
        let c = codec();
        for token in corpus() {
            let ours = c.decode::<Sub>(&token, AUTH_AUDIENCE).map(|s| s.sub);
            let reference = c
                .decode_with_jsonwebtoken::<Sub>(&token, AUTH_AUDIENCE)
                .map(|s| s.sub);
            assert_eq!(ours, reference, "{token}");
        }
    }

    #[test]
    fn wrong_alg_bad_signature_malformed_and_oversized_tokens_are_refused() {
        let c = codec();
        let later = now_unix() + 600;
        let claims = format!(r#"{{"sub":"1","aud":"{AUTH_AUDIENCE}","exp":{later}}}"#);
        let good = signed(r#"{"alg":"HS256"}"#, &claims, SECRET);
        assert_eq!(c.decode::<Sub>(&good, AUTH_AUDIENCE).unwrap().sub, "1");
        let refused = |token: &str| {
            assert_eq!(
                c.decode::<Sub>(token, AUTH_AUDIENCE).unwrap_err(),
                TokenError::Invalid,
                "{token}"
            );
        };
        refused(&signed(r#"{"alg":"none"}"#, &claims, SECRET));
        refused(&signed(r#"{"alg":"HS512"}"#, &claims, SECRET));
        refused(&signed(r#"{"alg":"hs256"}"#, &claims, SECRET));
        refused(&signed(r#"{"alg":"HS256"}"#, &claims, "not-the-secret"));
        let (message, _) = good.rsplit_once('.').unwrap();
        refused(&format!("{message}."));
        refused(message);
        refused(&format!("{good}.{}", "e30"));
        refused(&format!(".{good}"));
        // Oversized: refused before any work, even when correctly signed.
        let padding = "x".repeat(MAX_TOKEN_LEN);
        let big = signed(
            r#"{"alg":"HS256"}"#,
            &format!(r#"{{"sub":"1","aud":"{AUTH_AUDIENCE}","exp":{later},"pad":"{padding}"}}"#),
            SECRET,
        );
        assert!(big.len() > MAX_TOKEN_LEN);
        refused(&big);
        assert!(
            c.decode_with_jsonwebtoken::<Sub>(&big, AUTH_AUDIENCE)
                .is_ok(),
            "the limit is ours"
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
