//! Which throttled sign-ins the audit log records: the first refusal of a client and of an
//! account in each minute, not every one. A refusal costs no hash, so one client can send
//! thousands a second; a row (and a webhook delivery) for each would turn the limiter that
//! sheds the hashing load into a way to flood the database and the webhook receivers. The
//! application's `on_security_event` hook and the metric still see every refusal.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// How long a recorded client or account keeps its later refusals out of the log, seconds.
pub(crate) const RECORD_WINDOW: i64 = 60;
/// Clients and accounts remembered at most (16 bytes each); beyond them, after the expired
/// ones are dropped, nothing more is recorded until some expire.
const CAPACITY: usize = 65_536;

/// The clients and accounts whose throttled refusal was recorded lately (per node).
#[derive(Debug, Default)]
pub(crate) struct ThrottleRecords {
    /// Keyed hash of `client:` or `account:` + the key → until when it stays quiet.
    until: Mutex<HashMap<u64, i64>>,
    keys: std::collections::hash_map::RandomState,
}

impl ThrottleRecords {
    /// Whether a throttled refusal of `client` (its address bucket, when known) for `account`
    /// at `now` goes into the log: when neither was recorded within the window. Both are then
    /// quiet for the window (a steady flood gives one row a minute, not one per request).
    pub(crate) fn should_record(&self, client: Option<&str>, account: &str, now: i64) -> bool {
        let account = self.keys.hash_one(("account", account));
        let client = client.map(|c| self.keys.hash_one(("client", c)));
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let quiet = |key: &u64| until.get(key).is_some_and(|end| *end > now);
        if quiet(&account) || client.as_ref().is_some_and(quiet) {
            return false;
        }
        if until.len() + 2 > CAPACITY {
            until.retain(|_, end| *end > now);
            if until.len() + 2 > CAPACITY {
                return false;
            }
        }
        until.insert(account, now + RECORD_WINDOW);
        if let Some(client) = client {
            until.insert(client, now + RECORD_WINDOW);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_record_per_client_and_per_account_each_window() {
        let records = ThrottleRecords::default();
        assert!(records.should_record(Some("203.0.113.7"), "victim@example.com", 1_000));
        // The same client, any account; any client, the same account: quiet.
        assert!(!records.should_record(Some("203.0.113.7"), "victim@example.com", 1_001));
        assert!(!records.should_record(Some("203.0.113.7"), "random1@example.com", 1_002));
        assert!(!records.should_record(Some("198.51.100.9"), "victim@example.com", 1_003));
        // Another client and another account: recorded.
        assert!(records.should_record(Some("198.51.100.9"), "other@example.com", 1_004));
        // After the window, the flood is recorded again, once.
        assert!(records.should_record(Some("203.0.113.7"), "victim@example.com", 1_061));
        assert!(!records.should_record(Some("203.0.113.7"), "victim@example.com", 1_062));
        // Without a known client, the account alone decides.
        assert!(records.should_record(None, "nobody@example.com", 1_000));
        assert!(!records.should_record(None, "nobody@example.com", 1_030));
    }
}
