//! Signing in, owned by the manager: every way in (password, OAuth, a one-time login code)
//! runs the same steps in the same order, so that a rule added here holds for all of them:
//!
//! throttle seam ([`UserHooks::before_login`]) → credentials → rules (active, verified) →
//! second factor seam → token from the backend's strategy → `on_after_login` → security event.

use axum::response::Response;
use http::request::Parts;

use crate::audit::{AuditEvent, LoginFailure};
use crate::auth::{AuthBackend, IssuedToken};
use crate::error_code::ErrorCode;
use crate::hooks::{LoginAttempt, SecondFactor, SecurityEvent, SignInMethod, UserHooks};
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::store::UserStore;

/// What the credentials of a sign-in proved, for the second-factor seam of
/// [`UserManager::finish_login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proof {
    /// One factor (a password, a provider, a login code): the user's own factor is asked for,
    /// then [`UserHooks::second_factor`].
    OneFactor,
    /// A factor that is two on its own (a user-verified passkey: the device and its PIN or
    /// biometric): the user's own factor is not asked for again, but the application's hook
    /// still is, with the method, so that its policy decides.
    MultiFactor,
    /// The second step of a pending sign-in: the second factor was just given.
    SecondStep,
}

/// How a successful sign-in is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginResponse<'a> {
    /// The backend's transport renders the token (JSON body or cookie).
    Transport,
    /// A cookie backend's cookie rides on a 303 to this front-end URL.
    Redirect(&'a str),
}

/// The result of [`UserManager::login_with_password`] and the other ways in.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoginOutcome<U> {
    /// Signed in: the token and the response that carries it.
    SignedIn {
        /// Who signed in.
        user: U,
        /// What the strategy issued.
        token: IssuedToken,
        /// The transport's response, after `on_after_login` had its say.
        response: Box<Response>,
    },
    /// The credentials are right, but a second factor must be given first; nothing issued.
    SecondFactorRequired {
        /// Who is signing in.
        user: U,
        /// The pending sign-in when the user has a factor of ours (`LOGIN_MFA_REQUIRED`);
        /// `None` when only [`UserHooks::second_factor`] asked for one.
        mfa: Option<crate::mfa::MfaRequired>,
    },
}

/// Counts a sign-in attempt by method (`password`, `oauth`: provider names are the
/// application's, so they stay out of the label set) and outcome (`ok`, an error code).
fn count_sign_in(method: &SignInMethod, outcome: &'static str) {
    let method = match method {
        SignInMethod::Password => "password",
        SignInMethod::OAuth(_) => "oauth",
        SignInMethod::Passkey => "passkey",
    };
    metrics::counter!("axum_users_sign_ins_total", "method" => method, "outcome" => outcome)
        .increment(1);
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// Signs in with e-mail and password through `backend`.
    ///
    /// An unknown e-mail costs one hash, as a wrong password does, and both answer
    /// [`ManagerError::BadCredentials`], as an inactive user does.
    ///
    /// # Errors
    /// [`ManagerError::BadCredentials`], [`ManagerError::UserNotVerified`],
    /// [`ManagerError::LoginRefused`], or a failure.
    pub async fn login_with_password(
        &self,
        email: &str,
        password: &str,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let method = SignInMethod::Password;
        let account = crate::limits::account_key(email).unwrap_or_else(|| email.to_owned());
        self.throttled(&method, &account, request, async {
            let user = match self.check_credentials(email, password).await? {
                Ok(user) => user,
                Err((failure, user_id)) => {
                    let refused = Refused::new(&method, &account, failure, request);
                    return Err(self
                        .refuse(refused, user_id.as_ref(), ManagerError::BadCredentials)
                        .await);
                }
            };
            self.finish_login(
                user,
                &method,
                &account,
                backend,
                request,
                LoginResponse::Transport,
                Proof::OneFactor,
            )
            .await
        })
        .await
    }

    /// Signs out: ends the token's session (which revokes every token of it, JWTs included),
    /// revokes the token through the backend's strategy and answers with the transport's logout
    /// response.
    ///
    /// # Errors
    /// A strategy failure.
    pub async fn logout(
        &self,
        backend: &AuthBackend<S::Id>,
        token: &crate::Secret,
    ) -> Result<Response, ManagerError> {
        self.end_session_of(backend, token.expose()).await?;
        backend.strategy.destroy_token(token.expose()).await?;
        Ok(crate::sessions::logout_response(backend))
    }

    /// Signs in the user a one-time login code of `provider` names (the code already proved who
    /// it is): the throttle under the account's e-mail key (the counters of its password and
    /// provider sign-ins), then `spend` (the code is used only once the throttle let it
    /// through; `false` means it was used meanwhile), then the same steps as every way in.
    #[cfg_attr(not(feature = "oauth"), allow(dead_code))]
    pub(crate) async fn login_with_code(
        &self,
        user_id: &S::Id,
        provider: &str,
        spend: impl Future<Output = Result<bool, ManagerError>> + Send,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let method = SignInMethod::OAuth(provider.to_owned());
        let owner = self.store().get(user_id).await?;
        let account = owner
            .as_ref()
            .and_then(|u| crate::limits::account_key(&u.email))
            .unwrap_or_else(|| format!("{provider}:{user_id}"));
        self.throttled(&method, &account, request, async {
            let (Some(user), true) = (owner, spend.await?) else {
                return Err(ManagerError::InvalidLoginCode);
            };
            self.finish_login(
                user,
                &method,
                &account,
                backend,
                request,
                LoginResponse::Transport,
                Proof::OneFactor,
            )
            .await
        })
        .await
    }

    /// Runs a sign-in's `checks` behind the throttle seam: the account's failure count is
    /// checked and spent in one atomic step before them (so that concurrent attempts at the
    /// last allowed failure cannot all spend a hash), then kept when they end in
    /// [`ManagerError::BadCredentials`] and taken back otherwise.
    pub(crate) async fn throttled<T>(
        &self,
        method: &SignInMethod,
        account: &str,
        request: Option<&Parts>,
        checks: impl std::future::Future<Output = Result<T, ManagerError>>,
    ) -> Result<T, ManagerError> {
        let slot = self.throttle(method, account, request).await?;
        let outcome = checks.await;
        let failed = matches!(
            outcome,
            Err(ManagerError::BadCredentials
                | ManagerError::MfaInvalidCode
                | ManagerError::PasskeyInvalid)
        );
        self.defences().end_attempt(slot, failed).await;
        outcome
    }

    /// The seam before any credential is checked; see [`UserManager::throttled`], which ends
    /// the slot it takes.
    async fn throttle(
        &self,
        method: &SignInMethod,
        account: &str,
        request: Option<&Parts>,
    ) -> Result<Option<crate::limits::AttemptSlot>, ManagerError> {
        let attempt = LoginAttempt {
            method,
            account,
            request,
        };
        let refused = Refused::new(method, account, LoginFailure::Throttled, request);
        if let Err(hook) = self.hooks().before_login(&attempt).await {
            let error = ManagerError::LoginRefused(hook.retry_after);
            return Err(self.refuse(refused, None, error).await);
        }
        match self.defend_login(account, request).await {
            Ok(slot) => Ok(slot),
            Err(error) => Err(self.refuse(refused, None, error).await),
        }
    }

    /// Fires the failure events (the hook's and the audit log's) and hands the error back (the
    /// failure itself was counted by the throttle seam, see [`UserManager::throttled`]).
    pub(crate) async fn refuse(
        &self,
        refused: Refused<'_>,
        user_id: Option<&S::Id>,
        error: ManagerError,
    ) -> ManagerError {
        let Refused {
            method,
            account,
            failure,
            request,
        } = refused;
        let reason = match &error {
            ManagerError::BadCredentials => ErrorCode::LoginBadCredentials.as_str(),
            ManagerError::UserNotVerified => ErrorCode::LoginUserNotVerified.as_str(),
            ManagerError::LoginRefused(_) => ErrorCode::TooManyRequests.as_str(),
            ManagerError::MfaInvalidCode => ErrorCode::MfaInvalidCode.as_str(),
            ManagerError::PasskeyInvalid => ErrorCode::PasskeyInvalid.as_str(),
            _ => ErrorCode::LoginBadCredentials.as_str(),
        };
        count_sign_in(method, reason);
        self.hooks()
            .on_security_event(SecurityEvent::LoginFailed {
                account,
                method,
                reason,
            })
            .await;
        if self.records_refusal(&failure, account, request) {
            let event = AuditEvent::LoginFailed {
                method: method.to_string(),
                reason: failure,
            };
            self.audit(event, user_id, request).await;
        }
        error
    }

    /// Whether a refusal goes into the audit log: always, but a throttled one only as the
    /// first of its client and of its account in the window (`limits/records.rs`).
    fn records_refusal(
        &self,
        failure: &LoginFailure,
        account: &str,
        request: Option<&Parts>,
    ) -> bool {
        if !matches!(failure, LoginFailure::Throttled) {
            return true;
        }
        let defences = self.defences();
        let client = request
            .and_then(|parts| defences.client_ip.client_ip(parts))
            .map(crate::client_ip::ip_bucket);
        defences.throttle_records.should_record(
            client.as_deref(),
            account,
            crate::tokens::now_unix(),
        )
    }

    /// The steps after the credentials, shared by every way in: the rules, the second factor
    /// (the user's own factor after one factor, the application's hook unless this is the
    /// second step, see [`Proof`]), the token, `on_after_login` and the success event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish_login(
        &self,
        user: UserOf<S>,
        method: &SignInMethod,
        account: &str,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
        answer: LoginResponse<'_>,
        proof: Proof,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        if !user.is_active {
            let refused = Refused::new(method, account, LoginFailure::Inactive, request);
            return Err(self
                .refuse(refused, Some(&user.id), ManagerError::BadCredentials)
                .await);
        }
        if self.login_rules().requires_verification && !user.is_verified {
            let refused = Refused::new(method, account, LoginFailure::Unverified, request);
            return Err(self
                .refuse(refused, Some(&user.id), ManagerError::UserNotVerified)
                .await);
        }
        if proof == Proof::OneFactor
            && let Some(mfa) = self.second_factor_challenge(&user, method, backend).await?
        {
            count_sign_in(method, "second_factor_required");
            return Ok(LoginOutcome::SecondFactorRequired {
                user,
                mfa: Some(mfa),
            });
        }
        if proof != Proof::SecondStep
            && self.hooks().second_factor(&user, method).await == SecondFactor::Required
        {
            count_sign_in(method, "second_factor_required");
            return Ok(LoginOutcome::SecondFactorRequired { user, mfa: None });
        }
        let token = self.issue_sign_in(&user, method, backend, request).await?;
        let mut response = crate::sessions::login_response(backend, &token);
        if let LoginResponse::Redirect(url) = answer {
            crate::routes::redirect(&mut response, url);
        }
        self.hooks()
            .on_after_login(&user, request, &mut response)
            .await;
        count_sign_in(method, "ok");
        self.hooks()
            .on_security_event(SecurityEvent::LoginSucceeded {
                user: &user,
                method,
            })
            .await;
        self.record_sign_in(&user.id, method, request).await;
        Ok(LoginOutcome::SignedIn {
            user,
            token,
            response: Box::new(response),
        })
    }

    /// After a sign-in: `last_login_at` (one update) and the audit event (one insert).
    async fn record_sign_in(
        &self,
        user_id: &S::Id,
        method: &SignInMethod,
        request: Option<&Parts>,
    ) {
        if let Some(directory) = self.store().directory()
            && let Err(error) = directory.record_login(user_id, crate::now_unix()).await
        {
            tracing::warn!(%error, "last_login_at was not written");
        }
        let event = AuditEvent::LoginSucceeded {
            method: method.to_string(),
        };
        self.audit(event, Some(user_id), request).await;
    }
}

/// A refused sign-in, as [`UserManager::refuse`] records it.
#[derive(Clone, Copy)]
pub(crate) struct Refused<'a> {
    method: &'a SignInMethod,
    account: &'a str,
    failure: LoginFailure,
    request: Option<&'a Parts>,
}

impl<'a> Refused<'a> {
    pub(crate) fn new(
        method: &'a SignInMethod,
        account: &'a str,
        failure: LoginFailure,
        request: Option<&'a Parts>,
    ) -> Self {
        Self {
            method,
            account,
            failure,
            request,
        }
    }
}
