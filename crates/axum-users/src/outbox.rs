//! The mail outbox: messages written to the database before anyone is told they were sent, so
//! that a crash, a restart or a relay that is down loses none. A worker claims due messages
//! with a lease (so that workers on several nodes never hold the same one at once), sends them
//! and deletes them, or schedules a retry.
//!
//! Bodies are stored sealed ([`MailSeal`]): the links inside carry live tokens.

use std::future::Future;

use crate::keys::{KeyRing, Purpose};
use crate::secret::Secret;
use crate::store::StoreError;

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutboxStatus {
    /// Waiting for its next attempt.
    Pending,
    /// Out of attempts, or refused for good; `mail retry` makes it pending again.
    Failed,
}

impl OutboxStatus {
    /// The stored form: `pending` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Failed => "failed",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(OutboxStatus::Pending),
            "failed" => Some(OutboxStatus::Failed),
            _ => None,
        }
    }
}

/// A message to queue.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NewOutboxMessage {
    /// A unique id (a UUID in text form).
    pub id: String,
    /// The recipient's address (shown by `mail list`).
    pub recipient: String,
    /// What the message is (`reset`, `verify`, ...; shown by `mail list`).
    pub kind: String,
    /// The message, sealed by [`MailSeal::seal`].
    pub sealed: String,
    /// When it was queued, Unix seconds; also its first attempt time.
    pub created_at: i64,
}

impl NewOutboxMessage {
    /// A message with a fresh id, due now.
    pub fn new(recipient: impl Into<String>, kind: impl Into<String>, sealed: String) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            recipient: recipient.into(),
            kind: kind.into(),
            sealed,
            created_at: crate::now_unix(),
        }
    }
}

/// A queued message as stored (stores build it, so it is exhaustive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Its id.
    pub id: String,
    /// The recipient's address.
    pub recipient: String,
    /// What the message is.
    pub kind: String,
    /// The sealed message.
    pub sealed: String,
    /// Pending or failed.
    pub status: OutboxStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// Earliest time of the next attempt, Unix seconds.
    pub next_attempt_at: i64,
    /// Until when a worker holds it, Unix seconds (0: nobody).
    pub locked_until: i64,
    /// The last failure, for `mail list` (never holds the body).
    pub last_error: Option<String>,
    /// When it was queued, Unix seconds.
    pub created_at: i64,
}

/// The outbox table.
pub trait OutboxStore: Clone + Send + Sync + 'static {
    /// Queues a message.
    fn enqueue(
        &self,
        message: NewOutboxMessage,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes up to `limit` pending messages due at `now` that no worker holds, and holds them
    /// until `now + lease_seconds` under `worker`, atomically: two workers never take the same
    /// message while its lease runs (`FOR UPDATE SKIP LOCKED` or a conditional update).
    fn claim(
        &self,
        now: i64,
        lease_seconds: i64,
        limit: u32,
        worker: &str,
    ) -> impl Future<Output = Result<Vec<OutboxMessage>, StoreError>> + Send;

    /// Deletes a sent message (if `worker` still holds it; returns whether it did).
    fn delete_sent(
        &self,
        id: &str,
        worker: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a failed attempt: `attempts + 1`, the error, and either the next attempt time
    /// (pending) or, with `next_attempt_at = None`, the failed status. Releases the lease.
    fn record_failure(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every queued message (pending and failed), oldest first, at most `limit`.
    fn list_outbox(
        &self,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<OutboxMessage>, StoreError>> + Send;

    /// Makes failed messages pending again, due at `now` with no attempts: the one with `id`,
    /// or all of them. Returns how many.
    fn retry_failed(
        &self,
        id: Option<&str>,
        now: i64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

/// Seals queued messages with a sub-key of the server secret (AES-256-GCM), opening those
/// sealed under a previous secret too.
#[derive(Clone)]
pub struct MailSeal {
    keys: KeyRing,
}

impl std::fmt::Debug for MailSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MailSeal([redacted])")
    }
}

impl MailSeal {
    /// A seal from the server secret and the secrets it replaced.
    pub fn new(secret: Secret, previous: Vec<Secret>) -> Self {
        Self {
            keys: KeyRing::new(secret, previous),
        }
    }

    /// Seals `plaintext`.
    pub fn seal(&self, plaintext: &str) -> String {
        self.keys.encrypt(Purpose::MailOutbox, plaintext)
    }

    /// Opens what [`MailSeal::seal`] made; `None` when it was tampered with, sealed under an
    /// unknown secret, or not sealed at all (a queued body is never accepted in clear).
    pub fn open(&self, sealed: &str) -> Option<String> {
        if !sealed.starts_with("v1.") {
            return None;
        }
        self.keys.decrypt(Purpose::MailOutbox, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_body_hides_its_token_and_opens_only_with_the_secret() {
        let seal = MailSeal::new(Secret::new("k".repeat(32)), vec![]);
        let sealed = seal.seal("token=abc.def");
        assert!(!sealed.contains("abc.def"));
        assert_eq!(seal.open(&sealed).as_deref(), Some("token=abc.def"));
        let other = MailSeal::new(Secret::new("o".repeat(32)), vec![]);
        assert_eq!(other.open(&sealed), None);
        assert_eq!(seal.open("token=abc.def"), None, "clear text is refused");
        let rotated = MailSeal::new(
            Secret::new("n".repeat(32)),
            vec![Secret::new("k".repeat(32))],
        );
        assert_eq!(rotated.open(&sealed).as_deref(), Some("token=abc.def"));
        let provider =
            KeyRing::new(Secret::new("k".repeat(32)), vec![]).encrypt(Purpose::ProviderTokens, "x");
        assert_eq!(seal.open(&provider), None, "another purpose's key fails");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [OutboxStatus::Pending, OutboxStatus::Failed] {
            assert_eq!(OutboxStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OutboxStatus::parse("sent"), None);
    }
}

/// The outbox's conformance check (feature `testing`), run by every store's tests.
#[cfg(any(test, feature = "testing"))]
#[allow(clippy::unwrap_used)]
pub(crate) mod conformance {
    use std::collections::HashSet;

    use super::{NewOutboxMessage, OutboxStatus, OutboxStore};

    fn message(now: i64, n: usize) -> NewOutboxMessage {
        let mut m = NewOutboxMessage::new(
            format!("r{n}@example.com"),
            "reset",
            format!("v1.sealed{n}"),
        );
        m.created_at = now;
        m
    }

    /// Claims are exclusive while their lease runs and come back after it; sent messages go,
    /// failures are counted, failed ones wait for `retry_failed`. The store must hold no other
    /// queued mail due before `now`; each call uses times of its own far in the future.
    ///
    /// # Panics
    /// When a rule is broken.
    pub async fn outbox_store<S: OutboxStore>(store: &S) {
        // A moment no other run uses, so that runs on a shared database do not meet.
        let now = 4_000_000_000 + i64::from(rand_u16()) * 100_000;
        let ids: Vec<String> = (0..10).map(|n| message(now, n).id).collect();
        for (n, id) in ids.iter().enumerate() {
            let mut m = message(now, n);
            m.id = id.clone();
            store.enqueue(m).await.unwrap();
        }
        let listed = store.list_outbox(10_000).await.unwrap();
        let mine: Vec<_> = listed.iter().filter(|m| ids.contains(&m.id)).collect();
        assert_eq!(mine.len(), 10, "every queued message is listed");
        assert!(
            mine.iter()
                .all(|m| m.status == OutboxStatus::Pending && m.attempts == 0)
        );

        // Eight workers claim at once: each message goes to exactly one.
        let claims = futures_join(store, now, 8).await;
        let mut seen = HashSet::new();
        for batch in &claims {
            for m in batch.iter().filter(|m| ids.contains(&m.id)) {
                assert!(seen.insert(m.id.clone()), "{} was claimed twice", m.id);
            }
        }
        assert_eq!(seen.len(), 10, "every due message was claimed");
        let again = store.claim(now, 60, 100, "late").await.unwrap();
        assert!(
            !again.iter().any(|m| ids.contains(&m.id)),
            "a held message is not claimed again"
        );

        // The leases run out: a new worker takes them; the old holder can no longer delete.
        let later = now + 61;
        let taken = store.claim(later, 60, 100, "w-new").await.unwrap();
        let taken: Vec<_> = taken.into_iter().filter(|m| ids.contains(&m.id)).collect();
        assert_eq!(taken.len(), 10, "expired leases are claimed again");
        let holders: Vec<&str> = ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"].to_vec();
        for h in holders {
            assert!(
                !store.delete_sent(&ids[0], h).await.unwrap(),
                "only the holder deletes"
            );
        }
        assert!(store.delete_sent(&ids[0], "w-new").await.unwrap());
        assert!(
            !store.delete_sent(&ids[0], "w-new").await.unwrap(),
            "deleted once"
        );

        // A failure with a next attempt: pending, counted, due only then.
        store
            .record_failure(&ids[1], "w-new", "451 busy", Some(later + 500))
            .await
            .unwrap();
        // A failure for good.
        store
            .record_failure(&ids[2], "w-new", "550 no such user", None)
            .await
            .unwrap();
        let listed = store.list_outbox(10_000).await.unwrap();
        let get = |id: &str| listed.iter().find(|m| m.id == id).cloned();
        assert!(get(&ids[0]).is_none(), "a sent message is gone");
        let retried = get(&ids[1]).unwrap();
        assert_eq!(
            (retried.status, retried.attempts),
            (OutboxStatus::Pending, 1)
        );
        assert_eq!(retried.last_error.as_deref(), Some("451 busy"));
        assert_eq!(retried.next_attempt_at, later + 500);
        let failed = get(&ids[2]).unwrap();
        assert_eq!((failed.status, failed.attempts), (OutboxStatus::Failed, 1));

        let early = store.claim(later + 100, 60, 100, "w3").await.unwrap();
        assert!(
            !early.iter().any(|m| m.id == ids[1] || m.id == ids[2]),
            "not due yet, or failed"
        );
        let due = store.claim(later + 500, 60, 100, "w3").await.unwrap();
        assert!(
            due.iter().any(|m| m.id == ids[1]),
            "due at its next attempt"
        );
        assert!(
            !due.iter().any(|m| m.id == ids[2]),
            "a failed message waits for a retry"
        );

        assert_eq!(
            store
                .retry_failed(Some(&ids[2]), later + 600)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .retry_failed(Some(&ids[2]), later + 600)
                .await
                .unwrap(),
            0
        );
        let back = store.claim(later + 600, 60, 100, "w4").await.unwrap();
        let back = back
            .iter()
            .find(|m| m.id == ids[2])
            .expect("a retried message is due");
        assert_eq!((back.status, back.attempts), (OutboxStatus::Pending, 0));

        // Clean up what this run queued.
        let rest = store
            .claim(later + 10_000, 60, 1000, "cleanup")
            .await
            .unwrap();
        for m in rest.iter().filter(|m| ids.contains(&m.id)) {
            store.delete_sent(&m.id, "cleanup").await.unwrap();
        }
        for id in &ids {
            store.delete_sent(id, "w4").await.unwrap();
        }
    }

    async fn futures_join<S: OutboxStore>(
        store: &S,
        now: i64,
        n: usize,
    ) -> Vec<Vec<super::OutboxMessage>> {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..n {
            let store = store.clone();
            tasks.spawn(async move { store.claim(now, 60, 3, &format!("w{w}")).await.unwrap() });
        }
        let mut claims = tasks.join_all().await;
        // Whatever is left after the first round (batches of 3) goes to the same workers again.
        for (w, batch) in claims.iter_mut().enumerate() {
            batch.extend(store.claim(now, 60, 100, &format!("w{w}")).await.unwrap());
        }
        claims
    }

    fn rand_u16() -> u16 {
        let token = crate::secret::random_token(2);
        token.bytes().fold(0u16, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u16::from(b))
        })
    }
}
