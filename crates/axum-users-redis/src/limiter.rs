//! The rate-limit counters in Redis, shared by every node: each operation is one Lua script
//! (loaded once, called by `EVALSHA`, loaded again on `NOSCRIPT`), so it is atomic however
//! many nodes count at once, and it reads Redis's clock, so the nodes' clocks do not matter.
//! Keys are `<prefix><HMAC-SHA256 of the counter key>` under a sub-key of the server secret
//! ([`CounterKeys`]): neither an e-mail address nor a hash a dictionary could reverse is
//! stored in Redis.
//!
//! Rate limits are GCRA (one timestamp per key, the "theoretical arrival time", expiring when
//! the key is back to a full burst); failures are a sorted set of at most `limit` instants,
//! expiring with the window, checked and counted in the same script.

use std::time::Duration;

use axum_users::{CounterKeys, LimitError, LimitFuture, Limiter, Rule};
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

/// The failure log, checked and counted in one step: when fewer than `limit` failures are
/// within the window, adds the attempt (member ARGV[3], unique) and answers -1; otherwise the
/// milliseconds until the `limit`-th newest leaves the window, adding nothing.
const ATTEMPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return -1
";

/// Takes back the attempt ARGV[1].
const FORGET: &str = r"
redis.call('ZREM', KEYS[1], ARGV[1])
return 0
";

/// The scripts, loaded once per Redis (`SCRIPT LOAD`) and called by their SHA-1 (`EVALSHA`);
/// a Redis that lost them (a restart, `SCRIPT FLUSH`) answers `NOSCRIPT`, and they are loaded
/// again and called once more.
struct Scripts {
    hit: redis::Script,
    attempt: redis::Script,
    forget: redis::Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        hit: redis::Script::new(HIT),
        attempt: redis::Script::new(ATTEMPT),
        forget: redis::Script::new(FORGET),
    })
}

/// Rate-limit counters in Redis (see the module).
#[derive(Clone)]
pub struct RedisLimiter {
    connection: ConnectionManager,
    prefix: String,
    names: CounterKeys,
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
    /// Counters on the Redis at `url`, under keys starting with `prefix` and named by `names`
    /// (from the server secret), each call waiting at most `timeout`. Connects lazily (the
    /// server starts while Redis is down).
    ///
    /// # Errors
    /// When the URL is malformed.
    pub fn connect(
        url: &str,
        prefix: impl Into<String>,
        names: CounterKeys,
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
            names,
            timeout,
        })
    }

    /// One script call on the counter `key` (its keyed name), within the timeout.
    async fn eval(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[String],
    ) -> Result<i64, LimitError> {
        let mut connection = self.connection.clone();
        let mut invocation = script.key(format!("{}{}", self.prefix, self.names.name(key)));
        for arg in args {
            invocation.arg(arg);
        }
        let call = invocation.invoke_async::<i64>(&mut connection);
        match tokio::time::timeout(self.timeout, call).await {
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
            let interval = (rule.window / rule.limit.max(1)).max(Duration::from_millis(1));
            let args = [millis(interval), rule.limit.to_string()];
            Ok(wait(self.eval(&scripts().hit, key, &args).await?))
        })
    }

    fn attempt<'a>(
        &'a self,
        key: &'a str,
        rule: Rule,
        id: u64,
    ) -> LimitFuture<'a, Option<Duration>> {
        Box::pin(async move {
            let args = [millis(rule.window), rule.limit.to_string(), id.to_string()];
            Ok(wait(self.eval(&scripts().attempt, key, &args).await?))
        })
    }

    fn forget<'a>(&'a self, key: &'a str, id: u64) -> LimitFuture<'a, ()> {
        Box::pin(async move {
            self.eval(&scripts().forget, key, &[id.to_string()])
                .await
                .map(|_| ())
        })
    }
}
