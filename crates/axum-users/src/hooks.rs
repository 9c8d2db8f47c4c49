//! Hooks: the application's say in the user lifecycle. Every method defaults to doing nothing.

use std::future::Future;

use http::request::Parts;
use serde_json::Value;

use crate::model::{User, UserFields, UserId};
use crate::oauth_manager::OAuthProfile;

/// A password refused by [`UserHooks::validate_password`]; `reason` is echoed to the client as
/// `{"detail": {"code": "..._INVALID_PASSWORD", "reason": reason}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct InvalidPassword {
    /// Any JSON value; conventionally a sentence.
    pub reason: Value,
}

impl InvalidPassword {
    /// A refusal with a textual reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: Value::String(reason.into()),
        }
    }
}

/// Whose password is being validated.
#[derive(Debug)]
#[non_exhaustive]
pub enum PasswordOwner<'a, Id, F> {
    /// A user being registered (not stored yet).
    New {
        /// The normalised e-mail address.
        email: &'a str,
        /// Their custom fields.
        fields: &'a F,
    },
    /// An existing user changing or resetting their password.
    Existing(&'a User<Id, F>),
}

/// Lifecycle hooks, fired exactly where FastAPI Users fires them (spec section 7.2).
///
/// `request` is the HTTP request that caused the event, `None` for programmatic calls.
///
/// # Examples
/// ```
/// use axum_users::{UserHooks, User, InvalidPassword, PasswordOwner};
/// use uuid::Uuid;
///
/// #[derive(Clone)]
/// struct Hooks;
///
/// impl UserHooks<Uuid, axum_users::NoFields> for Hooks {
///     async fn validate_password(&self, password: &str, _owner: PasswordOwner<'_, Uuid, axum_users::NoFields>) -> Result<(), InvalidPassword> {
///         if password.len() < 8 { Err(InvalidPassword::new("Password should be at least 8 characters")) } else { Ok(()) }
///     }
/// }
/// ```
pub trait UserHooks<Id: UserId, F: UserFields>: Send + Sync + 'static {
    /// Refuses a password; called on register (before the duplicate check), on PATCH with a
    /// password, and on reset (after the token checks). Not called for OAuth-created users.
    fn validate_password(
        &self,
        password: &str,
        owner: PasswordOwner<'_, Id, F>,
    ) -> impl Future<Output = Result<(), InvalidPassword>> + Send {
        let _ = (password, owner);
        async { Ok(()) }
    }

    /// After a user was created (register, programmatic create, OAuth sign-up).
    fn on_after_register(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request);
        async {}
    }

    /// After PATCH /users/me or /users/{id} (even with nothing changed) and after associating an
    /// OAuth account. `update` is the raw request object: it may hold a plaintext password.
    fn on_after_update(
        &self,
        user: &User<Id, F>,
        update: &Value,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, update, request);
        async {}
    }

    /// After a successful login; the response may be changed (a header, a cookie).
    fn on_after_login(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
        response: &mut axum::response::Response,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request, response);
        async {}
    }

    /// After a verification token was issued for an active, unverified user: send it by mail.
    fn on_after_request_verify(
        &self,
        user: &User<Id, F>,
        token: &str,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, token, request);
        async {}
    }

    /// After a self-service change of address to `new_email` was requested (`email_change =
    /// confirm`): mail the confirmation `token` to `new_email` and a notice to the old address
    /// (`user.email`). The address changes only when the token comes back to
    /// `POST /auth/confirm-email-change`.
    fn on_after_request_email_change(
        &self,
        user: &User<Id, F>,
        new_email: &str,
        token: &str,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, new_email, token, request);
        async {}
    }

    /// After a confirmed change of address: `user` has the new one, `old_email` was theirs.
    fn on_after_email_change(
        &self,
        user: &User<Id, F>,
        old_email: &str,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, old_email, request);
        async {}
    }

    /// After a user was verified.
    fn on_after_verify(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request);
        async {}
    }

    /// After a reset token was issued for an active user: send it by mail.
    fn on_after_forgot_password(
        &self,
        user: &User<Id, F>,
        token: &str,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, token, request);
        async {}
    }

    /// After a password was reset.
    fn on_after_reset_password(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request);
        async {}
    }

    /// Before a user is deleted.
    fn on_before_delete(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request);
        async {}
    }

    /// Before the credentials of a sign-in are checked, for every way in: the throttle seam.
    /// A refusal answers 429 with `Retry-After` and costs no hash.
    fn before_login(
        &self,
        attempt: &LoginAttempt<'_>,
    ) -> impl Future<Output = Result<(), LoginRefused>> + Send {
        let _ = attempt;
        async { Ok(()) }
    }

    /// After the credentials and the rules passed: does this sign-in need a second factor?
    /// Asked for every first step, a passwordless passkey sign-in included (`method` is
    /// [`SignInMethod::Passkey`]: a user-verified passkey is two factors already, so a policy
    /// that asks for more after it says so on purpose); never asked after the second step.
    /// `Required` answers 400 `LOGIN_SECOND_FACTOR_REQUIRED` and issues nothing.
    fn second_factor(
        &self,
        user: &User<Id, F>,
        method: &SignInMethod,
    ) -> impl Future<Output = SecondFactor> + Send {
        let _ = (user, method);
        async { SecondFactor::NotRequired }
    }

    /// A security event (sign-in succeeded or failed), for an audit log or alerts.
    fn on_security_event(
        &self,
        event: SecurityEvent<'_, Id, F>,
    ) -> impl Future<Output = ()> + Send {
        let _ = event;
        async {}
    }

    /// Every audit event, typed, after it was stored (see `audit.rs`): forward it to a SIEM, a
    /// queue or an alert. Runs on the path of the act it records: keep it short, or hand the
    /// record to a task of your own.
    fn on_audit_event(&self, record: &crate::AuditRecord) -> impl Future<Output = ()> + Send {
        let _ = record;
        async {}
    }

    /// Fills the application's own fields from a provider's profile (a display name from
    /// `profile.name`, an avatar): on a first sign-in through a provider, with `user` `None`,
    /// the fields returned are the new user's; when a provider account is linked to `user`
    /// (by `associate` or by e-mail), the fields returned replace theirs. `None`, the
    /// default, keeps them (`F::default()` for a new user). Later sign-ins do not call it.
    ///
    /// The profile and its claims are the provider's unvetted word (`email` and
    /// `email_verified` in the claims are raw, not the checks the manager made). What the hook
    /// returns is self-service input: a new user's fields go through
    /// [`UserFields::reset_privileged`](crate::UserFields::reset_privileged), a linked user's
    /// through `Update` and [`UserFields::drop_privileged`](crate::UserFields::drop_privileged)
    /// as a `PATCH /users/me` would, and `on_after_update` receives the members that changed.
    fn on_oauth_profile(
        &self,
        profile: &OAuthProfile,
        user: Option<&User<Id, F>>,
    ) -> impl Future<Output = Option<F>> + Send {
        let _ = (profile, user);
        async { None }
    }

    /// After a user was deleted.
    fn on_after_delete(
        &self,
        user: &User<Id, F>,
        request: Option<&Parts>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, request);
        async {}
    }

    /// After a user's second factors changed (a TOTP factor confirmed or removed, or removed
    /// by a superuser), e.g. to tell the user by mail: the server queues the
    /// `second_factor_added` / `second_factor_removed` notices.
    fn on_second_factor_changed(
        &self,
        user: &User<Id, F>,
        change: SecondFactorChange,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, change);
        async {}
    }

    /// After a sign-in from a device the account has not been used from lately (see
    /// [`NewDevice`]), e.g. to tell the user by mail: the server queues the `new_sign_in`
    /// notice. Called before the sign-in is answered.
    fn on_new_device(
        &self,
        user: &User<Id, F>,
        device: &NewDevice,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user, device);
        async {}
    }

    /// After a session ended before its time (every token of it stops working), e.g. to alert
    /// the user when `reason` is [`crate::RevokeReason::ReuseDetected`].
    fn on_session_revoked(
        &self,
        user_id: &Id,
        session_id: &str,
        reason: crate::RevokeReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (user_id, session_id, reason);
        async {}
    }
}

/// A sign-in attempt, as the throttle seam and security events see it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LoginAttempt<'a> {
    /// How the client tries to sign in.
    pub method: &'a SignInMethod,
    /// The account key the attempt names: the normalised e-mail of a password attempt, the
    /// `provider:account id` of an OAuth one.
    pub account: &'a str,
    /// The request, `None` for programmatic calls.
    pub request: Option<&'a Parts>,
}

/// A change of a user's second factors, for [`UserHooks::on_second_factor_changed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecondFactorChange {
    /// The user confirmed a new factor.
    Added,
    /// The user removed their factor.
    Removed,
    /// A superuser removed the user's factors (`DELETE /users/{id}/mfa`).
    RemovedBySuperuser,
}

/// A sign-in whose user agent none of the user's live sessions has, by a user who had signed
/// in before (the first sign-in after registering is not news), for
/// [`UserHooks::on_new_device`]. Only stores that keep sessions can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewDevice {
    /// The client's address, as the session records it.
    pub ip: Option<String>,
    /// The client's `User-Agent` (cut to the session's limit); client-supplied text.
    pub user_agent: Option<String>,
    /// How it signed in (`password`, `oauth:<provider>`, ...).
    pub method: String,
    /// When, in Unix seconds.
    pub at: i64,
}

/// How a user signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignInMethod {
    /// E-mail and password.
    Password,
    /// A provider, by name.
    OAuth(String),
    /// A passkey (passwordless, user-verified).
    Passkey,
}

impl std::fmt::Display for SignInMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInMethod::Password => f.write_str("password"),
            SignInMethod::OAuth(name) => write!(f, "oauth:{name}"),
            SignInMethod::Passkey => f.write_str("passkey"),
        }
    }
}

/// A refusal by [`UserHooks::before_login`]: the attempt is not even checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRefused {
    /// When the client may try again.
    pub retry_after: std::time::Duration,
}

/// Whether a sign-in whose credentials are right needs a second factor first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SecondFactor {
    /// No: issue the token.
    #[default]
    NotRequired,
    /// Yes: issue nothing yet.
    Required,
}

/// Something that matters to the account's security, for an audit trail or alerts.
#[derive(Debug)]
#[non_exhaustive]
pub enum SecurityEvent<'a, Id, F> {
    /// A sign-in succeeded and a token was issued.
    LoginSucceeded {
        /// Who.
        user: &'a User<Id, F>,
        /// How.
        method: &'a SignInMethod,
    },
    /// A sign-in was refused (bad credentials, inactive, unverified, throttled).
    LoginFailed {
        /// The account key the attempt named.
        account: &'a str,
        /// How.
        method: &'a SignInMethod,
        /// Why, as an error code string.
        reason: &'static str,
    },
}

/// Hooks that do nothing and accept every password.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl<Id: UserId, F: UserFields> UserHooks<Id, F> for NoHooks {}
