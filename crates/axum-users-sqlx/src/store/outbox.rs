//! The mail outbox in the `mail_outbox` table (migration 4). A claim is a conditional update
//! per row (`... WHERE id = ? AND locked_until <= now`), the same on every database: of two
//! workers that pick the same row, one update changes it and the other changes nothing.

use axum_users::{
    NewOutboxMessage, OutboxMessage, OutboxStatus, OutboxStore, StoreError, UserFields,
};

use super::SqlStore;
use crate::db::{Arg, Row};
use crate::id::SqlId;

const COLUMNS: &str = "id, recipient, kind, sealed, status, attempts, next_attempt_at, \
     locked_until, last_error, created_at";

/// Longest stored error text: enough for an SMTP reply.
const MAX_ERROR: usize = 1000;

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
    /// Messages in the outbox by status: `(pending, failed)` (for metrics; one indexed count).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn outbox_depth(&self) -> Result<(u64, u64), StoreError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT status, COUNT(*) AS n FROM mail_outbox GROUP BY status",
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
}

fn truncated(error: &str) -> String {
    error.chars().take(MAX_ERROR).collect()
}

impl<Id: SqlId, F: UserFields> OutboxStore for SqlStore<Id, F> {
    async fn enqueue(&self, message: NewOutboxMessage) -> Result<(), StoreError> {
        self.db
            .execute(
                "INSERT INTO mail_outbox (id, recipient, kind, sealed, status, attempts, \
                 next_attempt_at, locked_until, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?)",
                &[
                    Arg::Text(message.id),
                    Arg::Text(message.recipient),
                    Arg::Text(message.kind),
                    Arg::Text(message.sealed),
                    Arg::Text(OutboxStatus::Pending.as_str().into()),
                    Arg::Int(message.created_at),
                    Arg::Int(message.created_at),
                ],
            )
            .await?;
        Ok(())
    }

    async fn claim(
        &self,
        now: i64,
        lease_seconds: i64,
        limit: u32,
        worker: &str,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        let candidates = self
            .db
            .fetch_all(
                &format!(
                    "SELECT {COLUMNS} FROM mail_outbox WHERE status = ? AND next_attempt_at <= ? \
                     AND locked_until <= ? ORDER BY next_attempt_at, created_at LIMIT {limit}"
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
            let taken = self
                .db
                .execute(
                    "UPDATE mail_outbox SET locked_until = ?, locked_by = ? \
                     WHERE id = ? AND status = ? AND locked_until <= ?",
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

    async fn delete_sent(&self, id: &str, worker: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                "DELETE FROM mail_outbox WHERE id = ? AND locked_by = ?",
                &[Arg::Text(id.to_owned()), Arg::Text(worker.to_owned())],
            )
            .await?;
        Ok(deleted == 1)
    }

    async fn record_failure(
        &self,
        id: &str,
        worker: &str,
        error: &str,
        next_attempt_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let status = match next_attempt_at {
            Some(_) => OutboxStatus::Pending,
            None => OutboxStatus::Failed,
        };
        self.db
            .execute(
                "UPDATE mail_outbox SET attempts = attempts + 1, last_error = ?, status = ?, \
                 next_attempt_at = ?, locked_until = 0, locked_by = NULL \
                 WHERE id = ? AND locked_by = ?",
                &[
                    Arg::Text(truncated(error)),
                    Arg::Text(status.as_str().into()),
                    Arg::Int(next_attempt_at.unwrap_or(0)),
                    Arg::Text(id.to_owned()),
                    Arg::Text(worker.to_owned()),
                ],
            )
            .await?;
        Ok(())
    }

    async fn list_outbox(&self, limit: u32) -> Result<Vec<OutboxMessage>, StoreError> {
        self.db
            .fetch_all(
                &format!("SELECT {COLUMNS} FROM mail_outbox ORDER BY created_at, id LIMIT {limit}"),
                &[],
            )
            .await?
            .iter()
            .map(message_from_row)
            .collect()
    }

    async fn retry_failed(&self, id: Option<&str>, now: i64) -> Result<u64, StoreError> {
        let mut sql = String::from(
            "UPDATE mail_outbox SET status = ?, attempts = 0, next_attempt_at = ?, \
             locked_until = 0, locked_by = NULL WHERE status = ?",
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
        self.db.execute(&sql, &args).await
    }
}
