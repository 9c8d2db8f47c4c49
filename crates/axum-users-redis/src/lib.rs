//! # axum-users-redis
//!
//! The Redis strategy of FastAPI Users (spec section 4.2) for `axum-users`: opaque random
//! tokens (256 bits) whose SHA-256 hash is a key in Redis holding the user id, with a TTL of
//! the token's lifetime; logout deletes the key. Every server node sharing the Redis sees a
//! login or a logout at once. A token issued at a sign-in names its session too (after the user
//! id), so revoking the session revokes it.
//!
//! ```no_run
//! # async fn run(store: impl axum_users::UserStore<Id = uuid::Uuid, Fields = axum_users::NoFields>) -> Result<(), Box<dyn std::error::Error>> {
//! use axum_users::{AuthBackend, AxumUsers, Transport};
//! use axum_users_redis::{RedisOptions, RedisStrategy};
//!
//! let redis = RedisStrategy::<uuid::Uuid>::connect("redis://127.0.0.1:6379", RedisOptions::default())?;
//! let bearer = Transport::Bearer { token_url: "auth/redis/login".into() };
//! let users = AxumUsers::builder(store, "a secret of at least 32 bytes, from config!")
//!     .backend(AuthBackend::new("redis", bearer, redis))
//!     .build()?;
//! # Ok(()) }
//! ```
//!
//! # Security
//! Redis never holds a token, only its hash: a dump of the database does not log anyone in.
//! A Redis that is down or slower than [`RedisOptions::timeout`] makes the calls fail with
//! [`StoreError::Unavailable`] (503 from the API); the connection is re-established by itself
//! when Redis is back.

mod limiter;

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use axum_users::auth::BoxFuture;
use axum_users::{
    IssuedToken, StoreError, Strategy, StrategyError, TokenOwner, UserId, hash_token, random_token,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};

pub use limiter::RedisLimiter;

/// Key prefix, lifetime and timeouts of a [`RedisStrategy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisOptions {
    /// Prefix of every key (default `axum_users_token:`), so that several applications can
    /// share one Redis.
    pub key_prefix: String,
    /// Lifetime of a token, the TTL of its key; `None`: until logout.
    pub lifetime: Option<Duration>,
    /// Longest wait for Redis per call (connecting included).
    pub timeout: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            key_prefix: "axum_users_token:".into(),
            lifetime: Some(Duration::from_secs(3600)),
            timeout: Duration::from_secs(2),
        }
    }
}

impl RedisOptions {
    /// Sets the key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the lifetime of tokens (`None` or zero: until logout).
    pub fn with_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.lifetime = lifetime.filter(|l| !l.is_zero());
        self
    }

    /// Sets the timeout of every call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// Opaque tokens kept in Redis as hashed keys with a TTL; logout deletes the key.
pub struct RedisStrategy<Id> {
    connection: ConnectionManager,
    options: RedisOptions,
    _id: PhantomData<fn() -> Id>,
}

impl<Id> Clone for RedisStrategy<Id> {
    fn clone(&self) -> Self {
        Self {
            connection: self.connection.clone(),
            options: self.options.clone(),
            _id: PhantomData,
        }
    }
}

impl<Id> fmt::Debug for RedisStrategy<Id> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: it is not kept, and not shown.
        f.debug_struct("RedisStrategy")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<Id: UserId> RedisStrategy<Id> {
    /// A strategy on the Redis at `url` (`redis://[:password@]host[:port][/db]`,
    /// `redis+unix:///path`). Connects lazily: the first call connects, so a server can start
    /// while Redis is down and serve it once it is up. Needs a Tokio runtime.
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn connect(url: &str, options: RedisOptions) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.timeout))
            .set_response_timeout(Some(options.timeout))
            // Reconnection is retried at the next call; a call never waits through a backoff.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            options,
            _id: PhantomData,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &RedisOptions {
        &self.options
    }

    /// Whether Redis answers `PING` within the timeout.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.connection.clone();
        self.timed(async move {
            redis::cmd("PING")
                .query_async::<String>(&mut connection)
                .await
        })
        .await
        .map(|_| ())
    }

    /// The value of a token's key: the user id, then the session id after a space (user ids
    /// have no spaces), so that the session check needs no second Redis call.
    async fn read(&self, token: &str) -> Result<Option<TokenOwner<Id>>, StoreError> {
        if token.is_empty() {
            return Ok(None);
        }
        let mut connection = self.connection.clone();
        let key = self.key(token);
        let value: Option<String> = self.timed(async move { connection.get(key).await }).await?;
        Ok(value.and_then(|value| match value.split_once(' ') {
            Some((id, sid)) => Some(TokenOwner::new(Id::parse(id)?, Some(sid.to_owned()))),
            None => {
                let mut owner = TokenOwner::new(Id::parse(&value)?, None);
                owner.needs_session = true;
                Some(owner)
            }
        }))
    }

    async fn write(
        &self,
        user_id: &Id,
        session_id: Option<&str>,
    ) -> Result<IssuedToken, StoreError> {
        let token = random_token(32);
        let mut connection = self.connection.clone();
        let key = self.key(&token);
        let value = match session_id {
            Some(sid) => format!("{user_id} {sid}"),
            None => user_id.to_string(),
        };
        let lifetime = self.options.lifetime.map(|l| l.as_secs().max(1));
        self.timed(async move {
            match lifetime {
                Some(seconds) => connection.set_ex::<_, _, ()>(key, value, seconds).await,
                None => connection.set::<_, _, ()>(key, value).await,
            }
        })
        .await?;
        Ok(IssuedToken::new(token, self.options.lifetime))
    }

    fn key(&self, token: &str) -> String {
        format!("{}{}", self.options.key_prefix, hash_token(token))
    }

    async fn timed<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.options.timeout, call).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(StoreError::Unavailable(
                format!(
                    "Redis did not answer within {} ms",
                    self.options.timeout.as_millis()
                )
                .into(),
            )),
        }
    }
}

/// Connection trouble is an outage; anything else (a key of the wrong type...) a failure.
fn redis_error(e: RedisError) -> StoreError {
    if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || e.is_unrecoverable_error()
    {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

impl<Id: UserId> Strategy<Id> for RedisStrategy<Id> {
    fn read_token<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<Id>, StrategyError>> {
        Box::pin(async move { Ok(self.read(token).await?.map(|owner| owner.user_id)) })
    }

    fn read_token_owner<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFuture<'a, Result<Option<TokenOwner<Id>>, StrategyError>>
    where
        Id: Send + 'a,
    {
        Box::pin(async move { Ok(self.read(token).await?) })
    }

    fn write_token<'a>(
        &'a self,
        user_id: &'a Id,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        Box::pin(async move { Ok(self.write(user_id, None).await?) })
    }

    fn write_session_token<'a>(
        &'a self,
        user_id: &'a Id,
        session_id: &'a str,
    ) -> BoxFuture<'a, Result<IssuedToken, StrategyError>> {
        Box::pin(async move { Ok(self.write(user_id, Some(session_id)).await?) })
    }

    fn destroy_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<(), StrategyError>> {
        Box::pin(async move {
            let mut connection = self.connection.clone();
            let key = self.key(token);
            Ok(self
                .timed(async move { connection.del::<_, ()>(key).await })
                .await?)
        })
    }
}
