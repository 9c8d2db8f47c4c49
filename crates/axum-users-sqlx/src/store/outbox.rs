//! The outboxes: the mail outbox in the `mail_outbox` table (migration 4) and the webhook
//! deliveries in `webhook_outbox` (migration 8), one set of queries over a [`Queue`] that names
//! the table and its columns. A claim is a conditional update per row
//! (`... WHERE id = ? AND locked_until <= now`), the same on every database: of two workers
//! that pick the same row, one update changes it and the other changes nothing.

use axum_users::{
    NewOutboxMessage, OutboxMessage, OutboxStatus, OutboxStore, StoreError, UserFields,
};

use super::SqlStore;
use crate::db::{Arg, Db, Row};
use crate::id::SqlId;

/// One outbox table: its name, and the columns of the recipient, the kind and the body (the
/// other columns have the same names in every outbox).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queue {
    table: &'static str,
    recipient: &'static str,
    kind: &'static str,
    body: &'static str,
}

/// The mail outbox: sealed messages to addresses.
pub(crate) const MAIL: Queue = Queue {
    table: "mail_outbox",
    recipient: "recipient",
    kind: "kind",
    body: "sealed",
};

/// The webhook deliveries: JSON bodies to endpoints, by event type.
pub(crate) const WEBHOOKS: Queue = Queue {
    table: "webhook_outbox",
    recipient: "endpoint",
    kind: "event_type",
    body: "payload",
};

/// Longest stored error text: enough for an SMTP reply or an HTTP status line.
const MAX_ERROR: usize = 1000;

impl Queue {
    /// The columns, read under the names [`message_from_row`] knows.
    fn columns(self) -> String {
        format!(
            "id, {} AS recipient, {} AS kind, {} AS sealed, status, attempts, next_attempt_at, \
             locked_until, last_error, created_at",
            self.recipient, self.kind, self.body
        )
    }

    /// The insert of one message, and its arguments (for a pool or a transaction).
    pub(crate) fn insert(self, message: NewOutboxMessage) -> (String, Vec<Arg>) {
        let sql = format!(
            "INSERT INTO {} (id, {}, {}, {}, status, attempts, next_attempt_at, locked_until, \
             created_at) VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?)",
            self.table, self.recipient, self.kind, self.body
        );
        let args = vec![
            Arg::Text(message.id),
            Arg::Text(message.recipient),
            Arg::Text(message.kind),
            Arg::Text(message.sealed),
            Arg::Text(OutboxStatus::Pending.as_str().into()),
            Arg::Int(message.created_at),
            Arg::Int(message.created_at),
        ];
        (sql, args)
    }

    /// Messages by status: `(pending, failed)` (one indexed count).
    pub(crate) async fn depth(self, db: &Db) -> Result<(u64, u64), StoreError> {
        let rows = db
            .fetch_all(
                &format!(
                    "SELECT status, COUNT(*) AS n FROM {} GROUP BY status",
                    self.table
                ),
                &[],
            )
            .await?;
        let (mut pending, mut failed) = (0, 0);
        for row in &rows {
            let n = u64::try_from(row.int("n")?).unwrap_or(0);
            match OutboxStatus::parse(&row.text("status")?) {
                Some(OutboxStatus::Pending) => pending += n,
                Some(OutboxStatus::Failed) => failed += n,
                _ => {}
            }
        }
        Ok((pending, failed))
    }

    pub(crate) async fn enqueue(
        self,
        db: &Db,
        message: NewOutboxMessage,
    ) -> Result<(), StoreError> {
        let (sql, args) = self.insert(message);
        db.execute(&sql, &args).await?;
        Ok(())
    }

    pub(crate) async fn claim(
        self,
        db: &Db,
        now: i64,
        lease_seconds: i64,
        limit: u32,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let candidates = db
            .fetch_all(
                &format!(
                    "SELECT {} FROM {} WHERE status = ? AND next_attempt_at <= ? \
                     AND locked_until <= ? ORDER BY next_attempt_at, created_at LIMIT {limit}",
                    self.columns(),
                    self.table
                ),
                &[
                    Arg::Text(OutboxStatus::Pending.as_str().into()),
                    Arg::Int(now),
                    Arg::Int(now),
                ],
            )
            .await?;
        let until = now.saturating_add(lease_seconds);
        let mut claimed = Vec::with_capacity(candidates.len());
        for row in &candidates {
            let mut message = message_from_row(row)?;
            let taken = db
                .execute(
                    &format!(
                        "UPDATE {} SET locked_until = ?, locked_by = ? \
                         WHERE id = ? AND status = ? AND locked_until <= ?",
                        self.table
                    ),
                    &[
                        Arg::Int(until),
                        Arg::Text(worker.to_owned()),
                        Arg::Text(message.id.clone()),
                        Arg::Text(OutboxStatus::Pending.as_str().into()),
                        Arg::Int(now),
                    ],
                )
                .await?;
            if taken == 1 {
                message.locked_until = until;
                claimed.push(message);
            }
        }
        Ok(claimed)
    }

    pub(crate) async fn delete_sent(
        self,
        db: &Db,
        id: &str,
        worker: &str,
    ) -> Result<bool, StoreError> {
        let deleted = db
            .execute(
                &format!("DELETE FROM {} WHERE id = ? AND locked_by = ?", self.table),
                &[Arg::Text(id.to_owned()), Arg::Text(worker.to_owned())],
            )
            .await?;
        Ok(deleted == 1)
    }

    pub(crate) async fn record_failure(
        self,
        db: &Db,
        id: &str,
        worker: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let status = match next_attempt_at {
            Some(_) => OutboxStatus::Pending,
            None => OutboxStatus::Failed,
        };
        db.execute(
            &format!(
                "UPDATE {} SET attempts = attempts + 1, last_error = ?, status = ?, \
                 next_attempt_at = ?, locked_until = 0, locked_by = NULL \
                 WHERE id = ? AND locked_by = ?",
                self.table
            ),
            &[
                Arg::Text(error.chars().take(MAX_ERROR).collect()),
                Arg::Text(status.as_str().into()),
                Arg::Int(next_attempt_at.unwrap_or(0)),
                Arg::Text(id.to_owned()),
                Arg::Text(worker.to_owned()),
            ],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn list(self, db: &Db, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        db.fetch_all(
            &format!(
                "SELECT {} FROM {} ORDER BY created_at, id LIMIT {limit}",
                self.columns(),
                self.table
            ),
            &[],
        )
        .await?
        .iter()
        .map(message_from_row)
        .collect()
    }

    pub(crate) async fn retry_failed(
        self,
        db: &Db,
        id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut sql = format!(
            "UPDATE {} SET status = ?, attempts = 0, next_attempt_at = ?, \
             locked_until = 0, locked_by = NULL WHERE status = ?",
            self.table
        );
        let mut args = vec![
            Arg::Text(OutboxStatus::Pending.as_str().into()),
            Arg::Int(now),
            Arg::Text(OutboxStatus::Failed.as_str().into()),
        ];
        if let Some(id) = id {
            sql.push_str(" AND id = ?");
            args.push(Arg::Text(id.to_owned()));
        }
        db.execute(&sql, &args).await
    }
}

fn message_from_row(row: &Row) -> Result<OutboxMessage, StoreError> {
    let status = row.text("status")?;
    Ok(OutboxMessage {
        id: row.text("id")?,
        recipient: row.text("recipient")?,
        kind: row.text("kind")?,
        sealed: row.text("sealed")?,
        status: OutboxStatus::parse(&status).ok_or_else(|| {
            StoreError::Backend(format!("unknown outbox status {status:?}").into())
        })?,
        attempts: u32::try_from(row.int("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: row.int("next_attempt_at")?,
        locked_until: row.int("locked_until")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.int("created_at")?,
    })
}

impl<Id: SqlId, F: UserFields> SqlStore<Id, F> {
    /// Messages in the mail outbox by status: `(pending, failed)` (for metrics; one indexed
    /// count).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn outbox_depth(&self) -> Result<(u64, u64), StoreError> {
        MAIL.depth(&self.db).await
    }
}

/// Implements [`OutboxStore`] for a store type over one [`Queue`] of its database: `$s` names
/// the store in `$db`, the expression of its [`Db`].
macro_rules! outbox_store {
    ($store:ident, $queue:expr, |$s:ident| $db:expr) => {
        impl<Id: SqlId, F: UserFields> OutboxStore for $store<Id, F> {
            async fn enqueue(&self, message: NewOutboxMessage) -> Result<(), StoreError> {
                let $s = self;
                $queue.enqueue($db, message).await
            }

            async fn claim(
                &self,
                now: i64,
                lease_seconds: i64,
                limit: u32,
                worker: &str,
            ) -> Result<Vec<OutboxMessage>, StoreError> {
                let $s = self;
                $queue.claim($db, now, lease_seconds, limit, worker).await
            }

            async fn delete_sent(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
                let $s = self;
                $queue.delete_sent($db, id, worker).await
            }

            async fn record_failure(
                &self,
                id: &str,
                worker: &str,
                error: &str,
                next_attempt_at: Option<i64>,
            ) -> Result<(), StoreError> {
                let $s = self;
                $queue
                    .record_failure($db, id, worker, error, next_attempt_at)
                    .await
            }

            async fn list_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
                let $s = self;
                $queue.list($db, limit).await
            }

            async fn retry_failed(&self, id: Option<&str>, now: i64) -> Result<u64, StoreError> {
                let $s = self;
                $queue.retry_failed($db, id, now).await
            }
        }
    };
}
pub(crate) use outbox_store;

outbox_store!(SqlStore, MAIL, |store| &store.db);
