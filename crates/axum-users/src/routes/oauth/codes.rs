//! One-time login codes: what a Bearer sign-in redirects a single-page app with instead of a
//! token. A code is signed with its own sub-key, lives 60 seconds, and is spent once: the
//! node that redeems it remembers its id until it expires, and where the store keeps second
//! factors the code's id is a row there too, deleted by the one redemption that wins on any
//! node (`UserManager::spend_login_code`).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::secret::random_token;
use crate::tokens::{JwtCodec, LOGIN_CODE_AUDIENCE, TokenError, now_unix};

/// Lifetime of a login code, seconds.
const CODE_LIFETIME: i64 = 60;
/// Spent codes remembered at most; a node redeeming more within a minute refuses the rest.
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, Serialize, Deserialize)]
struct CodeClaims {
    sub: String,
    provider: String,
    jti: String,
    aud: String,
    exp: i64,
    iat: i64,
}

/// A code as issued: what goes into the URL, and its id and end for the shared record.
#[derive(Debug)]
pub(crate) struct IssuedCode {
    pub(crate) code: String,
    pub(crate) jti: String,
    pub(crate) expires_at: i64,
}

/// The codes this node has spent, until they expire.
#[derive(Debug, Default)]
pub(crate) struct LoginCodes {
    spent: Mutex<HashMap<String, i64>>,
}

impl LoginCodes {
    /// A code for `user_id`, redeemable at `provider`'s token route.
    pub(crate) fn issue(
        codec: &JwtCodec,
        user_id: &str,
        provider: &str,
    ) -> Result<IssuedCode, TokenError> {
        let now = now_unix();
        let jti = random_token(16);
        let code = codec.encode(&CodeClaims {
            sub: user_id.to_owned(),
            provider: provider.to_owned(),
            jti: jti.clone(),
            aud: LOGIN_CODE_AUDIENCE.into(),
            exp: now + CODE_LIFETIME,
            iat: now,
        })?;
        Ok(IssuedCode {
            code,
            jti,
            expires_at: now + CODE_LIFETIME,
        })
    }

    /// The user id of a validly signed, unexpired code of `provider`, without spending it: so
    /// that the sign-in can be throttled before the code is spent (a 429 must not burn it).
    pub(crate) fn peek(codec: &JwtCodec, code: &str, provider: &str) -> Option<String> {
        let claims: CodeClaims = codec.decode(code, LOGIN_CODE_AUDIENCE).ok()?;
        (claims.provider == provider).then_some(claims.sub)
    }

    /// The id (`jti`) of a valid code of `provider` that this node has not spent, spending it
    /// here; the shared record is spent by the manager.
    pub(crate) fn redeem(&self, codec: &JwtCodec, code: &str, provider: &str) -> Option<String> {
        let claims: CodeClaims = codec.decode(code, LOGIN_CODE_AUDIENCE).ok()?;
        if claims.provider != provider {
            return None;
        }
        let now = now_unix();
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        spent.retain(|_, exp| *exp >= now);
        if spent.len() >= MAX_REMEMBERED || spent.contains_key(&claims.jti) {
            return None;
        }
        spent.insert(claims.jti.clone(), claims.exp);
        Some(claims.jti)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    #[test]
    fn a_code_is_spent_once_and_only_at_its_provider() {
        let codec = JwtCodec::hs256(&Secret::new("c".repeat(32))).unwrap();
        let codes = LoginCodes::default();
        let issued = LoginCodes::issue(&codec, "42", "github").unwrap();
        let code = issued.code;
        assert_eq!(LoginCodes::peek(&codec, &code, "google"), None);
        assert_eq!(
            LoginCodes::peek(&codec, &code, "github").as_deref(),
            Some("42")
        );
        assert_eq!(codes.redeem(&codec, &code, "google"), None);
        assert_eq!(codes.redeem(&codec, &code, "github"), Some(issued.jti));
        assert_eq!(codes.redeem(&codec, &code, "github"), None, "single use");
        let other = JwtCodec::hs256(&Secret::new("d".repeat(32))).unwrap();
        let forged = LoginCodes::issue(&other, "1", "github").unwrap().code;
        assert_eq!(codes.redeem(&codec, &forged, "github"), None);
    }
}
