//! The audit log (migration 6): appended, read newest first through an index, pruned by age.

use axum_users::auth::BoxFuture;
use axum_users::{
    AuditCursor, AuditEvent, AuditPage, AuditQuery, AuditRecord, AuditStore, StoreError, UserFields,
};

use super::SqlStore;
use crate::db::{Arg, Row};
use crate::id::SqlId;

const AUDIT_COLUMNS: &str =
    "id, created_at, event_type, user_id, actor_id, ip, user_agent, outcome, reason, detail";

/// A stored record, or `None` for a type this version does not know (written by a newer one).
fn record_from_row(row: &Row) -> Result<Option<AuditRecord>, StoreError> {
    let kind = row.text("event_type")?;
    let reason = row.opt_text("reason")?;
    let detail = row.opt_text("detail")?;
    let Some(event) = AuditEvent::from_parts(&kind, reason.as_deref(), detail.as_deref()) else {
        return Ok(None);
    };
    let mut record = AuditRecord::new(event);
    record.id = row.text("id")?;
    record.at = row.int("created_at")?;
    record.user_id = row.opt_text("user_id")?;
    record.actor_id = row.opt_text("actor_id")?;
    record.ip = row.opt_text("ip")?;
    record.user_agent = row.opt_text("user_agent")?;
    Ok(Some(record))
}

/// The `SELECT` of one page, newest first, one row more than the page.
pub(crate) fn events_sql(query: &AuditQuery) -> (String, Vec<Arg>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(user) = &query.user_id {
        conditions.push("user_id = ?");
        args.push(Arg::Text(user.clone()));
    }
    if let Some(kind) = &query.kind {
        conditions.push("event_type = ?");
        args.push(Arg::Text(kind.clone()));
    }
    if let Some(since) = query.since {
        conditions.push("created_at >= ?");
        args.push(Arg::Int(since));
    }
    if let Some(cursor) = &query.before {
        conditions.push("(created_at, id) < (?, ?)");
        args.extend([Arg::Int(cursor.at), Arg::Text(cursor.id.clone())]);
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    args.push(Arg::Int(i64::from(query.page_size()) + 1));
    (
        format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events{filter} \
             ORDER BY created_at DESC, id DESC LIMIT ?"
        ),
        args,
    )
}

impl<Id: SqlId, F: UserFields> AuditStore for SqlStore<Id, F> {
    fn append<'a>(&'a self, record: &'a AuditRecord) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let event = &record.event;
            let sql = format!(
                "INSERT INTO audit_events ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            );
            let args = [
                Arg::Text(record.id.clone()),
                Arg::Int(record.at),
                Arg::Text(event.kind().into()),
                Arg::OptText(record.user_id.clone()),
                Arg::OptText(record.actor_id.clone()),
                Arg::OptText(record.ip.clone()),
                Arg::OptText(record.user_agent.clone()),
                Arg::Text(event.outcome().into()),
                Arg::OptText(event.reason().map(str::to_owned)),
                Arg::OptText(event.detail().map(|d| d.chars().take(200).collect())),
            ];
            // The webhook deliveries of the event go in with it (see `webhooks.rs`).
            let deliveries = self.webhook_deliveries(record);
            if deliveries.is_empty() {
                self.db.execute(&sql, &args).await?;
                return Ok(());
            }
            let mut tx = self.db.begin().await?;
            tx.execute(&sql, &args).await?;
            super::webhooks::queue_in(&mut tx, deliveries).await?;
            tx.commit().await
        })
    }

    fn list_events<'a>(
        &'a self,
        query: &'a AuditQuery,
    ) -> BoxFuture<'a, Result<AuditPage, StoreError>> {
        Box::pin(async move {
            let (sql, args) = events_sql(query);
            let rows = self.db.fetch_all(&sql, &args).await?;
            let size = query.page_size() as usize;
            let more = rows.len() > size;
            let mut items = Vec::with_capacity(size);
            let mut last = None;
            for row in rows.iter().take(size) {
                last = Some(AuditCursor {
                    at: row.int("created_at")?,
                    id: row.text("id")?,
                });
                if let Some(record) = record_from_row(row)? {
                    items.push(record);
                }
            }
            Ok(AuditPage {
                items,
                next_cursor: if more { last } else { None },
            })
        })
    }

    fn prune_events<'a>(&'a self, before: i64) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            self.db
                .execute(
                    "DELETE FROM audit_events WHERE created_at < ?",
                    &[Arg::Int(before)],
                )
                .await
        })
    }
}
