//! Every error code the API answers with, in one table: the code string, its HTTP status and
//! what it means. Routes, the OpenAPI document and `docs/compatibility.md` all read it.

use http::StatusCode;

macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $status:ident, $description:literal;)*) => {
        /// An error code of the API: the `detail` of an error answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The code as clients see it, e.g. `LOGIN_BAD_CREDENTIALS`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$name => $code,)* }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$name => StatusCode::$status,)* }
            }

            /// What it means, for documentation.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$name => $description,)* }
            }
        }
    };
}

error_codes! {
    /// Registration: the e-mail address is taken.
    RegisterUserAlreadyExists = "REGISTER_USER_ALREADY_EXISTS", BAD_REQUEST,
        "A user with this e-mail address already exists.";
    /// Registration: the password hook refused the password.
    RegisterInvalidPassword = "REGISTER_INVALID_PASSWORD", BAD_REQUEST,
        "The password was refused; `reason` says why.";
    /// Login: unknown e-mail, wrong password, or inactive user (indistinguishable on purpose).
    LoginBadCredentials = "LOGIN_BAD_CREDENTIALS", BAD_REQUEST,
        "Bad credentials, or the user is inactive.";
    /// Login: verification is required and the user is not verified.
    LoginUserNotVerified = "LOGIN_USER_NOT_VERIFIED", BAD_REQUEST,
        "The user is not verified and the server requires verification.";
    /// Login: the password was right but a second factor is needed.
    LoginSecondFactorRequired = "LOGIN_SECOND_FACTOR_REQUIRED", BAD_REQUEST,
        "The credentials are right; a second factor is required to finish signing in.";
    /// Login: the credentials are right; the user's second factor must complete the sign-in
    /// (`{"detail": {"code", "mfa_token", "methods"}}`).
    LoginMfaRequired = "LOGIN_MFA_REQUIRED", UNAUTHORIZED,
        "The first step passed; send `mfa_token` with a code to `POST /auth/{backend}/mfa`.";
    /// Second factor: the TOTP or recovery code is wrong, used, or of a step already used.
    MfaInvalidCode = "MFA_INVALID_CODE", BAD_REQUEST,
        "The code is wrong, already used, or of a time step already used.";
    /// Second factor: the mfa token is unknown, used, expired, dead or another backend's.
    MfaTokenInvalid = "MFA_TOKEN_INVALID", BAD_REQUEST,
        "The mfa token is invalid, expired, used, or spent by five wrong codes; sign in again.";
    /// Second factor: enrolment while a confirmed factor exists.
    MfaAlreadyEnabled = "MFA_ALREADY_ENABLED", BAD_REQUEST,
        "A second factor is enabled already; remove it first.";
    /// Second factor: no (pending or confirmed) factor for this act.
    MfaNotEnabled = "MFA_NOT_ENABLED", BAD_REQUEST,
        "No second factor is enabled (or pending confirmation).";
    /// Second factor: a user without a password must have signed in recently to enrol.
    MfaRecentSignInRequired = "MFA_RECENT_SIGN_IN_REQUIRED", BAD_REQUEST,
        "Sign in again (within the last 10 minutes by default), then enrol.";
    /// Second factor: the store keeps no second factors.
    MfaUnavailable = "MFA_UNAVAILABLE", NOT_IMPLEMENTED,
        "This server's store does not keep second factors.";
    /// Passkeys: no relying party is configured (no public URL with a domain name), or the
    /// store keeps no passkeys.
    PasskeyUnavailable = "PASSKEY_UNAVAILABLE", NOT_IMPLEMENTED,
        "Passkeys are not available on this server (no public URL with a domain, or a store without passkeys).";
    /// Passkeys: the ceremony's `challenge_id` is unknown, used, expired, or another's.
    PasskeyChallengeInvalid = "PASSKEY_CHALLENGE_INVALID", BAD_REQUEST,
        "The passkey challenge is invalid, expired or already used; start again.";
    /// Passkeys: the credential or assertion is malformed or fails a check.
    PasskeyInvalid = "PASSKEY_INVALID", BAD_REQUEST,
        "The passkey was refused (malformed, unknown, wrong origin, not verified, or already registered).";
    /// Passkeys: no such passkey of the user (or the user has none).
    PasskeyNotFound = "PASSKEY_NOT_FOUND", NOT_FOUND,
        "No such passkey.";
    /// Passkeys: the user has the most passkeys allowed.
    PasskeyLimitReached = "PASSKEY_LIMIT_REACHED", BAD_REQUEST,
        "The user has 20 passkeys already; remove one first.";
    /// Passkeys: the name is empty, longer than 64 characters, or has control characters.
    PasskeyNameInvalid = "PASSKEY_NAME_INVALID", BAD_REQUEST,
        "A passkey's name has 1 to 64 characters and no control characters.";
    /// Reset: the token is invalid, expired or used.
    ResetPasswordBadToken = "RESET_PASSWORD_BAD_TOKEN", BAD_REQUEST,
        "The reset token is invalid, expired or already used.";
    /// Reset: the password hook refused the password.
    ResetPasswordInvalidPassword = "RESET_PASSWORD_INVALID_PASSWORD", BAD_REQUEST,
        "The new password was refused; `reason` says why.";
    /// Verify: the token is invalid or expired.
    VerifyUserBadToken = "VERIFY_USER_BAD_TOKEN", BAD_REQUEST,
        "The verification token is invalid, expired, or for an address the user no longer has.";
    /// Verify: the user is verified already.
    VerifyUserAlreadyVerified = "VERIFY_USER_ALREADY_VERIFIED", BAD_REQUEST,
        "The user is already verified.";
    /// Update: the new e-mail address is taken.
    UpdateUserEmailAlreadyExists = "UPDATE_USER_EMAIL_ALREADY_EXISTS", BAD_REQUEST,
        "Another user has this e-mail address.";
    /// Update: the password hook refused the new password.
    UpdateUserInvalidPassword = "UPDATE_USER_INVALID_PASSWORD", BAD_REQUEST,
        "The new password was refused; `reason` says why.";
    /// Self-update of e-mail or password without `current_password`.
    UpdateUserCurrentPasswordRequired = "UPDATE_USER_CURRENT_PASSWORD_REQUIRED", BAD_REQUEST,
        "Changing your e-mail or password needs `current_password`.";
    /// Self-update with a wrong `current_password`.
    UpdateUserBadCurrentPassword = "UPDATE_USER_BAD_CURRENT_PASSWORD", BAD_REQUEST,
        "`current_password` is wrong.";
    /// OAuth: the provider gave no e-mail address.
    OAuthNotAvailableEmail = "OAUTH_NOT_AVAILABLE_EMAIL", BAD_REQUEST,
        "The provider did not give an e-mail address.";
    /// OAuth: the e-mail belongs to a local account that may not be linked.
    OAuthUserAlreadyExists = "OAUTH_USER_ALREADY_EXISTS", BAD_REQUEST,
        "A user with this e-mail exists and the provider account may not be linked to it.";
    /// OAuth: the provider did not verify the e-mail, or is not trusted to.
    OAuthEmailNotVerified = "OAUTH_EMAIL_NOT_VERIFIED", BAD_REQUEST,
        "The provider has not verified this e-mail address (or is not trusted to).";
    /// OAuth: the provider's e-mail fails the rules of registration.
    OAuthInvalidEmail = "OAUTH_INVALID_EMAIL", BAD_REQUEST,
        "The provider's e-mail address is not a valid address.";
    /// OAuth: state, CSRF cookie or provider binding do not match.
    OAuthInvalidState = "OAUTH_INVALID_STATE", BAD_REQUEST,
        "The state does not belong to this browser, provider or flow.";
    /// OAuth: the provider's id_token failed a check.
    OAuthInvalidIdToken = "OAUTH_INVALID_ID_TOKEN", BAD_REQUEST,
        "The provider's id_token failed validation.";
    /// OAuth: the provider refused the authorization code.
    OAuthCodeExchangeFailed = "OAUTH_CODE_EXCHANGE_FAILED", BAD_REQUEST,
        "The provider refused the authorization code.";
    /// OAuth: the provider account is linked to another user.
    OAuthAccountAlreadyLinked = "OAUTH_ACCOUNT_ALREADY_LINKED", BAD_REQUEST,
        "The provider account is linked to another user.";
    /// OAuth: linking a provider account needs a sign-in within the recent-sign-in window.
    OAuthRecentSignInRequired = "OAUTH_RECENT_SIGN_IN_REQUIRED", BAD_REQUEST,
        "Linking a provider account needs a recent sign-in: sign in again, then link.";
    /// OAuth: unlinking would leave no way to sign in.
    OAuthLastSignInMethod = "OAUTH_LAST_SIGN_IN_METHOD", BAD_REQUEST,
        "This is the user's last way to sign in; set a password first.";
    /// OAuth: the one-time login code is invalid, expired or used.
    OAuthInvalidLoginCode = "OAUTH_INVALID_LOGIN_CODE", BAD_REQUEST,
        "The one-time login code is invalid, expired or already used.";
    /// OAuth: the provider cannot be reached or answered nonsense.
    OAuthProviderUnavailable = "OAUTH_PROVIDER_UNAVAILABLE", BAD_GATEWAY,
        "The provider could not be reached or gave an unusable answer.";
    /// OAuth state: malformed or signed for something else.
    AccessTokenDecodeError = "ACCESS_TOKEN_DECODE_ERROR", BAD_REQUEST,
        "The state token is malformed or not ours.";
    /// OAuth state: expired.
    AccessTokenAlreadyExpired = "ACCESS_TOKEN_ALREADY_EXPIRED", BAD_REQUEST,
        "The state token has expired.";
    /// A cookie-authenticated request that changes state came from another site.
    CsrfOriginMismatch = "CSRF_ORIGIN_MISMATCH", FORBIDDEN,
        "A cookie-authenticated request that changes state came from an untrusted origin.";
    /// Refresh: the refresh token is unknown, expired, revoked, or its user may not sign in.
    RefreshTokenInvalid = "REFRESH_TOKEN_INVALID", UNAUTHORIZED,
        "The refresh token is unknown, expired or revoked, or its user may not sign in; sign in again.";
    /// Refresh: a rotated-out refresh token was used again after the grace window.
    RefreshTokenReused = "REFRESH_TOKEN_REUSED", UNAUTHORIZED,
        "The refresh token was already used: the session is revoked (the token may have been stolen); sign in again.";
    /// Sessions: no such session of this user.
    SessionNotFound = "SESSION_NOT_FOUND", NOT_FOUND,
        "No such session of this user.";
    /// E-mail change: the confirmation token is malformed, expired, used or superseded.
    EmailChangeBadToken = "EMAIL_CHANGE_BAD_TOKEN", BAD_REQUEST,
        "The e-mail change token is malformed, expired, already used or superseded by another change.";
    /// Admin: the store keeps no users directory (times, listing), e.g. a custom store.
    UsersListingUnavailable = "USERS_LISTING_UNAVAILABLE", NOT_IMPLEMENTED,
        "The store cannot list users (it implements no `UserDirectory`).";
    /// A request the route cannot read.
    BadRequest = "Bad Request", BAD_REQUEST,
        "The request is malformed.";
    /// No valid credentials, or an inactive user where an active one is needed.
    Unauthorized = "Unauthorized", UNAUTHORIZED,
        "No valid token, or the user is inactive.";
    /// Authenticated but not allowed (not verified, not a superuser).
    Forbidden = "Forbidden", FORBIDDEN,
        "The user lacks the verification or superuser flag the route requires.";
    /// No such resource.
    NotFound = "Not Found", NOT_FOUND,
        "No such user or linked account.";
    /// A form body that cannot be parsed (FastAPI's own detail).
    UnparsableBody = "There was an error parsing the body", BAD_REQUEST,
        "The form body is malformed (bad multipart, a boundary over 70 characters, too many or too long fields).";
    /// The request body is too large (Starlette's own detail).
    PayloadTooLarge = "Content Too Large", PAYLOAD_TOO_LARGE,
        "The request body is larger than the route accepts (16 KiB for a login form).";
    /// A sign-in attempt refused before it was checked (throttling); retry after `Retry-After`.
    TooManyRequests = "TOO_MANY_REQUESTS", TOO_MANY_REQUESTS,
        "Too many attempts; retry after `Retry-After` seconds.";
    /// A backing service is down or the server is overloaded; retry after `Retry-After`.
    ServiceUnavailable = "SERVICE_UNAVAILABLE", SERVICE_UNAVAILABLE,
        "A backing service is down or the server is overloaded; retry later.";
    /// A failure that is the server's, never the client's.
    InternalServerError = "INTERNAL_SERVER_ERROR", INTERNAL_SERVER_ERROR,
        "An internal failure; the cause is in the server log.";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is the only place a code string is written: no source file of the library
    /// spells one out (tests and this file aside).
    #[test]
    fn no_code_is_written_outside_the_table() {
        fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        assert!(files.len() > 10);
        for file in files.iter().filter(|f| !f.ends_with("error_code.rs")) {
            let text = std::fs::read_to_string(file).unwrap();
            let code_part = text.split("#[cfg(test)]").next().unwrap_or_default();
            for code in ErrorCode::ALL.iter().filter(|c| c.as_str().contains('_')) {
                assert!(
                    !code_part.contains(&format!("\"{}\"", code.as_str())),
                    "{} spells out {code}: use ErrorCode",
                    file.display()
                );
            }
        }
    }

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.status().is_client_error() || code.status().is_server_error());
            assert!(!code.description().is_empty());
        }
    }
}
