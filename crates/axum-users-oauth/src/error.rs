//! The errors every provider client returns.

use std::fmt;

/// Why an OpenID Connect id_token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdTokenErrorReason {
    /// The token response carried no id_token, or the id_token lacks a required claim.
    Missing,
    /// Not a well-formed JWT, or a claim has the wrong type.
    Malformed,
    /// Bad signature, unknown key, or an algorithm we refuse (`none`, HMAC).
    Signature,
    /// `iss` is not the provider's issuer.
    Issuer,
    /// `aud` does not contain our client_id (or `azp` names another client).
    Audience,
    /// `exp` has passed.
    Expired,
    /// `nonce` differs from the one sent in the authorization request.
    Nonce,
    /// `iat` is missing or more than the allowed clock skew in the future.
    IssuedAt,
}

impl fmt::Display for IdTokenErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Signature => "signature",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::Nonce => "nonce",
            Self::IssuedAt => "issued_at",
        })
    }
}

/// A failure of a provider call. No variant ever carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// The token endpoint refused the request (bad code, bad verifier, bad client...).
    #[error("the provider rejected the token request: {error}")]
    TokenRejected {
        /// The OAuth `error` code (`invalid_grant`, ...), or `http_<status>` when the body had none.
        error: String,
        /// The provider's `error_description`, if any.
        description: Option<String>,
    },
    /// The id_token failed validation.
    #[error("invalid id_token: {0}")]
    IdTokenInvalid(IdTokenErrorReason),
    /// The profile (user info) call failed or answered something unusable.
    #[error("could not fetch the user profile: {0}")]
    ProfileFetch(String),
    /// The provider answered without an account id.
    #[error("the provider returned no account id")]
    MissingAccountId,
    /// The provider answered a 2xx we cannot parse, or an unexpected redirect.
    #[error("unexpected response from the provider: {0}")]
    InvalidResponse(String),
    /// Connection or protocol failure (the message never contains the request URL).
    #[error("HTTP error: {0}")]
    Http(String),
    /// The request did not finish within the configured timeout.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The client is configured wrongly (bad URL, unsupported auth method...).
    #[error("invalid OAuth configuration: {0}")]
    InvalidConfig(String),
    /// OpenID Connect discovery or the JWKS fetch failed.
    #[error("OpenID Connect discovery failed: {0}")]
    Discovery(String),
    /// The provider does not offer this operation (refresh or revoke).
    #[error("{0} is not supported by this provider")]
    NotSupported(&'static str),
}

impl From<reqwest::Error> for OAuthError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_timeout() {
            return Self::Timeout;
        }
        // The URL may carry query parameters; keep it out of the message.
        let error = error.without_url();
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self::Http(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_reason() {
        let error = OAuthError::IdTokenInvalid(IdTokenErrorReason::Nonce);
        assert_eq!(error.to_string(), "invalid id_token: nonce");
        let error = OAuthError::TokenRejected {
            error: "invalid_grant".into(),
            description: None,
        };
        assert!(error.to_string().contains("invalid_grant"));
    }
}
