//! The token a provider issues, and parsing of token-endpoint responses (JSON or form-encoded).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::error::OAuthError;
use crate::secret::{AccessToken, IdToken, RefreshToken};

/// What the token endpoint returned, normalised (`expires_in` becomes `expires_at`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthToken {
    /// The bearer token used for profile calls.
    pub access_token: AccessToken,
    /// Present when the provider issues refresh tokens.
    pub refresh_token: Option<RefreshToken>,
    /// Unix seconds after which the access token is expired, when the provider said.
    pub expires_at: Option<i64>,
    /// The OpenID Connect id_token, when the `openid` scope was granted.
    pub id_token: Option<IdToken>,
    /// The granted scopes as the provider wrote them (space- or comma-separated).
    pub scope: Option<String>,
    /// Usually `Bearer` (GitHub writes `bearer`).
    pub token_type: Option<String>,
}

/// A number that some providers send as a string (`"3600"`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Seconds {
    Number(i64),
    Float(f64),
    Text(String),
}

impl Seconds {
    fn value(&self) -> Option<i64> {
        match self {
            Self::Number(n) => Some(*n),
            // Truncation is intended: a fractional second does not matter here.
            #[allow(clippy::cast_possible_truncation)]
            Self::Float(f) if f.is_finite() => Some(*f as i64),
            Self::Float(_) => None,
            Self::Text(text) => text.trim().parse().ok(),
        }
    }
}

/// The raw fields of a token response (RFC 6749 §5.1 and §5.2).
#[derive(Deserialize)]
struct RawTokenResponse {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<Seconds>,
    expires_at: Option<Seconds>,
    id_token: Option<String>,
    scope: Option<String>,
    token_type: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Parses a token-endpoint body, JSON or `application/x-www-form-urlencoded`.
///
/// A body with an `error` field is a rejection even under status 200 (GitHub does that).
///
/// # Errors
/// [`OAuthError::TokenRejected`] for an `error` body, [`OAuthError::InvalidResponse`] when the
/// body is neither format or has no `access_token`.
pub(crate) fn parse_token_response(body: &[u8], now: i64) -> Result<OAuthToken, OAuthError> {
    let raw: RawTokenResponse = serde_json::from_slice(body)
        .or_else(|_| serde_urlencoded::from_bytes(body))
        .map_err(|_| OAuthError::InvalidResponse("token response is not JSON or a form".into()))?;
    if let Some(error) = raw.error {
        return Err(OAuthError::TokenRejected {
            error,
            description: raw.error_description,
        });
    }
    let access_token = raw
        .access_token
        .filter(|token| !token.is_empty())
        .ok_or_else(|| OAuthError::InvalidResponse("token response has no access_token".into()))?;
    let expires_at = match (
        raw.expires_at.as_ref().and_then(Seconds::value),
        raw.expires_in,
    ) {
        (Some(at), _) => Some(at),
        (None, Some(seconds)) => seconds.value().map(|s| now.saturating_add(s)),
        (None, None) => None,
    };
    Ok(OAuthToken {
        access_token: AccessToken::new(access_token),
        refresh_token: raw
            .refresh_token
            .filter(|t| !t.is_empty())
            .map(RefreshToken::new),
        expires_at,
        id_token: raw.id_token.filter(|t| !t.is_empty()).map(IdToken::new),
        scope: raw.scope,
        token_type: raw.token_type,
    })
}

/// Parses an error body of a non-2xx token response into [`OAuthError::TokenRejected`].
pub(crate) fn rejection_from_body(status: u16, body: &[u8]) -> OAuthError {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        error_description: Option<String>,
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body)
        .ok()
        .or_else(|| serde_urlencoded::from_bytes(body).ok());
    match parsed {
        Some(ErrorBody {
            error: Some(error),
            error_description,
        }) => OAuthError::TokenRejected {
            error,
            description: error_description,
        },
        _ => OAuthError::TokenRejected {
            error: format!("http_{status}"),
            description: None,
        },
    }
}

/// The current time in unix seconds.
pub(crate) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn json_response_with_expires_in() {
        let body = br#"{"access_token":"at","token_type":"Bearer","expires_in":3600,
            "refresh_token":"rt","scope":"openid email","id_token":"a.b.c"}"#;
        let token = parse_token_response(body, NOW).expect("valid response");
        assert_eq!(token.access_token.secret(), "at");
        assert_eq!(
            token.refresh_token.as_ref().map(RefreshToken::secret),
            Some("rt")
        );
        assert_eq!(token.expires_at, Some(NOW + 3600));
        assert_eq!(token.id_token.as_ref().map(IdToken::secret), Some("a.b.c"));
        assert_eq!(token.scope.as_deref(), Some("openid email"));
        assert_eq!(token.token_type.as_deref(), Some("Bearer"));
    }

    #[test]
    fn expires_in_as_string_and_explicit_expires_at() {
        let token = parse_token_response(br#"{"access_token":"at","expires_in":"60"}"#, NOW)
            .expect("valid response");
        assert_eq!(token.expires_at, Some(NOW + 60));
        let token = parse_token_response(
            br#"{"access_token":"at","expires_at":42,"expires_in":60}"#,
            NOW,
        )
        .expect("valid response");
        assert_eq!(token.expires_at, Some(42));
        let token = parse_token_response(br#"{"access_token":"at"}"#, NOW).expect("valid");
        assert_eq!(token.expires_at, None);
        assert_eq!(token.refresh_token, None);
    }

    #[test]
    fn github_form_encoded_response() {
        let body = b"access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer";
        let token = parse_token_response(body, NOW).expect("valid response");
        assert_eq!(
            token.access_token.secret(),
            "gho_16C7e42F292c6912E7710c838347Ae178B4a"
        );
        assert_eq!(token.scope.as_deref(), Some("repo,gist"));
        assert_eq!(token.token_type.as_deref(), Some("bearer"));
        assert_eq!(token.expires_at, None);
    }

    #[test]
    fn error_body_under_200_is_a_rejection() {
        let body = br#"{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}"#;
        match parse_token_response(body, NOW) {
            Err(OAuthError::TokenRejected { error, description }) => {
                assert_eq!(error, "bad_verification_code");
                assert!(description.is_some());
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let form = b"error=bad_verification_code&error_description=expired";
        assert!(matches!(
            parse_token_response(form, NOW),
            Err(OAuthError::TokenRejected { error, .. }) if error == "bad_verification_code"
        ));
    }

    #[test]
    fn garbage_and_missing_token_are_invalid() {
        assert!(matches!(
            parse_token_response(br#"{"token_type":"Bearer"}"#, NOW),
            Err(OAuthError::InvalidResponse(_))
        ));
        assert!(matches!(
            parse_token_response(b"<html>", NOW),
            Err(OAuthError::InvalidResponse(_))
        ));
    }

    #[test]
    fn rejection_from_error_status() {
        assert!(matches!(
            rejection_from_body(400, br#"{"error":"invalid_grant"}"#),
            OAuthError::TokenRejected { error, .. } if error == "invalid_grant"
        ));
        assert!(matches!(
            rejection_from_body(502, b"Bad gateway"),
            OAuthError::TokenRejected { error, .. } if error == "http_502"
        ));
    }
}
