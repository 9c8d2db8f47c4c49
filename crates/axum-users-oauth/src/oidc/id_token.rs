//! OpenID Connect id_token validation (Core 1.0 §3.1.3.7) on `openidconnect`'s verifier, with the
//! checks it leaves to the client installed here: the algorithm list, `iat`, clock skew, `azp`.

use std::str::FromStr as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{TimeDelta, Utc};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IssuerUrl, JsonWebKey as _, Nonce,
    SignatureVerificationError,
};
use serde_json::Value;

use crate::error::IdTokenErrorReason;

/// Signature algorithms accepted for id_tokens, whatever discovery advertises: asymmetric only
/// (never `none`, never HMAC keyed with the client secret).
const ACCEPTED_ALGORITHMS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Allowed clock skew, in seconds, for `exp`.
const LEEWAY_SECONDS: i64 = 60;

/// How far in the future `iat` may be (clock skew); a later one is refused.
pub(crate) const MAX_IAT_AHEAD_SECONDS: i64 = 5 * 60;

/// The message our `iat` check gives `openidconnect`, which reports it as `Expired(message)`.
const IAT_IN_FUTURE: &str = "iat is too far in the future";

/// Claims an id_token must carry (Core §2); a token without one is `Missing`.
const REQUIRED_CLAIMS: [&str; 5] = ["iss", "sub", "aud", "exp", "iat"];

/// What an id_token must match.
pub(crate) struct Expectations<'a> {
    pub(crate) issuer: &'a IssuerUrl,
    pub(crate) client_id: &'a str,
    pub(crate) nonce: Option<&'a str>,
}

/// The validated claims we use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct IdTokenClaims {
    pub(crate) subject: String,
    pub(crate) email: Option<String>,
    pub(crate) email_verified: bool,
    /// Every claim of the (validated) token, for the profile.
    pub(crate) all: Value,
}

/// `email_verified` as a boolean; some providers send the string `"true"`.
pub(crate) fn verified_flag(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Whether the token's `kid` names no key of the set (the caller may then refresh the JWKS once).
/// A token without `kid`, or one whose header does not parse, is not "unknown".
pub(crate) fn has_unknown_kid(token: &str, keys: &CoreJsonWebKeySet) -> bool {
    let Some(kid) = header(token).and_then(|h| h.get("kid")?.as_str().map(str::to_owned)) else {
        return false;
    };
    !keys
        .keys()
        .iter()
        .any(|key| key.key_id().is_some_and(|id| id.as_str() == kid))
}

/// Validates, in `openidconnect`'s order: header (`typ`), `iss`, `aud`, algorithm, signature,
/// `exp` (with skew), `iat`, `nonce`; then `azp` and `sub` here. Returns the identity claims.
pub(crate) fn validate(
    token: &str,
    keys: &CoreJsonWebKeySet,
    expected: &Expectations<'_>,
) -> Result<IdTokenClaims, IdTokenErrorReason> {
    let id_token = CoreIdToken::from_str(token).map_err(|_| parse_failure(token))?;
    let verifier = verifier(keys, expected);
    let verified = match expected.nonce {
        Some(nonce) => id_token.claims(&verifier, &Nonce::new(nonce.to_owned())),
        None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
    };
    let claims = verified.map_err(|error| reason_of(&error))?;

    // Core §3.1.3.7 (4, 5): with several audiences azp must be present, and azp must be us.
    let several_audiences = claims.audiences().len() > 1;
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != expected.client_id => {
            return Err(IdTokenErrorReason::Audience);
        }
        None if several_audiences => return Err(IdTokenErrorReason::Audience),
        _ => {}
    }
    let subject = claims.subject().as_str();
    if subject.is_empty() {
        return Err(IdTokenErrorReason::Malformed);
    }
    let email = claims
        .email()
        .map(|email| email.as_str().to_owned())
        .filter(|email| !email.is_empty());
    Ok(IdTokenClaims {
        subject: subject.to_owned(),
        email_verified: email.is_some() && claims.email_verified() == Some(true),
        email,
        all: payload(token).unwrap_or_default(),
    })
}

/// The verifier of a public client (no client secret, so no HMAC key), with our algorithms,
/// `exp` skew and `iat` check. Other audiences are accepted here because `validate` then
/// requires `azp` to name us.
fn verifier<'a>(keys: &CoreJsonWebKeySet, expected: &Expectations<'_>) -> CoreIdTokenVerifier<'a> {
    CoreIdTokenVerifier::new_public_client(
        ClientId::new(expected.client_id.to_owned()),
        expected.issuer.clone(),
        keys.clone(),
    )
    .set_allowed_algs(ACCEPTED_ALGORITHMS)
    .set_other_audience_verifier_fn(|_| true)
    // `exp` is compared with this time: a minute of skew.
    .set_time_fn(|| Utc::now() - TimeDelta::seconds(LEEWAY_SECONDS))
    .set_issue_time_verifier_fn(|issued_at| {
        if issued_at > Utc::now() + TimeDelta::seconds(MAX_IAT_AHEAD_SECONDS) {
            Err(IAT_IN_FUTURE.to_owned())
        } else {
            Ok(())
        }
    })
}

/// The decoded claims of a token whose signature was checked.
fn payload(token: &str) -> Option<Value> {
    let part = token.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// The decoded JOSE header, if the token has one.
fn header(token: &str) -> Option<Value> {
    let part = token.split('.').next()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
}

/// Why a token did not parse: a missing required claim, an algorithm we refuse, or garbage.
fn parse_failure(token: &str) -> IdTokenErrorReason {
    let refused_alg = header(token)
        .and_then(|h| h.get("alg")?.as_str().map(str::to_owned))
        .is_some_and(|alg| alg == "none" || alg.starts_with("HS"));
    if refused_alg {
        return IdTokenErrorReason::Signature;
    }
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|part| URL_SAFE_NO_PAD.decode(part).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    match payload {
        Some(Value::Object(claims)) if REQUIRED_CLAIMS.iter().any(|c| !claims.contains_key(*c)) => {
            IdTokenErrorReason::Missing
        }
        _ => IdTokenErrorReason::Malformed,
    }
}

fn reason_of(error: &ClaimsVerificationError) -> IdTokenErrorReason {
    match error {
        ClaimsVerificationError::Expired(message) if message == IAT_IN_FUTURE => {
            IdTokenErrorReason::IssuedAt
        }
        ClaimsVerificationError::Expired(_) => IdTokenErrorReason::Expired,
        ClaimsVerificationError::InvalidIssuer(_) => IdTokenErrorReason::Issuer,
        ClaimsVerificationError::InvalidAudience(_) => IdTokenErrorReason::Audience,
        ClaimsVerificationError::InvalidNonce(_) => IdTokenErrorReason::Nonce,
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::Other(_)) => {
            IdTokenErrorReason::Malformed
        }
        ClaimsVerificationError::SignatureVerification(_) => IdTokenErrorReason::Signature,
        _ => IdTokenErrorReason::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
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

    fn jwks() -> CoreJsonWebKeySet {
        let mut jwk = Jwk::from_encoding_key(&signing_key(), Algorithm::ES256).expect("jwk");
        jwk.common.key_id = Some("k1".into());
        serde_json::from_value(json!({ "keys": [jwk] })).expect("jwks")
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
        let issuer = IssuerUrl::new(ISSUER.to_owned()).expect("issuer");
        validate(
            token,
            &jwks(),
            &Expectations {
                issuer: &issuer,
                client_id: CLIENT,
                nonce,
            },
        )
    }

    fn claims_with(name: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[name] = value;
        claims
    }

    #[test]
    fn valid_token_gives_the_claims() {
        let claims = check(&sign(&claims(), Some("k1")), Some("n-1")).expect("valid");
        assert_eq!(claims.subject, "user-1");
        assert_eq!(claims.email.as_deref(), Some("a@example.com"));
        assert!(claims.email_verified);
        // Without kid, the only fitting key is used; without expected nonce, none is checked.
        assert!(check(&sign(&claims_with("nonce", json!(null)), None), None).is_ok());
        // `"true"` as a string counts; a token within the exp skew passes.
        let stringy = claims_with("email_verified", json!("true"));
        assert!(
            check(&sign(&stringy, None), None)
                .expect("valid")
                .email_verified
        );
        let just_expired = claims_with("exp", json!(unix_now() - 10));
        assert!(check(&sign(&just_expired, None), None).is_ok());
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
            (claims_with("iat", json!(unix_now() + 3600)), IssuedAt),
            (claims_with("nonce", json!("n-2")), Nonce),
            (claims_with("sub", json!("")), Malformed),
        ];
        for (claims, reason) in cases {
            assert_eq!(
                check(&sign(&claims, Some("k1")), Some("n-1")),
                Err(reason),
                "{claims}"
            );
        }
        for claim in REQUIRED_CLAIMS {
            let mut partial = claims();
            partial.as_object_mut().expect("object").remove(claim);
            // openidconnect reads a missing `aud` as an empty list: not us.
            let reason = if claim == "aud" { Audience } else { Missing };
            assert_eq!(
                check(&sign(&partial, Some("k1")), None),
                Err(reason),
                "{claim}"
            );
        }
        assert_eq!(check("not-a-jwt", None), Err(Malformed));
        // An access token (`typ: at+jwt`) is no id_token, even when signed by the right key.
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        let access_token = encode(&header, &claims(), &signing_key()).expect("sign");
        assert_eq!(check(&access_token, None), Err(Malformed));
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
        assert!(!has_unknown_kid(&sign(&claims(), None), &jwks()));

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
        let good = serde_json::to_value(jwks().keys()[0].clone()).expect("json");
        let body = json!({"keys": [good, {"kty": "weird"}]});
        let keys: CoreJsonWebKeySet = serde_json::from_value(body).expect("jwks");
        assert_eq!(keys.keys().len(), 1);
    }

    #[test]
    fn verified_flag_accepts_bool_and_string() {
        assert!(verified_flag(Some(&json!(true))));
        assert!(verified_flag(Some(&json!("true"))));
        assert!(!verified_flag(Some(&json!(false))));
        assert!(!verified_flag(None));
    }
}
