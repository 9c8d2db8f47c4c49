//! The outbox: a message is written to the database first and sent by a worker, which retries
//! with exponential back-off and jitter, a bounded number of times, then marks it failed. A
//! crash between the write and the send loses nothing: the next worker sends it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum_users::{MailSeal, NewOutboxMessage, OutboxMessage, OutboxStore, Secret, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::message::Mail;
use crate::smtp::{SendError, SmtpMailer};
use crate::template::RenderedMail;

/// Whatever finally sends a message: an SMTP relay, a folder, the log.
pub trait Deliver: Clone + Send + Sync + 'static {
    /// Sends one message.
    fn deliver(&self, mail: &Mail) -> impl Future<Output = Result<(), SendError>> + Send;
}

impl Deliver for SmtpMailer {
    async fn deliver(&self, mail: &Mail) -> Result<(), SendError> {
        self.send(mail).await
    }
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, then the message is marked failed.
    pub max_attempts: u32,
    /// Wait after the first failure; it doubles after each further one.
    pub base_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
    /// How long a worker holds a claimed message; past it another worker may take it.
    pub lease: Duration,
    /// How often an idle worker looks for due messages (it is also woken by each new one).
    pub poll_interval: Duration,
    /// Messages claimed at once.
    pub batch: u32,
}

impl Default for RetryPolicy {
    /// 10 attempts over about 40 minutes (1 s, 2 s, 4 s, ... capped at 10 min, each with up to
    /// half of it taken off at random), a 2-minute lease, a poll every 2 s, 16 at once.
    fn default() -> Self {
        Self {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(600),
            lease: Duration::from_secs(120),
            poll_interval: Duration::from_secs(2),
            batch: 16,
        }
    }
}

impl RetryPolicy {
    /// The wait before the next attempt after `failures` failures (1 or more): `base * 2^(n-1)`
    /// capped at `max_delay`, times a factor in `[0.5, 1]` from `jitter` (in `[0, 1]`), so that
    /// messages that failed together do not all come back at once.
    pub fn delay(&self, failures: u32, jitter: f64) -> Duration {
        let exponent = failures.saturating_sub(1).min(30);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        full.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }
}

/// What the outbox stores, sealed: the whole message with its token.
#[derive(Serialize, Deserialize)]
struct Payload {
    to: String,
    subject: String,
    text: String,
    html: String,
    token: String,
}

/// Queues messages in an [`OutboxStore`], sealed, and wakes the workers of this process.
#[derive(Clone)]
pub struct Outbox<S> {
    store: S,
    seal: MailSeal,
    wake: Arc<Notify>,
}

impl<S> std::fmt::Debug for Outbox<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl<S: OutboxStore> Outbox<S> {
    /// An outbox over `store`, sealing bodies with `seal`.
    pub fn new(store: S, seal: MailSeal) -> Self {
        Self {
            store,
            seal,
            wake: Arc::new(Notify::new()),
        }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Queues `mail` (`kind` names it in `mail list`) and wakes a worker.
    ///
    /// # Errors
    /// The store's error: the message is not queued.
    pub async fn enqueue(&self, kind: &str, mail: &Mail) -> Result<(), StoreError> {
        let payload = Payload {
            to: mail.to.clone(),
            subject: mail.content.subject.clone(),
            text: mail.content.text.clone(),
            html: mail.content.html.clone(),
            token: mail.token.expose().to_owned(),
        };
        let json = serde_json::to_string(&payload).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let sealed = self.seal.seal(&json);
        self.store
            .enqueue(NewOutboxMessage::new(mail.to.clone(), kind, sealed))
            .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Opens a stored message; `None` when it cannot be (another secret, tampered with).
    fn open(&self, message: &OutboxMessage) -> Option<Mail> {
        let json = self.seal.open(&message.sealed)?;
        let p: Payload = serde_json::from_str(&json).ok()?;
        let content = RenderedMail {
            subject: p.subject,
            text: p.text,
            html: p.html,
        };
        Some(Mail::new(p.to, content, Secret::new(p.token)))
    }

    /// A worker sending through `deliver`.
    pub fn worker<D: Deliver>(&self, deliver: D, policy: RetryPolicy) -> OutboxWorker<S, D> {
        OutboxWorker {
            outbox: self.clone(),
            deliver,
            policy,
            id: format!("w-{}", axum_users::random_token(9)),
        }
    }
}

/// Sends what the outbox holds: claims due messages, sends each, deletes it or schedules its
/// next attempt.
#[derive(Debug)]
pub struct OutboxWorker<S, D> {
    outbox: Outbox<S>,
    deliver: D,
    policy: RetryPolicy,
    id: String,
}

impl<S: OutboxStore, D: Deliver> OutboxWorker<S, D> {
    /// Claims and sends one batch of due messages; returns how many it claimed.
    ///
    /// # Errors
    /// The store's error (the worker tries again at its next round).
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let now = axum_users::now_unix();
        let lease = i64::try_from(self.policy.lease.as_secs()).unwrap_or(i64::MAX);
        let claimed = self
            .outbox
            .store
            .claim(now, lease, self.policy.batch, &self.id)
            .await?;
        for message in &claimed {
            self.send_one(message).await?;
        }
        Ok(claimed.len())
    }

    async fn send_one(&self, message: &OutboxMessage) -> Result<(), StoreError> {
        let store = &self.outbox.store;
        let Some(mail) = self.outbox.open(message) else {
            tracing::error!(id = %message.id, kind = %message.kind, "queued mail cannot be opened (sealed under another secret?); marked failed");
            return store
                .record_failure(
                    &message.id,
                    &self.id,
                    "cannot be opened with the current or previous secrets",
                    None,
                )
                .await;
        };
        match self.deliver.deliver(&mail).await {
            Ok(()) => {
                store.delete_sent(&message.id, &self.id).await?;
                tracing::info!(id = %message.id, kind = %message.kind, to = %message.recipient, "mail sent");
                Ok(())
            }
            Err(e) => {
                metrics::counter!("axum_users_outbox_failures_total", "kind" => message.kind.clone())
                    .increment(1);
                let failures = message.attempts + 1;
                let next = (e.is_transient() && failures < self.policy.max_attempts).then(|| {
                    let delay = self.policy.delay(failures, jitter());
                    axum_users::now_unix()
                        + i64::try_from(delay.as_secs().max(1)).unwrap_or(i64::MAX)
                });
                match next {
                    Some(at) => {
                        tracing::warn!(id = %message.id, kind = %message.kind, error = %e, attempt = failures, retry_in_s = at - axum_users::now_unix(), "sending mail failed; will retry")
                    }
                    None => {
                        tracing::error!(id = %message.id, kind = %message.kind, to = %message.recipient, error = %e, attempts = failures, "sending mail failed for good; marked failed (`mail retry` queues it again)")
                    }
                }
                store
                    .record_failure(&message.id, &self.id, &e.to_string(), next)
                    .await
            }
        }
    }

    /// Runs until `shutdown` completes: a batch whenever a message is queued in this process,
    /// and every poll interval (messages of other nodes, retries that came due).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            let claimed = match self.run_once().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "the mail outbox is unreachable; retrying");
                    0
                }
            };
            if claimed >= self.policy.batch as usize {
                continue;
            }
            tokio::select! {
                () = &mut shutdown => return,
                () = self.outbox.wake.notified() => {}
                () = tokio::time::sleep(self.policy.poll_interval) => {}
            }
        }
    }
}

/// A random factor in `[0, 1]`.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(p.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(p.delay(5, 1.0), Duration::from_secs(16));
        assert_eq!(p.delay(5, 0.0), Duration::from_secs(8));
        assert_eq!(p.delay(40, 1.0), Duration::from_secs(600), "capped");
        let j = jitter();
        assert!((0.0..=1.0).contains(&j));
    }
}
