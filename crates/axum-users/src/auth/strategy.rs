//! Strategies: what a token is and how it maps to a user id (spec section 4.2).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::UserId;
use crate::secret::{Secret, hash_token, random_token};
use crate::store::{AccessTokenStore, BoxError, StoreError};
use crate::tokens::{AUTH_AUDIENCE, JwtCodec, TokenError, now_unix};

/// A boxed `Send` future: the shim that lets strategies live in a list of trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A token a strategy issued at sign-in, for the transport to render.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IssuedToken {
    /// The access token; redacted in `Debug`.
    pub access_token: Secret,
    /// How long the access token lives, when it expires by itself.
    pub lifetime: Option<Duration>,
    /// A refresh token, for strategies that issue one.
    pub refresh_token: Option<Secret>,
    /// The session the token belongs to, for strategies that keep sessions.
    pub session_id: Option<String>,
    /// When that session ends (Unix seconds): the refresh token's lifetime.
    pub session_expires_at: Option<i64>,
}

impl IssuedToken {
    /// An access token without refresh token or session.
    pub fn new(access_token: impl Into<Secret>, lifetime: Option<Duration>) -> Self {
        Self {
            access_token: access_token.into(),
            lifetime,
            refresh_token: None,
            session_id: None,
            session_expires_at: None,
        }
    }
}

/// Who a token stands for: the user, and the session it belongs to when the strategy keeps one
/// (the authenticator then checks that the session is live).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenOwner<Id> {
    /// The user.
    pub user_id: Id,
    /// The session, for tokens issued for one.
    pub session_id: Option<String>,
    /// Whether the token is valid only while its session is live (every token with a
    /// session, but a JWT of a strategy that is not revocable).
    pub revocable: bool,
    /// Whether a token of this kind without a session is refused when the store keeps
    /// sessions: no revocation could reach it (a JWT without `sid` of a revocable strategy, a
    /// Redis value without a session: both issued before sessions existed). Database tokens
    /// without a session are accepted: revoking the user's sessions deletes them.
    pub needs_session: bool,
    /// A JWT FastAPI Users issued (no `sid`, no `iat`), accepted within the window of
    /// [`crate::SessionSettings::fastapi_users_jwt_until`]: the manager accepts it only while the
    /// user's password hash is still one this server did not write.
    pub fastapi_users: bool,
}

impl<Id> TokenOwner<Id> {
    /// A token of `user_id`, of the session `session_id` if any (then revocable).
    pub fn new(user_id: Id, session_id: Option<String>) -> Self {
        Self {
            needs_session: false,
            fastapi_users: false,
            revocable: session_id.is_some(),
            user_id,
            session_id,
        }
    }
}

/// Why a strategy could not read, write or revoke a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StrategyError {
    /// The service that keeps the tokens (a database, Redis) is down; worth retrying later.
    #[error("the token store is unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The token could not be signed.
    #[error("the token could not be signed: {0}")]
    Signing(#[from] TokenError),
    /// Any other failure of the token store.
    #[error("the token store failed: {0}")]
    Backend(#[source] BoxError),
}

impl From<StoreError> for StrategyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => StrategyError::Unavailable(cause),
            other => StrategyError::Backend(Box::new(other)),
        }
    }
}

/// Turns users into tokens and back. Implemented by the JWT and database strategies here and by
/// the Redis strategy in `axum-users-redis`.
pub trait Strategy<Id>: Send + Sync + 'static {
    /// The user id a token stands for, or `None` for an unknown, expired or malformed token.
    fn read_token<'a>(&'a self, token: &'a str)
    -> BoxFuture<'a, Result<Option<Id>, StrategyError>>;

    /// A new token for a user.
    fn write_token<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>>;

    /// Revokes a token; a no-op for stateless tokens.
    fn destroy_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), StrategyError>>;

    /// The user and session a token stands for. Strategies that keep no session answer with
    /// [`Strategy::read_token`] and no session (their tokens then outlive a revocation).
    fn read_token_owner<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenOwner<Id>>, StrategyError>>
    where
        Id: Send + 'a,
    {
        let read = self.read_token(token);
        Box::pin(async move { Ok(read.await?.map(|id| TokenOwner::new(id, None))) })
    }

    /// As [`Strategy::write_session_token`], for a session that ends at `session_ends` (Unix
    /// seconds): a token that lives by itself (a JWT) expires then at the latest. Defaults to
    /// [`Strategy::write_session_token`] (a stored token dies with its session).
    fn write_session_token_until<'a>(
        &'a self,
        user_id: &'a Id,
        session_id: &'a str,
        session_ends: i64,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        let _ = session_ends;
        self.write_session_token(user_id, session_id)
    }

    /// A new token for a user that belongs to the session `session_id`, so that revoking the
    /// session revokes it. Defaults to [`Strategy::write_token`].
    fn write_session_token<'a>(
        &'a self,
        user_id: &'a Id,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        let _ = session_id;
        self.write_token(user_id)
    }
}

#[derive(Serialize, Deserialize)]
struct AuthClaims {
    sub: String,
    aud: Vec<String>,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    /// The session the token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<String>,
}

/// Signed tokens. Issued at a sign-in they carry the session id (`sid`); revocable (the
/// default), each check also checks that the session is live, so logout revokes them. Not
/// revocable, they are stateless and live until they expire.
#[derive(Debug, Clone)]
pub struct JwtStrategy<Id> {
    codec: JwtCodec,
    lifetime: Duration,
    audience: String,
    revocable: bool,
    fastapi_users_until: Option<i64>,
    _id: PhantomData<fn() -> Id>,
}

impl<Id> JwtStrategy<Id> {
    /// Tokens signed by `codec`, valid for `lifetime` (every token expires: a JWT cannot be
    /// revoked, so one without `exp` would be valid forever).
    pub fn new(codec: JwtCodec, lifetime: Duration) -> Self {
        Self {
            codec,
            lifetime,
            audience: AUTH_AUDIENCE.into(),
            revocable: true,
            fastapi_users_until: None,
            _id: PhantomData,
        }
    }

    /// Whether each check also checks the token's session (default `true`).
    pub fn with_revocable(mut self, revocable: bool) -> Self {
        self.revocable = revocable;
        self
    }

    /// Until `until` (Unix seconds), a token without `sid` and without `iat` (one FastAPI Users
    /// issued with the same secret) is not refused for its missing session (see
    /// [`crate::SessionSettings::fastapi_users_jwt_until`]); `None` (the default) refuses it.
    pub fn with_fastapi_users_jwt_until(mut self, until: Option<i64>) -> Self {
        self.fastapi_users_until = until;
        self
    }

    fn sign(&self, user_id: &Id, sid: Option<&str>) -> Result<IssuedToken, StrategyError>
    where
        Id: UserId,
    {
        self.sign_until(user_id, sid, i64::MAX)
    }

    /// Signs a token that expires after its lifetime or at `not_after`, whichever is first.
    fn sign_until(
        &self,
        user_id: &Id,
        sid: Option<&str>,
        not_after: i64,
    ) -> Result<IssuedToken, StrategyError>
    where
        Id: UserId,
    {
        let now = now_unix();
        let exp = now
            .saturating_add(self.lifetime.as_secs() as i64)
            .min(not_after);
        let claims = AuthClaims {
            sub: user_id.to_string(),
            aud: vec![self.audience.clone()],
            exp,
            iat: Some(now),
            sid: sid.map(str::to_owned),
        };
        let lifetime = Duration::from_secs(exp.saturating_sub(now).max(0) as u64);
        self.codec
            .encode(&claims)
            .map(|t| IssuedToken::new(t, Some(lifetime)))
            .map_err(StrategyError::from)
    }

    /// Another audience than `fastapi-users:auth`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }
}

impl<Id: UserId> Strategy<Id> for JwtStrategy<Id> {
    fn read_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Id>, StrategyError>> {
        let id = self
            .codec
            .decode::<AuthClaims>(token, &self.audience)
            .ok()
            .and_then(|c| Id::parse(&c.sub));
        Box::pin(async move { Ok(id) })
    }

    fn write_token<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        let token = self.sign(user_id, None);
        Box::pin(async move { token })
    }

    fn destroy_token<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Result<(), StrategyError>> {
        Box::pin(async { Ok(()) })
    }

    fn read_token_owner<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenOwner<Id>>, StrategyError>>
    where
        Id: Send + 'a,
    {
        let owner = self
            .codec
            .decode::<AuthClaims>(token, &self.audience)
            .ok()
            .and_then(|c| {
                let foreign = c.sid.is_none()
                    && c.iat.is_none()
                    && self.revocable
                    && self
                        .fastapi_users_until
                        .is_some_and(|until| now_unix() < until);
                let mut owner = TokenOwner::new(Id::parse(&c.sub)?, c.sid);
                owner.revocable &= self.revocable;
                owner.needs_session = self.revocable && !foreign;
                owner.fastapi_users = foreign;
                Some(owner)
            });
        Box::pin(async move { Ok(owner) })
    }

    fn write_session_token<'a>(
        &'a self,
        user_id: &'a Id,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        let token = self.sign(user_id, Some(session_id));
        Box::pin(async move { token })
    }

    fn write_session_token_until<'a>(
        &'a self,
        user_id: &'a Id,
        session_id: &'a str,
        session_ends: i64,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        let token = self.sign_until(user_id, Some(session_id), session_ends);
        Box::pin(async move { token })
    }
}

/// Opaque random tokens (256 bits) kept in a table as SHA-256 hashes; logout deletes the row.
#[derive(Debug, Clone)]
pub struct DatabaseStrategy<T> {
    store: T,
    lifetime: Option<Duration>,
}

impl<T> DatabaseStrategy<T> {
    /// Tokens in `store`, valid for `lifetime` after creation (`None`: until logout).
    pub fn new(store: T, lifetime: Option<Duration>) -> Self {
        Self {
            store,
            lifetime: lifetime.filter(|d| !d.is_zero()),
        }
    }
}

impl<T: AccessTokenStore> Strategy<T::Id> for DatabaseStrategy<T> {
    fn read_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<T::Id>, StrategyError>> {
        Box::pin(async move {
            if token.is_empty() {
                return Ok(None);
            }
            let not_before = self.lifetime.map(|d| now_unix() - d.as_secs() as i64);
            Ok(self
                .store
                .find_token(&hash_token(token), not_before)
                .await?)
        })
    }

    fn write_token<'a>(
        &'a self,
        user_id: &'a T::Id,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        Box::pin(async move {
            let token = random_token(32);
            self.store
                .create_token(&hash_token(&token), user_id, now_unix())
                .await?;
            Ok(IssuedToken::new(token, self.lifetime))
        })
    }

    fn destroy_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), StrategyError>> {
        Box::pin(async move { Ok(self.store.delete_token(&hash_token(token)).await?) })
    }

    fn read_token_owner<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenOwner<T::Id>>, StrategyError>>
    where
        T::Id: Send + 'a,
    {
        Box::pin(async move {
            if token.is_empty() {
                return Ok(None);
            }
            let not_before = self.lifetime.map(|d| now_unix() - d.as_secs() as i64);
            let found = self
                .store
                .find_session_token(&hash_token(token), not_before)
                .await?;
            Ok(found.map(|(id, sid)| TokenOwner::new(id, sid)))
        })
    }

    fn write_session_token<'a>(
        &'a self,
        user_id: &'a T::Id,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        Box::pin(async move {
            let token = random_token(32);
            self.store
                .create_session_token(&hash_token(&token), user_id, session_id, now_unix())
                .await?;
            Ok(IssuedToken::new(token, self.lifetime))
        })
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::Secret;

    #[tokio::test]
    async fn jwt_round_trip_with_array_audience() {
        let codec = JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        let s: JwtStrategy<Uuid> = JwtStrategy::new(codec.clone(), Duration::from_secs(3600));
        let id = Uuid::new_v4();
        let issued = s.write_token(&id).await.unwrap();
        assert_eq!(issued.lifetime, Some(Duration::from_secs(3600)));
        let token = issued.access_token.expose().to_owned();
        assert_eq!(s.read_token(&token).await.unwrap(), Some(id));
        let claims: serde_json::Value = codec.decode(&token, AUTH_AUDIENCE).unwrap();
        assert_eq!(claims["aud"], serde_json::json!(["fastapi-users:auth"]));
        assert!(claims["exp"].is_i64());
        assert!(claims["iat"].is_i64());
        assert!(
            !format!("{issued:?}").contains(&token),
            "the token is redacted"
        );
        assert_eq!(s.read_token("garbage").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_jwt_without_sid_needs_a_session_when_revocable_and_exp_stops_at_the_session_end() {
        let codec = JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        let id = Uuid::new_v4();
        for revocable in [true, false] {
            let s: JwtStrategy<Uuid> = JwtStrategy::new(codec.clone(), Duration::from_secs(3600))
                .with_revocable(revocable);
            let old = s.write_token(&id).await.unwrap();
            let owner = s
                .read_token_owner(old.access_token.expose())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((owner.session_id, owner.needs_session), (None, revocable));
        }
        let s: JwtStrategy<Uuid> = JwtStrategy::new(codec.clone(), Duration::from_secs(3600));
        let ends = now_unix() + 60;
        let issued = s.write_session_token_until(&id, "sid", ends).await.unwrap();
        let claims: serde_json::Value = codec
            .decode(issued.access_token.expose(), AUTH_AUDIENCE)
            .unwrap();
        assert_eq!(claims["exp"], serde_json::json!(ends));
        assert!(issued.lifetime.unwrap() <= Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_fastapi_users_jwt_needs_no_session_only_inside_the_window() {
        let codec = JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        let id = Uuid::new_v4();
        let sign = |iat: Option<i64>| {
            let claims = AuthClaims {
                sub: id.to_string(),
                aud: vec![AUTH_AUDIENCE.into()],
                exp: now_unix() + 3600,
                iat,
                sid: None,
            };
            codec.encode(&claims).unwrap()
        };
        let reference = sign(None);
        let ours_without_sid = sign(Some(now_unix()));
        let owner = |s: &JwtStrategy<Uuid>, token: &str| {
            let s = s.clone();
            let token = token.to_owned();
            async move { s.read_token_owner(&token).await.unwrap().unwrap() }
        };
        let base: JwtStrategy<Uuid> = JwtStrategy::new(codec.clone(), Duration::from_secs(3600));
        let open = base
            .clone()
            .with_fastapi_users_jwt_until(Some(now_unix() + 60));
        let closed = base
            .clone()
            .with_fastapi_users_jwt_until(Some(now_unix() - 1));
        let inside = owner(&open, &reference).await;
        assert_eq!((inside.needs_session, inside.fastapi_users), (false, true));
        assert!(!inside.revocable);
        for (strategy, token) in [
            (&base, &reference),
            (&closed, &reference),
            (&open, &ours_without_sid),
        ] {
            let o = owner(strategy, token).await;
            assert_eq!((o.needs_session, o.fastapi_users), (true, false));
        }
    }
}
