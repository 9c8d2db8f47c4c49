//! OpenID Connect id_token validation (Core 1.0 §3.1.3.7) with keys from the provider's JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use subtle::ConstantTimeEq;

use crate::error::IdTokenErrorReason;

/// Signature algorithms accepted for id_tokens: asymmetric only (never `none` or HMAC).
const ACCEPTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Allowed clock skew, in seconds, for `exp`.
const LEEWAY_SECONDS: u64 = 60;

/// How far in the future `iat` may be (clock skew); a later one is refused.
pub(crate) const MAX_IAT_AHEAD_SECONDS: i64 = 5 * 60;

/// What an id_token must match.
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) nonce: Option<&'a str>,
}

/// The validated claims we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdTokenClaims {
    pub(crate) subject: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    sub: Value,
    #[serde(default)]
    aud: Value,
    azp: Option<String>,
    nonce: Option<String>,
    iat: Option<i64>,
    email: Option<String>,
    email_verified: Option<Value>,
}

/// `email_verified` as a boolean; some providers send the string `"true"`.
pub(crate) fn verified_flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Parses a JWKS body, skipping keys we cannot use instead of rejecting the whole set.
pub(crate) fn parse_jwks(body: &Value) -> Vec<Jwk> {
    body.get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(|key| serde_json::from_value::<Jwk>(key.clone()).ok())
                .filter(|key| key.common.public_key_use != Some(PublicKeyUse::Encryption))
                .filter(|key| DecodingKey::from_jwk(key).is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `kid` names no key of the set (the caller may then refresh the JWKS once).
pub(crate) fn has_unknown_kid(token: &str, keys: &[Jwk]) -> bool {
    match jsonwebtoken::decode_header(token) {
        Ok(header) => header.kid.is_some_and(|kid| {
            !keys
                .iter()
                .any(|key| key.common.key_id.as_deref() == Some(&kid))
        }),
        Err(_) => false,
    }
}

/// Validates signature, `iss`, `aud` (and `azp`), `exp` and `nonce`; returns the identity claims.
pub(crate) fn validate(
    token: &str,
    keys: &[Jwk],
    expected: &Expectations<'_>,
) -> Result<IdTokenClaims, IdTokenErrorReason> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| header_failure(token))?;
    if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
        return Err(IdTokenErrorReason::Signature);
    }
    let jwk =
        select_key(keys, header.kid.as_deref(), header.alg).ok_or(IdTokenErrorReason::Signature)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| IdTokenErrorReason::Signature)?;
    if key.family() != header.alg.family() {
        return Err(IdTokenErrorReason::Signature);
    }

    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[expected.issuer]);
    validation.set_audience(&[expected.client_id]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = LEEWAY_SECONDS;
    let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation)
        .map_err(|error| reason_of(error.kind()))?;
    let claims = data.claims;

    // Core §3.1.3.7 (5): with several audiences, azp must be present and be us.
    let several_audiences = claims.aud.as_array().is_some_and(|list| list.len() > 1);
    match claims.azp.as_deref() {
        Some(azp) if azp != expected.client_id => return Err(IdTokenErrorReason::Audience),
        None if several_audiences => return Err(IdTokenErrorReason::Audience),
        _ => {}
    }
    match claims.iat {
        Some(iat) if iat <= crate::token::unix_now().saturating_add(MAX_IAT_AHEAD_SECONDS) => {}
        _ => return Err(IdTokenErrorReason::IssuedAt),
    }
    if let Some(expected_nonce) = expected.nonce {
        let actual = claims.nonce.as_deref().unwrap_or_default();
        if !bool::from(actual.as_bytes().ct_eq(expected_nonce.as_bytes())) {
            return Err(IdTokenErrorReason::Nonce);
        }
    }
    let subject = match claims.sub {
        Value::String(sub) if !sub.is_empty() => sub,
        _ => return Err(IdTokenErrorReason::Malformed),
    };
    let email_verified = verified_flag(claims.email_verified.as_ref());
    Ok(IdTokenClaims {
        subject,
        email: claims.email.filter(|email| !email.is_empty()),
        email_verified,
    })
}

/// The key named by `kid`, else the only key that fits the algorithm.
fn select_key<'k>(keys: &'k [Jwk], kid: Option<&str>, alg: Algorithm) -> Option<&'k Jwk> {
    let fits = |key: &&Jwk| {
        let declared_ok = key
            .common
            .key_algorithm
            .is_none_or(|declared| declared.to_string() == format!("{alg:?}"));
        let family_ok = DecodingKey::from_jwk(key).is_ok_and(|k| k.family() == alg.family());
        declared_ok && family_ok
    };
    match kid {
        Some(kid) => keys
            .iter()
            .filter(|key| key.common.key_id.as_deref() == Some(kid))
            .find(fits),
        None => {
            let mut candidates = keys.iter().filter(fits);
            let only = candidates.next()?;
            candidates.next().is_none().then_some(only)
        }
    }
}

/// Why the header did not parse: an unsigned (`alg: none`) token is a signature failure.
fn header_failure(token: &str) -> IdTokenErrorReason {
    let alg = token
        .split('.')
        .next()
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(_) => IdTokenErrorReason::Signature,
        None => IdTokenErrorReason::Malformed,
    }
}

fn reason_of(kind: &ErrorKind) -> IdTokenErrorReason {
    match kind {
        ErrorKind::ExpiredSignature => IdTokenErrorReason::Expired,
        ErrorKind::InvalidIssuer => IdTokenErrorReason::Issuer,
        ErrorKind::InvalidAudience => IdTokenErrorReason::Audience,
        ErrorKind::MissingRequiredClaim(_) => IdTokenErrorReason::Missing,
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::UnsupportedAlgorithm => IdTokenErrorReason::Signature,
        _ => IdTokenErrorReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    use super::*;
    use crate::token::unix_now;

    /// A throwaway P-256 key made for these tests.
    const TEST_EC_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg+SrN3hWkCxXLtRlb
mUZng6s7J1rLaaBLqnmKY/ZUNgOhRANCAARyLqd/XH75YbvHYPniIhxOOPsNW13u
YNHWSlCA2KJDUw6grzrhg7laa2ZOWzKQPi4QPb4Q6OEm0FIVmPkvyjB4
-----END PRIVATE KEY-----
";

    const ISSUER: &str = "https://idp.example";
    const CLIENT: &str = "client-1";

    fn signing_key() -> EncodingKey {
        EncodingKey::from_ec_pem(TEST_EC_KEY.as_bytes()).expect("test key")
    }

    fn jwks() -> Vec<Jwk> {
        let mut jwk = Jwk::from_encoding_key(&signing_key(), Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        vec![jwk]
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT, "sub": "user-1", "exp": unix_now() + 300,
            "iat": unix_now(), "nonce": "n-1", "email": "a@example.com", "email_verified": true
        })
    }

    fn sign(claims: &Value, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_owned);
        encode(&header, claims, &signing_key()).expect("sign")
    }

    fn check(token: &str, nonce: Option<&str>) -> Result<IdTokenClaims, IdTokenErrorReason> {
        validate(
            token,
            &jwks(),
            &Expectations {
                issuer: ISSUER,
                client_id: CLIENT,
                nonce,
            },
        )
    }

    #[test]
    fn valid_token_gives_the_claims() {
        let claims = check(&sign(&claims(), Some("k1")), Some("n-1")).expect("valid");
        assert_eq!(claims.subject, "user-1");
        assert_eq!(claims.email.as_deref(), Some("a@example.com"));
        assert!(claims.email_verified);
        // Without kid, the only fitting key is used; without expected nonce, none is checked.
        assert!(check(&sign(&claims_with("nonce", json!(null)), None), None).is_ok());
    }

    fn claims_with(name: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[name] = value;
        claims
    }

    #[test]
    fn each_failure_has_its_reason() {
        use IdTokenErrorReason::*;
        let cases = [
            (claims_with("iss", json!("https://evil.example")), Issuer),
            (claims_with("aud", json!("other-client")), Audience),
            (claims_with("aud", json!([CLIENT, "other"])), Audience),
            (claims_with("azp", json!("other")), Audience),
            (claims_with("exp", json!(unix_now() - 3600)), Expired),
            (claims_with("nonce", json!("n-2")), Nonce),
        ];
        for (claims, reason) in cases {
            assert_eq!(
                check(&sign(&claims, Some("k1")), Some("n-1")),
                Err(reason),
                "{claims}"
            );
        }
        let mut no_sub = claims();
        no_sub.as_object_mut().expect("object").remove("sub");
        assert_eq!(check(&sign(&no_sub, Some("k1")), None), Err(Missing));
        assert_eq!(check("not-a-jwt", None), Err(Malformed));
    }

    #[test]
    fn bad_signature_unknown_kid_hmac_and_none_are_refused() {
        let token = sign(&claims(), Some("k1"));
        let (head, signature) = token.rsplit_once('.').expect("jwt");
        let flipped = if signature.starts_with('A') { "B" } else { "A" };
        let tampered = format!("{head}.{flipped}{}", &signature[1..]);
        assert_eq!(check(&tampered, None), Err(IdTokenErrorReason::Signature));
        assert_eq!(
            check(&sign(&claims(), Some("k2")), None),
            Err(IdTokenErrorReason::Signature)
        );
        assert!(has_unknown_kid(&sign(&claims(), Some("k2")), &jwks()));
        assert!(!has_unknown_kid(&token, &jwks()));

        let hmac = encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"shared").expect("hmac key"),
        )
        .expect("sign");
        assert_eq!(check(&hmac, None), Err(IdTokenErrorReason::Signature));

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert_eq!(
            check(&format!("{none_header}.{payload}."), None),
            Err(IdTokenErrorReason::Signature)
        );
    }

    #[test]
    fn jwks_parsing_skips_unusable_keys() {
        let good = serde_json::to_value(&jwks()[0]).expect("json");
        let body = json!({"keys": [good, {"kty": "weird"}, {"kty":"RSA","use":"enc","n":"AQAB","e":"AQAB"}]});
        assert_eq!(parse_jwks(&body).len(), 1);
        assert!(parse_jwks(&json!({})).is_empty());
    }

    #[test]
    fn verified_flag_accepts_bool_and_string() {
        assert!(verified_flag(Some(&json!(true))));
        assert!(verified_flag(Some(&json!("true"))));
        assert!(!verified_flag(Some(&json!(false))));
        assert!(!verified_flag(None));
    }
}
