//! The rate-limit counters in Redis, shared by every node: each operation is one Lua script
//! (`EVAL`), so it is atomic however many nodes count at once, and it reads Redis's clock, so
//! the nodes' clocks do not matter. Keys are `<prefix><sha256 of the counter key>`: no e-mail
//! address is stored in Redis.
//!
//! Rate limits are GCRA (one timestamp per key, the "theoretical arrival time", expiring when
//! the key is back to a full burst); failures are a sorted set of at most `limit` instants,
//! expiring with the window.

use std::time::Duration;

use axum_users::{LimitError, LimitFuture, Limiter, Rule, hash_token, random_token};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// GCRA: allowed → -1 and the arrival time advanced; refused → milliseconds to wait.
const HIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = interval * (tonumber(ARGV[2]) - 1)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then return math.ceil(allow_at - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return -1
";

/// Milliseconds the key is still blocked (the `limit`-th newest failure leaving the window),
/// or -1.
const BLOCKED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then return -1 end
local oldest = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
";

/// Adds a failure (member ARGV[3], unique) and keeps the newest `limit` within the window.
const RECORD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZADD', KEYS[1], now, ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n > limit then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - limit - 1) end
redis.call('PEXPIRE', KEYS[1], window)
return 0
";

/// Rate-limit counters in Redis (see the module).
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Counters on the Redis at `url`, under keys starting with `prefix`, each call waiting at
    /// most `timeout`. Connects lazily (the server starts while Redis is down).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn connect(
        url: &str,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: prefix.into(),
            timeout,
        })
    }

    async fn eval(&self, script: &str, key: &str, args: &[String]) -> Result<i64, LimitError> {
        let mut connection = self.connection.clone();
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script)
            .arg(1)
            .arg(format!("{}{}", self.prefix, hash_token(key)));
        for arg in args {
            cmd.arg(arg);
        }
        match tokio::time::timeout(self.timeout, cmd.query_async::<i64>(&mut connection)).await {
            Ok(result) => result.map_err(|e| LimitError(Box::new(e))),
            Err(_) => Err(LimitError(
                format!(
                    "Redis did not answer within {} ms",
                    self.timeout.as_millis()
                )
                .into(),
            )),
        }
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

fn wait(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}

impl Limiter for RedisLimiter {
    fn hit<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let interval = (rule.window / rule.limit).max(Duration::from_millis(1));
            let args = [millis(interval), rule.limit.to_string()];
            Ok(wait(self.eval(HIT, key, &args).await?))
        })
    }

    fn blocked<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let args = [millis(rule.window), rule.limit.to_string()];
            Ok(wait(self.eval(BLOCKED, key, &args).await?))
        })
    }

    fn record_failure<'a>(&'a self, key: &'a str, rule: Rule) -> LimitFuture<'a, ()> {
        Box::pin(async move {
            let args = [
                millis(rule.window),
                rule.limit.to_string(),
                random_token(12),
            ];
            self.eval(RECORD, key, &args).await.map(|_| ())
        })
    }
}
