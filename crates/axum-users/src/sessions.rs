//! Sessions: one per sign-in, owning every token issued for it. Revoking a session ends its
//! access tokens of every strategy (JWTs carry its id as `sid`, database and Redis tokens name
//! it) and its refresh token at once, on every node.
//!
//! Refresh tokens rotate: each is single-use and only its hash is kept. Every hash rotated out
//! of a session is kept too, as long as the session lives, so that a second use is recognised:
//! the token replaced last succeeds again within the grace window (two tabs refreshing at once);
//! any other rotated-out token, or the last one after the window, revokes the session (a stolen
//! token was used).

use std::time::Duration;

use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, header};

use crate::auth::{AuthBackend, IssuedToken, Transport};
use crate::hooks::{SignInMethod, UserHooks};
use crate::login::LoginOutcome;
use crate::manager::{ManagerError, UserManager, UserOf};
use crate::secret::{Secret, constant_time_eq, hash_token, random_token};
use crate::store::{SessionStoreRef, StoreError, UserStore};
use crate::tokens::now_unix;

/// One sign-in: who, when, from where, how, through which backend, and its refresh state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session<Id> {
    /// Random id (128 bits, URL-safe base64); the `sid` claim of its JWTs.
    pub id: String,
    /// The user.
    pub user_id: Id,
    /// When it was created, Unix seconds.
    pub created_at: i64,
    /// When a token of it was last used, to the minute (see [`SessionSettings::touch_interval`]).
    pub last_seen_at: i64,
    /// When it ends whatever happens (absolute: refreshing does not extend it).
    pub expires_at: i64,
    /// The client's IP address at sign-in.
    pub ip: Option<String>,
    /// The client's `User-Agent` at sign-in (at most 512 bytes).
    pub user_agent: Option<String>,
    /// How it signed in: `password`, `oauth:<provider>`.
    pub method: String,
    /// The backend whose tokens it holds.
    pub backend: String,
    /// Its refresh-token hashes.
    pub refresh: RefreshState,
}

/// The refresh-token state of a session: hashes only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshState {
    /// Hash of the refresh token that is valid now.
    pub current: Option<String>,
    /// Hash of the token it replaced: presenting it again is reuse.
    pub previous: Option<String>,
    /// When `previous` was rotated out, Unix seconds (the start of the grace window).
    pub rotated_at: Option<i64>,
}

/// What [`crate::SessionStore::prune`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired sessions.
    pub sessions: u64,
    /// Access tokens of the database strategy (of expired sessions, or past their lifetime).
    pub access_tokens: u64,
}

/// Why a session ended, for [`UserHooks::on_session_revoked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeReason {
    /// The user signed out with this session's token.
    Logout,
    /// The user revoked it from the list of their sessions.
    User,
    /// A superuser (or the application) revoked it.
    Admin,
    /// The user changed their password: every other session ends.
    PasswordChange,
    /// The password was reset: every session ends.
    Reset,
    /// A rotated-out refresh token was presented after the grace window.
    ReuseDetected,
    /// The user was deactivated.
    Deactivated,
    /// The user was deleted.
    Deleted,
    /// The user's e-mail address changed (a confirmed change ends the other sessions).
    EmailChange,
    /// The user signed in once more than [`SessionSettings::max_sessions_per_user`] allows:
    /// their oldest session ended.
    TooManySessions,
    /// The user confirmed a second factor: the sessions that never passed it end (the
    /// confirming one stays).
    SecondFactorAdded,
    /// The user removed a passkey: their other sessions end (the removing one stays).
    SecondFactorRemoved,
}

impl RevokeReason {
    /// A stable name for logs: `logout`, `user`, `admin`, `password_change`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::User => "user",
            RevokeReason::Admin => "admin",
            RevokeReason::PasswordChange => "password_change",
            RevokeReason::Reset => "reset",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::Deactivated => "deactivated",
            RevokeReason::Deleted => "deleted",
            RevokeReason::EmailChange => "email_change",
            RevokeReason::TooManySessions => "too_many_sessions",
            RevokeReason::SecondFactorAdded => "second_factor_added",
            RevokeReason::SecondFactorRemoved => "second_factor_removed",
        }
    }
}

/// The longest grace window after a rotation ([`SessionSettings::reuse_grace`]): within it a
/// copied refresh token goes unnoticed.
pub const MAX_REUSE_GRACE: Duration = Duration::from_secs(60);

/// How sessions behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSettings {
    /// Every JWT check also checks that its session is live (default `true`); off, JWTs are
    /// stateless as in FastAPI Users and logout cannot revoke them.
    pub jwt_revocable: bool,
    /// Sign-ins also issue a refresh token (default `true`).
    pub refresh_tokens: bool,
    /// How long a session lives, absolutely (default 30 days).
    pub refresh_lifetime: Duration,
    /// How long after a rotation the old refresh token still succeeds (default 10 s, at most
    /// [`MAX_REUSE_GRACE`]).
    pub reuse_grace: Duration,
    /// `last_seen_at` is written at most once per this interval and session (default 60 s).
    pub touch_interval: Duration,
    /// The most live sessions a user keeps (default 100): a sign-in beyond ends the oldest.
    pub max_sessions_per_user: usize,
    /// Until this time (Unix seconds), a JWT without `sid` and without `iat`, the shape FastAPI
    /// Users issues, signed with the same secret, is accepted though `jwt_revocable` is on
    /// (default `None`: refused), while the user's password hash is still one this server did
    /// not write (see [`SessionSettings::with_fastapi_users_jwt_until`]).
    pub fastapi_users_jwt_until: Option<i64>,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            jwt_revocable: true,
            refresh_tokens: true,
            refresh_lifetime: Duration::from_secs(30 * 24 * 3600),
            reuse_grace: Duration::from_secs(10),
            touch_interval: Duration::from_secs(60),
            max_sessions_per_user: 100,
            fastapi_users_jwt_until: None,
        }
    }
}

impl SessionSettings {
    /// Sets [`SessionSettings::jwt_revocable`].
    pub fn with_jwt_revocable(mut self, on: bool) -> Self {
        self.jwt_revocable = on;
        self
    }

    /// Sets [`SessionSettings::fastapi_users_jwt_until`]: the end of the window in which the JWTs
    /// of a FastAPI Users deployment moved over (same secret) keep working.
    ///
    /// # Security
    /// Such a token has no session, so no logout or revocation reaches it: it lives until its
    /// own `exp` or the end of the window, whichever is first. A password change, a reset, or
    /// the rehash at the user's first password sign-in here voids it (the token is accepted
    /// only while the stored hash is not one of this server's current parameters). Keep the
    /// window short: the reference's JWT lifetime (one hour by default) is enough.
    pub fn with_fastapi_users_jwt_until(mut self, until: Option<i64>) -> Self {
        self.fastapi_users_jwt_until = until;
        self
    }

    /// Sets [`SessionSettings::refresh_tokens`].
    pub fn with_refresh_tokens(mut self, on: bool) -> Self {
        self.refresh_tokens = on;
        self
    }

    /// Sets [`SessionSettings::refresh_lifetime`].
    pub fn with_refresh_lifetime(mut self, lifetime: Duration) -> Self {
        self.refresh_lifetime = lifetime;
        self
    }

    /// Sets [`SessionSettings::max_sessions_per_user`] (at least 1).
    pub fn with_max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_sessions_per_user = max.max(1);
        self
    }

    /// Sets [`SessionSettings::reuse_grace`], capped at [`MAX_REUSE_GRACE`].
    pub fn with_reuse_grace(mut self, grace: Duration) -> Self {
        self.reuse_grace = grace.min(MAX_REUSE_GRACE);
        self
    }
}

/// The session making a request, as a request extension: the routes (and the hosted pages)
/// that change a user on their own behalf add it, so that the manager keeps that session when
/// it ends the others (a password change, a confirmed e-mail change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentSession(pub String);

/// The longest `User-Agent` kept.
const MAX_USER_AGENT: usize = 512;
/// How often a refresh retries its compare-and-swap when concurrent refreshes of one session
/// keep winning it.
const SWAP_ATTEMPTS: usize = 32;

/// A new random session id: 128 bits.
pub(crate) fn new_session_id() -> String {
    random_token(16)
}

fn user_agent(request: Option<&Parts>) -> Option<String> {
    let raw = request?.headers.get(header::USER_AGENT)?.as_bytes();
    let agent = String::from_utf8_lossy(raw);
    let mut end = agent.len().min(MAX_USER_AGENT);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    Some(agent[..end].to_owned())
}

/// The refresh cookie of a cookie backend, named `<name>_refresh` and sent only to the
/// backend's routes (`/auth/<backend>/`: refresh and logout). It takes the auth cookie's
/// `Domain`, `SameSite`, `HttpOnly` and `Secure` (which is off only when the auth cookie's is
/// turned off explicitly, for local development over plain HTTP); its `Max-Age` is the
/// session's remaining lifetime (see [`login_response`]).
pub(crate) fn refresh_cookie(
    cookie: &crate::auth::CookieSettings,
    backend: &str,
) -> crate::auth::CookieSettings {
    let mut refresh = cookie.clone();
    refresh.name = format!("{}_refresh", cookie.name);
    refresh.path = format!("/auth/{backend}/");
    refresh
}

/// The refresh cookie's `Max-Age`: what remains of the session, else the auth cookie's.
fn refresh_max_age(settings: &crate::auth::CookieSettings, token: &IssuedToken) -> Option<u64> {
    match token.session_expires_at {
        Some(end) => Some(end.saturating_sub(now_unix()).max(0) as u64),
        None => settings.max_age,
    }
}

fn append_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The login response of `backend` for `token`, with the refresh cookie for a cookie backend.
pub(crate) fn login_response<Id>(backend: &AuthBackend<Id>, token: &IssuedToken) -> Response {
    let mut response = backend.transport.login_response(token);
    if let (Transport::Cookie(cookie), Some(refresh)) = (&backend.transport, &token.refresh_token) {
        let settings = refresh_cookie(cookie, &backend.name);
        let max_age = refresh_max_age(&settings, token);
        append_cookie(
            &mut response,
            settings.set_cookie(refresh.expose(), max_age),
        );
    }
    response
}

/// The logout response of `backend`, clearing the refresh cookie too.
pub(crate) fn logout_response<Id>(backend: &AuthBackend<Id>) -> Response {
    let mut response = backend.transport.logout_response();
    if let Transport::Cookie(cookie) = &backend.transport {
        let settings = refresh_cookie(cookie, &backend.name);
        append_cookie(&mut response, settings.set_cookie("", Some(0)));
    }
    response
}

impl<S, H> UserManager<S, H>
where
    S: UserStore,
    H: UserHooks<S::Id, S::Fields>,
{
    /// The store's sessions, if it keeps them.
    pub(crate) fn sessions(&self) -> Option<SessionStoreRef<S::Id, S::Fields>> {
        self.store().session_store()
    }

    /// Issues the token of a sign-in: a new session (when the store keeps sessions) owning the
    /// access token, and a refresh token when they are on.
    pub(crate) async fn issue_sign_in(
        &self,
        user: &UserOf<S>,
        method: &SignInMethod,
        backend: &AuthBackend<S::Id>,
        request: Option<&Parts>,
    ) -> Result<IssuedToken, ManagerError> {
        let Some(sessions) = self.sessions() else {
            return Ok(backend.strategy.write_token(&user.id).await?);
        };
        let settings = self.session_settings();
        let now = now_unix();
        let refresh = settings.refresh_tokens.then(|| random_token(32));
        let session = crate::Session {
            id: new_session_id(),
            user_id: user.id.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: now.saturating_add(settings.refresh_lifetime.as_secs() as i64),
            // The limiter's and the audit log's client: behind a trusted proxy, the
            // forwarded one, not the proxy.
            ip: request
                .and_then(|p| self.defences().client_ip.client_ip(p))
                .map(|ip| ip.to_string()),
            user_agent: user_agent(request),
            method: method.to_string(),
            backend: backend.name.clone(),
            refresh: RefreshState {
                current: refresh.as_deref().map(hash_token),
                previous: None,
                rotated_at: None,
            },
        };
        let live = sessions.list_sessions(&user.id, now).await?;
        let new_device = self.new_device(user, &session, &live).await;
        sessions.create_session(&session).await?;
        self.evict_oldest_sessions(&user.id, &live).await?;
        let mut token = backend
            .strategy
            .write_session_token_until(&user.id, &session.id, session.expires_at)
            .await?;
        token.refresh_token = refresh.map(Secret::new);
        token.session_id = Some(session.id);
        token.session_expires_at = Some(session.expires_at);
        if let Some(device) = &new_device {
            self.hooks().on_new_device(user, device).await;
        }
        Ok(token)
    }

    /// The new session as a [`crate::NewDevice`], when none of the user's `live` sessions has
    /// its user agent and the user had signed in before (live sessions, or `last_login_at`).
    async fn new_device(
        &self,
        user: &UserOf<S>,
        session: &crate::Session<S::Id>,
        live: &[crate::Session<S::Id>],
    ) -> Option<crate::NewDevice> {
        if live.iter().any(|s| s.user_agent == session.user_agent) {
            return None;
        }
        let signed_in_before = !live.is_empty()
            || matches!(
                self.user_times(&user.id).await,
                Ok(Some(times)) if times.last_login_at.is_some()
            );
        signed_in_before.then(|| crate::NewDevice {
            ip: session.ip.clone(),
            user_agent: session.user_agent.clone(),
            method: session.method.clone(),
            at: session.created_at,
        })
    }

    /// Ends the session a token belongs to, if any (logout).
    pub(crate) async fn end_session_of(
        &self,
        backend: &AuthBackend<S::Id>,
        token: &str,
    ) -> Result<(), ManagerError> {
        if let Some(owner) = backend.strategy.read_token_owner(token).await?
            && let Some(sid) = owner.session_id
        {
            self.revoke_session(&owner.user_id, &sid, RevokeReason::Logout)
                .await?;
        }
        Ok(())
    }

    /// Ends the session a refresh token of `backend` belongs to (logout once the access token
    /// expired); returns whether one ended.
    pub(crate) async fn end_session_of_refresh(
        &self,
        backend: &AuthBackend<S::Id>,
        refresh_token: &str,
    ) -> Result<bool, ManagerError> {
        let Some(sessions) = self.sessions() else {
            return Ok(false);
        };
        let found = sessions
            .find_session_by_refresh(&hash_token(refresh_token), now_unix())
            .await?;
        match found {
            Some(session) if session.backend == backend.name => {
                self.revoke_session(&session.user_id, &session.id, RevokeReason::Logout)
                    .await
            }
            _ => Ok(false),
        }
    }

    /// The session rules of an update: deactivating a user ends all their sessions; a new
    /// password ends every session but the one making the request (see [`CurrentSession`]).
    pub(crate) async fn end_sessions_after_update(
        &self,
        user_id: &S::Id,
        deactivated: bool,
        password_changed: bool,
        request: Option<&Parts>,
    ) -> Result<(), ManagerError> {
        if deactivated {
            self.revoke_sessions_for(user_id, None, RevokeReason::Deactivated, request)
                .await?;
        } else if password_changed {
            let current = request
                .and_then(|r| r.extensions.get::<CurrentSession>())
                .map(|c| c.0.as_str());
            self.revoke_sessions_for(user_id, current, RevokeReason::PasswordChange, request)
                .await?;
        }
        Ok(())
    }

    /// Trades a refresh token for a new access token and a new refresh token of the same
    /// session (see the module documentation for reuse and its grace window).
    ///
    /// # Errors
    /// [`ManagerError::RefreshTokenInvalid`] for an unknown, expired or revoked token, another
    /// backend's token, or an inactive user; [`ManagerError::RefreshTokenReused`] when a
    /// rotated-out token comes back after the grace window (the session is revoked); or a
    /// failure.
    pub async fn refresh(
        &self,
        backend: &AuthBackend<S::Id>,
        refresh_token: &str,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        let sessions = self.sessions().ok_or(ManagerError::RefreshTokenInvalid)?;
        if refresh_token.is_empty() || !self.session_settings().refresh_tokens {
            return Err(ManagerError::RefreshTokenInvalid);
        }
        let presented = hash_token(refresh_token);
        let grace = self.session_settings().reuse_grace.as_secs() as i64;
        let next_token = random_token(32);
        let next_hash = hash_token(&next_token);
        let mut rotated = None;
        let mut user = None;
        for _ in 0..SWAP_ATTEMPTS {
            let now = now_unix();
            let Some(session) = sessions.find_session_by_refresh(&presented, now).await? else {
                return Err(ManagerError::RefreshTokenInvalid);
            };
            if session.backend != backend.name {
                return Err(ManagerError::RefreshTokenInvalid);
            }
            // The user may still sign in: checked before anything rotates.
            if user.is_none() {
                user = Some(self.user_who_may_refresh(&session.user_id).await?);
            }
            let state = &session.refresh;
            let is = |hash: &Option<String>| {
                hash.as_deref()
                    .is_some_and(|h| constant_time_eq(h.as_bytes(), presented.as_bytes()))
            };
            let (expected, next, retired) = if is(&state.current) {
                // The token it pushes out of `previous` stays known as rotated out.
                let next = RefreshState {
                    current: Some(next_hash.clone()),
                    previous: Some(presented.clone()),
                    rotated_at: Some(now),
                };
                (presented.clone(), next, state.previous.clone())
            } else if is(&state.previous) {
                let rotated_at = state.rotated_at.unwrap_or(i64::MIN);
                if now.saturating_sub(rotated_at) > grace {
                    return self.reuse_detected(&session).await;
                }
                // Within the grace window: the same session goes on with a new current token;
                // the window still runs from the first rotation. The current token it replaces
                // is recorded as rotated out: whoever holds it (the first tab, or the owner
                // when a thief raced them) revokes the session by presenting it.
                let Some(current) = state.current.clone() else {
                    return Err(ManagerError::RefreshTokenInvalid);
                };
                let next = RefreshState {
                    current: Some(next_hash.clone()),
                    previous: state.previous.clone(),
                    rotated_at: state.rotated_at,
                };
                (current.clone(), next, Some(current))
            } else {
                // Found, but neither current nor previous: a token of an earlier rotation.
                return self.reuse_detected(&session).await;
            };
            if sessions
                .swap_refresh(&session.id, &expected, &next, retired.as_deref())
                .await?
            {
                rotated = Some(session);
                break;
            }
        }
        let Some(session) = rotated else {
            return Err(ManagerError::Store(StoreError::Unavailable(
                "the refresh state kept changing under concurrent refreshes".into(),
            )));
        };
        let Some(user) = user else {
            return Err(ManagerError::RefreshTokenInvalid);
        };
        // The access tokens of before the previous refresh are superseded (database tokens
        // would otherwise pile up, one per refresh); the last one lives on, so that requests
        // in flight with it still succeed. Best effort: bookkeeping does not fail a refresh.
        if let Some(previous) = session.refresh.rotated_at
            && let Err(e) = sessions
                .delete_session_tokens_before(&session.id, previous.saturating_sub(grace))
                .await
        {
            tracing::warn!(error = %e, "could not delete superseded access tokens");
        }
        let mut token = backend
            .strategy
            .write_session_token_until(&user.id, &session.id, session.expires_at)
            .await?;
        token.refresh_token = Some(Secret::new(next_token));
        token.session_id = Some(session.id);
        token.session_expires_at = Some(session.expires_at);
        let response = login_response(backend, &token);
        Ok(LoginOutcome::SignedIn {
            user,
            token,
            response: Box::new(response),
        })
    }

    /// Ends the user's oldest sessions beyond [`SessionSettings::max_sessions_per_user`] (a
    /// sign-in loop cannot grow the table without bound).
    async fn evict_oldest_sessions(
        &self,
        user_id: &S::Id,
        others: &[crate::Session<S::Id>],
    ) -> Result<(), ManagerError> {
        let max = self.session_settings().max_sessions_per_user.max(1);
        // `others`: the live sessions before the new one, newest first.
        for old in others.iter().skip(max - 1) {
            self.revoke_session(user_id, &old.id, RevokeReason::TooManySessions)
                .await?;
        }
        Ok(())
    }

    /// The user of a session being refreshed, if they may still sign in.
    async fn user_who_may_refresh(&self, user_id: &S::Id) -> Result<UserOf<S>, ManagerError> {
        match self.store().get(user_id).await? {
            Some(user)
                if user.is_active
                    && (user.is_verified || !self.login_rules().requires_verification) =>
            {
                Ok(user)
            }
            _ => Err(ManagerError::RefreshTokenInvalid),
        }
    }

    /// A rotated-out refresh token came back: the session ends for everyone holding its tokens.
    async fn reuse_detected(
        &self,
        session: &crate::Session<S::Id>,
    ) -> Result<LoginOutcome<UserOf<S>>, ManagerError> {
        self.audit(
            crate::AuditEvent::RefreshReuseDetected,
            Some(&session.user_id),
            None,
        )
        .await;
        self.revoke_session(&session.user_id, &session.id, RevokeReason::ReuseDetected)
            .await?;
        Err(ManagerError::RefreshTokenReused)
    }

    /// The user of a live session, checking that the token's user owns it; writes
    /// `last_seen_at` when it is older than the touch interval. One query, plus one write a
    /// minute.
    pub(crate) async fn user_of_session(
        &self,
        user_id: &S::Id,
        session_id: &str,
    ) -> Result<Option<UserOf<S>>, ManagerError> {
        let Some(sessions) = self.sessions() else {
            return Ok(self.store().get(user_id).await?);
        };
        let now = now_unix();
        let Some((user, session)) = sessions.user_of_session(session_id, now).await? else {
            return Ok(None);
        };
        if &user.id != user_id {
            return Ok(None);
        }
        let stale_before = now - self.session_settings().touch_interval.as_secs() as i64;
        // Best effort: a failed bookkeeping write does not refuse a valid token.
        if session.last_seen_at < stale_before
            && let Err(e) = sessions.touch_session(session_id, now, stale_before).await
        {
            tracing::warn!(error = %e, "could not record last_seen_at");
        }
        Ok(Some(user))
    }

    /// The user's live sessions, newest first.
    ///
    /// # Errors
    /// A store failure.
    pub async fn list_sessions(
        &self,
        user_id: &S::Id,
    ) -> Result<Vec<crate::Session<S::Id>>, ManagerError> {
        match self.sessions() {
            Some(sessions) => Ok(sessions.list_sessions(user_id, now_unix()).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Revokes one session of `user_id`; returns whether it existed (and was theirs).
    ///
    /// # Errors
    /// A store failure.
    pub async fn revoke_session(
        &self,
        user_id: &S::Id,
        session_id: &str,
        reason: RevokeReason,
    ) -> Result<bool, ManagerError> {
        let Some(sessions) = self.sessions() else {
            return Ok(false);
        };
        let gone = sessions
            .delete_sessions(user_id, Some(session_id), None)
            .await?;
        self.announce_revoked(user_id, &gone, reason, None).await;
        Ok(!gone.is_empty())
    }

    /// Revokes every session of `user`, but `except` when given (the current one); returns how
    /// many ended. Every token of those sessions stops working at once, on every node.
    ///
    /// # Errors
    /// A store failure.
    pub async fn revoke_sessions(
        &self,
        user_id: &S::Id,
        except: Option<&str>,
        reason: RevokeReason,
    ) -> Result<usize, ManagerError> {
        self.revoke_sessions_for(user_id, except, reason, None)
            .await
    }

    /// [`Self::revoke_sessions`] on behalf of `request`: its client and actor (a superuser) go
    /// into each revocation's audit record.
    ///
    /// # Errors
    /// A store failure.
    pub async fn revoke_sessions_for(
        &self,
        user_id: &S::Id,
        except: Option<&str>,
        reason: RevokeReason,
        request: Option<&Parts>,
    ) -> Result<usize, ManagerError> {
        let Some(sessions) = self.sessions() else {
            return Ok(0);
        };
        let gone = sessions.delete_sessions(user_id, None, except).await?;
        self.announce_revoked(user_id, &gone, reason, request).await;
        Ok(gone.len())
    }

    /// Deletes expired sessions and their access tokens, and database-strategy tokens created
    /// before `tokens_before`.
    ///
    /// # Errors
    /// A store failure.
    pub async fn prune_sessions(&self, tokens_before: Option<i64>) -> Result<Pruned, ManagerError> {
        match self.sessions() {
            Some(sessions) => Ok(sessions.prune(now_unix(), tokens_before).await?),
            None => Ok(Pruned::default()),
        }
    }

    async fn announce_revoked(
        &self,
        user_id: &S::Id,
        ids: &[String],
        reason: RevokeReason,
        request: Option<&Parts>,
    ) {
        for id in ids {
            tracing::info!(session = %short(id), reason = reason.as_str(), "session revoked");
            self.hooks().on_session_revoked(user_id, id, reason).await;
            let event = match reason {
                RevokeReason::Logout => crate::AuditEvent::Logout,
                reason => crate::AuditEvent::SessionRevoked { reason },
            };
            self.audit(event, Some(user_id), request).await;
        }
    }
}

/// The first characters of a session id, for logs.
fn short(id: &str) -> &str {
    id.get(..6).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_window_is_capped() {
        let long = SessionSettings::default().with_reuse_grace(Duration::from_secs(3600));
        assert_eq!(long.reuse_grace, MAX_REUSE_GRACE);
        let short = SessionSettings::default().with_reuse_grace(Duration::from_secs(5));
        assert_eq!(short.reuse_grace, Duration::from_secs(5));
    }

    #[test]
    fn session_ids_have_128_bits_and_differ() {
        let a = new_session_id();
        assert_eq!(a.len(), 22, "16 bytes in unpadded base64url");
        assert_ne!(a, new_session_id());
    }

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        let long = "é".repeat(400);
        let request = http::Request::builder()
            .header(header::USER_AGENT, long.as_str())
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let agent = user_agent(Some(&request)).unwrap();
        assert!(agent.len() <= MAX_USER_AGENT);
        assert!(long.starts_with(&agent));
    }

    #[test]
    fn the_refresh_cookie_is_scoped_to_the_backend_and_lives_as_long_as_the_session() {
        let mut auth = crate::CookieSettings::auth();
        auth.max_age = Some(3600);
        let cookie = refresh_cookie(&auth, "cookie");
        let mut token = IssuedToken::new("a", None);
        assert_eq!(refresh_max_age(&cookie, &token), Some(3600));
        token.session_expires_at = Some(now_unix() + 30 * 24 * 3600);
        let age = refresh_max_age(&cookie, &token).unwrap();
        assert!(
            (30 * 24 * 3600 - 2..=30 * 24 * 3600).contains(&age),
            "{age}"
        );
        assert_eq!(
            cookie.set_cookie("r", Some(age)),
            format!(
                "fastapiusersauth_refresh=r; HttpOnly; Max-Age={age}; Path=/auth/cookie/; \
                 SameSite=lax; Secure"
            )
        );
        token.session_expires_at = Some(now_unix() - 5);
        assert_eq!(refresh_max_age(&cookie, &token), Some(0), "never negative");
    }
}
