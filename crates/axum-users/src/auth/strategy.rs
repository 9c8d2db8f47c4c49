//! Strategies: what a token is and how it maps to a user id (spec section 4.2).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::model::UserId;
use crate::secret::{hash_token, random_token};
use crate::store::{AccessTokenStore, StoreError};
use crate::tokens::{AUTH_AUDIENCE, JwtCodec, now_unix};

/// A boxed `Send` future: the shim that lets strategies live in a list of trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Turns users into tokens and back. Implemented by the JWT and database strategies here and by
/// the Redis strategy in `axum-users-redis`.
pub trait Strategy<Id>: Send + Sync + 'static {
    /// The user id a token stands for, or `None` for an unknown, expired or malformed token.
    fn read_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Id>, StoreError>>;

    /// A new token for a user.
    fn write_token<'a>(&'a self, user_id: &'a Id) -> BoxFuture<'a, Result<String, StoreError>>;

    /// Revokes a token; a no-op for stateless tokens.
    fn destroy_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

#[derive(Serialize, Deserialize)]
struct AuthClaims {
    sub: String,
    aud: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
}

/// Stateless signed tokens. Logout cannot revoke them: they live until they expire.
#[derive(Debug, Clone)]
pub struct JwtStrategy<Id> {
    codec: JwtCodec,
    lifetime_seconds: Option<u64>,
    audience: String,
    _id: PhantomData<fn() -> Id>,
}

impl<Id> JwtStrategy<Id> {
    /// Tokens signed by `codec`, valid for `lifetime_seconds` (`None` or 0: no `exp`).
    pub fn new(codec: JwtCodec, lifetime_seconds: Option<u64>) -> Self {
        Self {
            codec,
            lifetime_seconds: lifetime_seconds.filter(|s| *s > 0),
            audience: AUTH_AUDIENCE.into(),
            _id: PhantomData,
        }
    }

    /// Another audience than `fastapi-users:auth`.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }
}

impl<Id: UserId> Strategy<Id> for JwtStrategy<Id> {
    fn read_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<Id>, StoreError>> {
        let id = self
            .codec
            .decode::<AuthClaims>(token, &self.audience)
            .ok()
            .and_then(|c| Id::parse(&c.sub));
        Box::pin(async move { Ok(id) })
    }

    fn write_token<'a>(&'a self, user_id: &'a Id) -> BoxFuture<'a, Result<String, StoreError>> {
        let claims = AuthClaims {
            sub: user_id.to_string(),
            aud: vec![self.audience.clone()],
            exp: self.lifetime_seconds.map(|s| now_unix() + s as i64),
        };
        let token = self
            .codec
            .encode(&claims)
            .map_err(|e| StoreError::Backend(Box::new(e)));
        Box::pin(async move { token })
    }

    fn destroy_token<'a>(&'a self, _token: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async { Ok(()) })
    }
}

/// Opaque random tokens (256 bits) kept in a table as SHA-256 hashes; logout deletes the row.
#[derive(Debug, Clone)]
pub struct DatabaseStrategy<T> {
    store: T,
    lifetime_seconds: Option<u64>,
}

impl<T> DatabaseStrategy<T> {
    /// Tokens in `store`, valid for `lifetime_seconds` after creation (`None`: until logout).
    pub fn new(store: T, lifetime_seconds: Option<u64>) -> Self {
        Self {
            store,
            lifetime_seconds: lifetime_seconds.filter(|s| *s > 0),
        }
    }
}

impl<T: AccessTokenStore> Strategy<T::Id> for DatabaseStrategy<T> {
    fn read_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<T::Id>, StoreError>> {
        Box::pin(async move {
            if token.is_empty() {
                return Ok(None);
            }
            let not_before = self.lifetime_seconds.map(|s| now_unix() - s as i64);
            self.store.find_token(&hash_token(token), not_before).await
        })
    }

    fn write_token<'a>(&'a self, user_id: &'a T::Id) -> BoxFuture<'a, Result<String, StoreError>> {
        Box::pin(async move {
            let token = random_token(32);
            self.store
                .create_token(&hash_token(&token), user_id, now_unix())
                .await?;
            Ok(token)
        })
    }

    fn destroy_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.store.delete_token(&hash_token(token)).await })
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
        let s: JwtStrategy<Uuid> = JwtStrategy::new(codec.clone(), Some(3600));
        let id = Uuid::new_v4();
        let token = s.write_token(&id).await.unwrap();
        assert_eq!(s.read_token(&token).await.unwrap(), Some(id));
        let claims: serde_json::Value = codec.decode(&token, AUTH_AUDIENCE).unwrap();
        assert_eq!(claims["aud"], serde_json::json!(["fastapi-users:auth"]));
        assert!(claims["exp"].is_i64());
        assert_eq!(s.read_token("garbage").await.unwrap(), None);
    }

    #[tokio::test]
    async fn zero_lifetime_writes_no_exp() {
        let codec = JwtCodec::hs256(&Secret::new("0123456789abcdef0123456789abcdef")).unwrap();
        let s: JwtStrategy<i64> = JwtStrategy::new(codec.clone(), Some(0));
        let token = s.write_token(&7).await.unwrap();
        let claims: serde_json::Value = codec.decode(&token, AUTH_AUDIENCE).unwrap();
        assert!(claims.get("exp").is_none());
        assert_eq!(s.read_token(&token).await.unwrap(), Some(7));
    }
}
