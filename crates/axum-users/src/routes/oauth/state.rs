//! The OAuth `state` parameter and the CSRF cookie that binds it to one browser.
//!
//! The cookie holds a random secret that never leaves it; the signed state carries only a
//! keyed hash of it. So a leaked `code` + `state` (a log, a referrer) cannot be redeemed from
//! another browser: nobody can make the cookie from the state. The PKCE verifier and the OIDC
//! nonce are derived from the cookie's secret with their own sub-key, so no server-side
//! storage is needed and any node can finish a flow.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::error_code::ErrorCode;
use crate::keys::{KeyRing, Purpose};
use crate::secret::{constant_time_eq, random_token};
use crate::tokens::{JwtCodec, OAUTH_STATE_AUDIENCE, TokenError, now_unix};

/// Lifetime of a sign-in state and its CSRF cookie, seconds (as the reference).
const SIGN_IN_LIFETIME: i64 = 3600;

/// Lifetime of a linking state, seconds: short, as it may stand in for the user's credentials
/// (see [`Linker`]).
const ASSOCIATE_LIFETIME: i64 = 600;

/// The CSRF cookie's name: `__Host-` prefixed when it is `Secure` (so a sibling subdomain or a
/// plain-HTTP page cannot plant one), the reference's name under `strict_compat`.
pub(crate) fn csrf_cookie_name(secure: bool, strict_compat: bool) -> &'static str {
    if secure && !strict_compat {
        "__Host-fastapiusersoauthcsrf"
    } else {
        "fastapiusersoauthcsrf"
    }
}

/// Which flow a state was made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    SignIn,
    Associate,
}

impl Flow {
    /// How long a state of this flow, and its cookie, live.
    pub(super) fn lifetime(self) -> i64 {
        match self {
            Flow::SignIn => SIGN_IN_LIFETIME,
            Flow::Associate => ASSOCIATE_LIFETIME,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Flow::SignIn => "sign-in",
            Flow::Associate => "associate",
        }
    }
}

/// Who started a linking flow, and what the credential-less callback must find unchanged to
/// link to them: the session of the authorize request still live, the same password hash
/// (so logout, revocation and a password reset end the state), and a Bearer transport (a
/// cookie app's browser sends its cookie on the callback itself).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Linker {
    /// The user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sub: Option<String>,
    /// The session of the authorize request, when its token belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sid: Option<String>,
    /// The user's password fingerprint at authorize.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) pwf: Option<String>,
    /// Whether authorize was called over a Bearer transport.
    #[serde(default)]
    pub(super) bearer: bool,
}

/// What the `state` parameter carries, signed with its own sub-key.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StateClaims {
    /// The user who started a linking flow, if any.
    #[serde(flatten)]
    pub(super) linker: Linker,
    /// Keyed hash of the CSRF cookie's secret.
    #[serde(default)]
    csrf_hash: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    flow: String,
    aud: String,
    exp: i64,
    #[serde(default)]
    iat: i64,
}

/// A new flow: the cookie's secret and the signed state that names it.
pub(super) struct NewState {
    pub(super) cookie_secret: String,
    pub(super) state: String,
}

/// Makes and checks states.
pub(super) struct StateCodec<'a> {
    pub(super) codec: &'a JwtCodec,
    pub(super) keys: &'a KeyRing,
}

impl StateCodec<'_> {
    fn csrf_hash(&self, cookie_secret: &str) -> String {
        self.keys
            .mac(Purpose::OAuthCsrf, &[cookie_secret.as_bytes()])
    }

    /// A state for `provider` and `flow`, with a fresh cookie secret.
    pub(super) fn issue(
        &self,
        provider: &str,
        flow: Flow,
        linker: Linker,
    ) -> Result<NewState, TokenError> {
        let cookie_secret = random_token(32);
        let now = now_unix();
        let claims = StateClaims {
            linker,
            csrf_hash: self.csrf_hash(&cookie_secret),
            provider: provider.to_owned(),
            flow: flow.as_str().to_owned(),
            aud: OAUTH_STATE_AUDIENCE.into(),
            exp: now + flow.lifetime(),
            iat: now,
        };
        Ok(NewState {
            state: self.codec.encode(&claims)?,
            cookie_secret,
        })
    }

    /// Checks a state against the browser's cookie, the provider and the flow.
    ///
    /// # Errors
    /// `ACCESS_TOKEN_ALREADY_EXPIRED`, `ACCESS_TOKEN_DECODE_ERROR`, or `OAUTH_INVALID_STATE`.
    pub(super) fn check(
        &self,
        state: &str,
        cookie_secret: Option<&str>,
        provider: &str,
        flow: Flow,
    ) -> Result<StateClaims, ApiError> {
        let claims: StateClaims = self
            .codec
            .decode(state, OAUTH_STATE_AUDIENCE)
            .map_err(|e| match e {
                TokenError::Expired => ApiError::code(ErrorCode::AccessTokenAlreadyExpired),
                _ => ApiError::code(ErrorCode::AccessTokenDecodeError),
            })?;
        let cookie = cookie_secret.unwrap_or_default();
        let expected = self.csrf_hash(cookie);
        let bound = claims.provider == provider && claims.flow == flow.as_str();
        if cookie.is_empty()
            || claims.csrf_hash.is_empty()
            || !constant_time_eq(expected.as_bytes(), claims.csrf_hash.as_bytes())
            || !bound
        {
            return Err(ApiError::code(ErrorCode::OAuthInvalidState));
        }
        Ok(claims)
    }

    /// A value only this server can derive from the browser's cookie secret: the PKCE
    /// verifier (`pkce`) or the OIDC nonce (`nonce`).
    pub(super) fn derive(&self, what: &str, cookie_secret: &str) -> String {
        self.keys.mac(
            Purpose::OAuthDerivation,
            &[what.as_bytes(), cookie_secret.as_bytes()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn keys() -> KeyRing {
        KeyRing::new(Secret::new("k".repeat(32)), vec![])
    }

    #[test]
    fn a_state_is_bound_to_its_cookie_provider_and_flow() {
        let keys = keys();
        let codec = keys.codec(Purpose::OAuthState).unwrap();
        let states = StateCodec {
            codec: &codec,
            keys: &keys,
        };
        let new = states
            .issue("github", Flow::SignIn, Linker::default())
            .unwrap();
        assert!(
            !new.state.contains(&new.cookie_secret),
            "the cookie's secret never travels in the state"
        );
        let ok = states.check(&new.state, Some(&new.cookie_secret), "github", Flow::SignIn);
        assert!(ok.is_ok());
        let invalid = |r: Result<StateClaims, ApiError>| {
            r.unwrap_err().error_code() == Some(ErrorCode::OAuthInvalidState)
        };
        assert!(invalid(states.check(
            &new.state,
            None,
            "github",
            Flow::SignIn
        )));
        assert!(invalid(states.check(
            &new.state,
            Some("forged"),
            "github",
            Flow::SignIn
        )));
        assert!(invalid(states.check(
            &new.state,
            Some(&new.cookie_secret),
            "google",
            Flow::SignIn
        )));
        assert!(invalid(states.check(
            &new.state,
            Some(&new.cookie_secret),
            "github",
            Flow::Associate
        )));
        let garbage = states.check("x.y.z", Some(&new.cookie_secret), "github", Flow::SignIn);
        assert_eq!(
            garbage.unwrap_err().error_code(),
            Some(ErrorCode::AccessTokenDecodeError)
        );
    }

    #[test]
    fn derived_values_depend_on_the_cookie_and_the_purpose() {
        let keys = keys();
        let codec = keys.codec(Purpose::OAuthState).unwrap();
        let states = StateCodec {
            codec: &codec,
            keys: &keys,
        };
        assert_ne!(states.derive("pkce", "a"), states.derive("pkce", "b"));
        assert_ne!(states.derive("pkce", "a"), states.derive("nonce", "a"));
        assert_eq!(states.derive("pkce", "a"), states.derive("pkce", "a"));
    }
}
